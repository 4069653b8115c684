"""A TLS-terminating proxy in front of moto, one loopback port per service (DynamoDB,
Secrets Manager), that counts what a client does: its connections, their handshakes, and
the API calls on each, with the time moto took to answer.
"""

import socket
import ssl
import threading
import time
import urllib.parse


class Connection:
    """One TLS connection the proxy accepted: when, its handshake, the requests on it."""

    def __init__(self, service, accepted):
        self.service = service
        self.accepted = accepted
        self.handshaken = None
        self.version = self.cipher = self.error = None
        self.requests = []  # (monotonic time the request's head had arrived, label)
        self.store_s = 0.0  # time from forwarding a request to moto's answer, summed


class TLSProxy:
    """Terminates TLS on one loopback port per service and forwards each HTTP/1.1 request
    to moto. moto (werkzeug) closes every connection after one answer (`Connection:
    close`), which DynamoDB and Secrets Manager do not: the proxy keeps the client's TLS
    connection open (drops that header) and opens a fresh plain connection to moto per
    request, so a client's pooled connection is reused as it would be on AWS."""

    def __init__(self, upstream, chain, key, services=("dynamodb", "secretsmanager")):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(chain, key)
        self.context.set_alpn_protocols(["http/1.1"])  # moto speaks HTTP/1.1 only
        self.lock = threading.Lock()
        self.connections = []
        self.ports = {}
        for service in services:
            server = socket.create_server(("127.0.0.1", 0), backlog=64)
            self.ports[service] = server.getsockname()[1]
            threading.Thread(target=self._accept, args=(service, server), daemon=True).start()

    def endpoint(self, service):
        return f"https://localhost:{self.ports[service]}"

    def since(self, t):
        with self.lock:
            return [c for c in self.connections if c.accepted >= t]

    def _accept(self, service, server):
        while True:
            try:
                raw, _ = server.accept()
            except OSError:
                return
            conn = Connection(service, time.monotonic())
            with self.lock:
                self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn, raw), daemon=True).start()

    def _serve(self, conn, raw):
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(120)
        try:
            tls = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            tls.do_handshake()
        except (ssl.SSLError, OSError) as e:
            conn.error = f"{type(e).__name__}: {e}"
            raw.close()
            return
        conn.handshaken = time.monotonic()
        conn.version, conn.cipher = tls.version(), tls.cipher()[0]
        try:
            client = tls.makefile("rb")
            while self._exchange(conn, client, tls):
                pass
        except (ssl.SSLError, OSError, ValueError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    @staticmethod
    def _head(reader):
        """An HTTP head (start line and headers) as bytes, and its headers; None at EOF."""
        lines = []
        while True:
            line = reader.readline(65537)
            if not line:
                return None, None
            if line in (b"\r\n", b"\n"):
                break
            lines.append(line)
        if not lines:
            return None, None
        headers = {}
        for line in lines[1:]:
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        return lines, headers

    @staticmethod
    def _body(reader, headers, allow_eof):
        """The message body as sent (Content-Length, chunked, or up to EOF for answers)."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = bytearray()
            while True:
                size_line = reader.readline(1024)
                out += size_line
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, then the blank line
                        line = reader.readline(65537)
                        out += line
                        if line in (b"\r\n", b"\n", b""):
                            return bytes(out)
                out += reader.read(size + 2)
        if "content-length" in headers:
            return reader.read(int(headers["content-length"]))
        return reader.read() if allow_eof else b""

    def _exchange(self, conn, client, tls):
        """One request and its answer; False when the client's connection is done."""
        lines, headers = self._head(client)
        if lines is None:
            return False
        arrived = time.monotonic()
        start = lines[0].decode("latin-1").split(" ")
        target = headers.get("x-amz-target")
        label = target.rsplit(".", 1)[-1] if target else f"{start[0]} {start[1] if len(start) > 1 else ''}"
        with self.lock:
            conn.requests.append((arrived, label))
        body = self._body(client, headers, allow_eof=False)
        with socket.create_connection(self.upstream) as up:
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            up.sendall(b"".join(lines) + b"\r\n" + body)
            sent = time.monotonic()
            answer = up.makefile("rb")
            answer_lines, answer_headers = self._head(answer)
            if answer_lines is None:
                return False
            conn.store_s += time.monotonic() - sent
            status = int(answer_lines[0].split(b" ")[1])
            delimited = "content-length" in answer_headers or "chunked" in answer_headers.get("transfer-encoding", "").lower()
            no_body = start[0] == "HEAD" or status in (204, 304) or 100 <= status < 200
            answer_body = b"" if no_body else self._body(answer, answer_headers, allow_eof=True)
        keep = (no_body or delimited) and headers.get("connection", "").lower() != "close"
        if keep:
            answer_lines = [answer_lines[0]] + [line for line in answer_lines[1:] if not line.lower().startswith(b"connection:")]
        tls.sendall(b"".join(answer_lines) + b"\r\n" + answer_body)
        return keep
