"""A TCP proxy in front of the DynamoDB API that fails on command: it refuses, stalls, slows
or throttles every request, or reads each one and lets a rule decide (forward it, lose its
answer, answer for DynamoDB, or hold it a while). tests/test_faults.py and scripts/soak.py
put it between the local API and the emulator.
"""

import json
import re
import socket
import threading
import time

THROTTLED = json.dumps(
    {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded.",
    }
).encode()


def read_http_message(sock, buf):
    """One HTTP/1.1 message (head and Content-Length body) from `sock`, after the bytes
    already in `buf`: (message, leftover), or (None, b"") when the peer closed."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


TARGET = re.compile(rb"x-amz-target:\s*DynamoDB_\d+\.(\w+)", re.IGNORECASE)


def operation_of(request):
    found = TARGET.search(request.split(b"\r\n\r\n", 1)[0])
    return found.group(1).decode() if found else None


def dynamodb_error(status, body):
    body = json.dumps(body).encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.0\r\n".encode()
        + b"x-amzn-RequestId: FAULT\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class FaultyProxy:
    """TCP proxy to the emulator. Modes: pass, refuse (reset every connection), stall
    (accept and never answer), slow (answer after a delay the SDK tolerates), throttle
    (answer every request with DynamoDB's throttling error), scripted (read each request
    and let `rule(operation, request)` say "pass", "lose" (forward it, drop the answer and
    the connection), a number of seconds to hold it before forwarding it, or give the raw
    answer itself). Changing the mode drops the open
    connections, so the SDK's pooled ones see the new mode too."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.mode = "pass"
        self.rule = None
        self.open = set()
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def set_mode(self, mode, rule=None):
        with self.lock:
            self.mode = mode
            self.rule = rule
            for s in list(self.open):
                self._close(s)
            self.open.clear()

    def _track(self, s):
        with self.lock:
            self.open.add(s)

    @staticmethod
    def _close(s):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, self.mode), daemon=True).start()

    def _serve(self, client, mode):
        self._track(client)
        if mode == "refuse":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            client.close()
        elif mode == "stall":
            time.sleep(30)
            self._close(client)
        elif mode == "throttle":
            self._throttle(client)
        elif mode == "scripted":
            self._scripted(client, self.rule)
        else:
            if mode == "slow":
                time.sleep(0.5)
            upstream = socket.create_connection(self.upstream)
            self._track(upstream)
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
            self._pump(client, upstream)

    def _pump(self, src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        self._close(dst)

    def _throttle(self, client):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = next(
                    (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
                    0,
                )
                while len(buf) < length:
                    buf += client.recv(65536)
                buf = buf[length:]
                client.sendall(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\n"
                    + b"x-amzn-RequestId: THROTTLED\r\nContent-Length: "
                    + str(len(THROTTLED)).encode()
                    + b"\r\n\r\n"
                    + THROTTLED
                )
        except OSError:
            pass
        finally:
            self._close(client)

    def _scripted(self, client, rule):
        buf = b""
        upstream = None
        try:
            while True:
                request, buf = read_http_message(client, buf)
                if request is None:
                    return
                verdict = rule(operation_of(request), request)
                if isinstance(verdict, (int, float)) and not isinstance(verdict, bool):
                    # Held this many seconds, then forwarded (a slow store).
                    time.sleep(verdict)
                    verdict = "pass"
                if isinstance(verdict, bytes):
                    client.sendall(verdict)
                    continue
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    self._track(upstream)
                upstream.sendall(request)
                answer, _ = read_http_message(upstream, b"")
                if answer is None or verdict == "lose":
                    return  # applied upstream; the caller never hears of it
                client.sendall(answer)
        except OSError:
            pass
        finally:
            self._close(client)
            if upstream is not None:
                self._close(upstream)

    def close(self):
        self.server.close()
        self.set_mode("pass")
