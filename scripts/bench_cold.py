"""`make bench`, second part: the cold answer as a deployed function meets it (issue 15).

Runs inside scripts/with_dynamodb.py, after `cargo build --release` (and after bench.py):

  .venv/bin/python scripts/with_dynamodb.py -- .venv/bin/python scripts/bench_cold.py

bench.py measures cold init against a plain-HTTP store with the whole machine's CPU. Here
every request-path function (and the Python authorizer beside the Rust one) is started
the way Lambda starts it, as far as one machine can:

- HTTPS store: a private CA (root -> intermediate -> server certificate for localhost and
  127.0.0.1, RSA 2048 like Amazon's chain) made at run time, and a TLS-terminating proxy
  in front of the moto server, one port for DynamoDB and one for Secrets Manager (two
  hosts when deployed, so two connections). moto closes every connection after one
  answer; the proxy keeps the client's open, as DynamoDB does, so the pool is reused as
  on AWS. It counts the TLS connections, their handshakes and the API calls of every
  cold invocation. Trust is given the way each client takes it, no system file touched:
  SSL_CERT_FILE = the system's bundle + the test root (rustls-native-certs, which a
  build trusting the platform's roots reads: parsing them costs what it costs on
  Lambda), AWS_CA_BUNDLE = the test root alone for the Rust functions (a build with
  Amazon's roots built in adds it to them, as a deployed function would add nothing),
  and AWS_CA_BUNDLE = the system's bundle + the test root for boto3 (like certifi's).
- CPU share: Lambda gives a function CPU in proportion to its memory (1,769 MB = one
  vCPU). Only the function process (not the emulator) is put in a cgroup whose CFS quota
  is MemorySize/1769 of a core (MemorySize from template.yaml), from its first
  instruction: the emulator runs a tiny static joiner (scripts/cgroup_join.c, built with
  `cc` at run time) that joins the cgroup and execs the binary; a shell script did this
  before and added ~0.7 ms of CPU to every cold start. Where cgroups cannot be written
  the functions run unconfined, and the header says so.

For each function, BENCH_COLD_RUNS (default 7) fresh emulators, one invocation each:
init (the emulator's INIT REPORT), the first invocation (INVOKE RTDONE), and the wall time
from sending that invocation to its answer (the emulator starts the process on the first
invocation, so this is process start + init + invocation: what the caller waits).

  BENCH_COLD_RUNS=7             fresh environments per function
  BENCH_ONLY=authorizer,login   just those (`python` names the Python authorizer)
  BENCH_CPU_SHARE=0             no quota (the cgroup still counts CPU time)
  BENCH_CFS_PERIOD_US=20000     the CFS period the quota is a share of
  BENCH_RS256=0                 skip the second configuration (RS256, keys from Secrets Manager)
  BENCH_TRUST=test              trust the test root alone (what the system's roots cost is the difference)
  BENCH_INIT_BOOST=1            init without the quota, the invocation under it, for every function. By
                                default the quota holds from exec to answer (the issue's method) and the
                                authorizer gets one more row, "authorizer, init boost", measured this way:
                                on-demand Lambda runs init on a full, unthrottled vCPU for up to 10 s, and
                                provisioned concurrency gets no such burst ("Effectively running Java on
                                Serverless", serverlessland.com, by AWS's serverless specialists; the
                                Lambda Developer Guide does not say it)
  BENCH_COLD_PROFILE=debug      the debug build, to try this script out (release is what is measured)
  BENCH_COLD_LAMBDA_DIR=DIR      a function's binary is DIR/<name>/bootstrap where that exists (another build to
                                compare, e.g. `cargo lambda build --release --target x86_64-unknown-linux-musl`
                                --lambda-dir DIR), else the release build
  BENCH_COLD_WRAP='perf record -g -o /tmp/cold.data --'
                                a command put before each function, inside its cgroup (to profile a
                                cold start; its own cost is then on the clock and the CPU account)

Figures, not assertions: the issue's target is printed beside them.
"""

import base64
import datetime
import hashlib
import json
import os
import pathlib
import platform
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import cargo_target  # noqa: E402
import signing_keys  # noqa: E402
from bench import PASSWORD, ROOT, Runtime, authorizer_event, check, event, with_context  # noqa: E402
from dynamodb_tables import TEMPLATE, CfnLoader  # noqa: E402

RUNS = int(os.environ.get("BENCH_COLD_RUNS", "7"))
ONLY = [f for f in os.environ.get("BENCH_ONLY", "").split(",") if f]
CPU_SHARE = os.environ.get("BENCH_CPU_SHARE", "1") not in ("0", "false", "no", "off")
CFS_PERIOD_US = int(os.environ.get("BENCH_CFS_PERIOD_US", "20000"))
RS256 = os.environ.get("BENCH_RS256", "1") not in ("0", "false", "no", "off")
# BENCH_INIT_BOOST=1: init without the quota, the invocation under it, for every function.
# On-demand Lambda runs init on a full vCPU (AWS's own guide, see the docstring), but the
# Lambda Developer Guide does not say so, so the table keeps the quota on by default (the
# issue's method) and only the authorizer gets a second row the other way (BOOSTED).
INIT_BOOST = os.environ.get("BENCH_INIT_BOOST", "0") not in ("0", "false", "no", "off", "")
BOOSTED = "authorizer, init boost"
BOOSTED_ROW = not INIT_BOOST
# BENCH_TRUST=test: trust the test root alone, to see what parsing the system's roots costs.
TRUST_SYSTEM = os.environ.get("BENCH_TRUST", "system") != "test"
# The release build is what is measured; `debug` only to try this script out quickly.
PROFILE = os.environ.get("BENCH_COLD_PROFILE", "release")
WRAP = shlex.split(os.environ.get("BENCH_COLD_WRAP", ""))
LAMBDA_DIR = pathlib.Path(os.environ["BENCH_COLD_LAMBDA_DIR"]).resolve() if os.environ.get("BENCH_COLD_LAMBDA_DIR") else None
# Every function on a request path: the HTTP functions and the authorizer.
FUNCTIONS = ["register", "login", "refresh", "logout", "me", "authorizer", "admin", "account", "discovery", "preflight"]
# The deployed default (RS256, keys in Secrets Manager) changes only the functions that
# read keys; logout, me, admin and preflight read none.
KEYED = ["register", "login", "refresh", "account", "authorizer", "discovery"]
PYTHON = "python"
SYSTEM_BUNDLE = pathlib.Path("/etc/ssl/certs/ca-certificates.crt")
ONE_VCPU_MB = 1769
MIN_QUOTA_US = 1000  # the kernel's smallest CFS quota
ORIGIN = "http://127.0.0.1:3001"
TARGET_MS = 25.0


# --- HTTPS store: a private CA and a TLS-terminating proxy -------------------------------


def make_pki(directory):
    """Root CA -> intermediate CA -> server certificate (localhost, 127.0.0.1), RSA 2048,
    as Amazon's endpoints present (leaf + intermediate sent, root in the trust store).
    Returns (root PEM, path of the server's chain, path of its key)."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "jwt-auth bench"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, subject_key, issuer, issuer_key, ca, path_length=None, san=None):
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(subject_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        )
        if ca:
            b = b.add_extension(
                x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                              key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True,
            )
        else:
            b = b.add_extension(
                x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True, data_encipherment=False,
                              key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
                critical=True,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    root_key, mid_key, leaf_key = key(), key(), key()
    root_name, mid_name = name("bench test root CA"), name("bench test intermediate CA")
    root = cert(root_name, root_key, root_name, root_key, ca=True, path_length=1)
    mid = cert(mid_name, mid_key, root_name, root_key, ca=True, path_length=0)
    import ipaddress

    leaf = cert(name("localhost"), leaf_key, mid_name, mid_key, ca=False,
                san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    chain = directory / "server-chain.pem"
    chain.write_bytes(pem(leaf) + pem(mid))
    key_file = directory / "server-key.pem"
    key_file.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return pem(root), chain, key_file


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


# --- CPU share: a cgroup per memory size -------------------------------------------------


class CpuShare:
    """A CFS quota of memory/1769 of a core for the function process only, plus CPU time
    accounting. cgroup v1 (cpu, and cpuacct where mounted apart) or v2 (cpu.max)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.groups = {}  # memory -> dict(dirs, wrapper)
        self.join_cmd, self.join_kind = None, None
        self.version = None
        self.reason = None
        v1 = pathlib.Path("/sys/fs/cgroup/cpu")
        v2 = pathlib.Path("/sys/fs/cgroup")
        controllers = v2 / "cgroup.controllers"
        try:
            if controllers.exists() and "cpu" in controllers.read_text().split():
                self.version = 2
                subtree = v2 / "cgroup.subtree_control"
                if "cpu" not in subtree.read_text().split():
                    subtree.write_text("+cpu")
            elif (v1 / "cpu.cfs_quota_us").exists():
                self.version = 1
            else:
                self.reason = "no cgroup cpu controller found (neither v1 /sys/fs/cgroup/cpu nor v2 cpu.max)"
                return
            # Can one be made here? (Not root, or a read-only /sys, says no.)
            probe = self._make("probe")
            self._remove(probe)
        except OSError as e:
            self.version = None
            self.reason = f"cgroups not writable ({e.strerror or e}: {getattr(e, 'filename', '')})"

    @property
    def available(self):
        return self.version is not None

    def quota_us(self, memory):
        return max(MIN_QUOTA_US, round(CFS_PERIOD_US * memory / ONE_VCPU_MB))

    def _make(self, suffix):
        name = f"bench_cold_{os.getpid()}_{suffix}"
        dirs = []
        if self.version == 1:
            cpu = pathlib.Path("/sys/fs/cgroup/cpu") / name
            cpu.mkdir()
            dirs.append(cpu)
            acct_root = pathlib.Path("/sys/fs/cgroup/cpuacct")
            if not (cpu / "cpuacct.usage").exists() and (acct_root / "cpuacct.usage").exists() and acct_root.resolve() != cpu.parent.resolve():
                acct = acct_root / name
                acct.mkdir()
                dirs.append(acct)
        else:
            d = pathlib.Path("/sys/fs/cgroup") / name
            d.mkdir()
            dirs.append(d)
        return dirs

    @staticmethod
    def _remove(dirs):
        for d in dirs:
            try:
                d.rmdir()
            except OSError:
                pass

    def _set_quota(self, dirs, quota):
        if self.version == 1:
            (dirs[0] / "cpu.cfs_quota_us").write_text(str(quota) if quota else "-1")
        else:
            (dirs[0] / "cpu.max").write_text(f"{quota or 'max'} {CFS_PERIOD_US}")

    def group(self, memory):
        """The wrapper command prefix for a function of `memory` MB (None: run unconfined)."""
        if not self.available:
            return None
        if memory not in self.groups:
            dirs = self._make(memory)
            if self.version == 1:
                (dirs[0] / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            self._set_quota(dirs, self.quota_us(memory) if CPU_SHARE else None)
            files = [d / ("tasks" if self.version == 1 else "cgroup.procs") for d in dirs]
            self.groups[memory] = {"dirs": dirs, "wrapper": [*self.joiner(), *map(str, files), "--"]}
        return self.groups[memory]["wrapper"]

    def joiner(self):
        """The command that joins the cgroups and execs the function: scripts/cgroup_join.c
        built static (its cost lands on the function's clock and CPU: ~0.05 ms), else
        dynamic, else a /bin/sh script (~0.7 ms of CPU more per cold start here; said in
        the header). cgroup v1: "0" is written to `tasks` ("this thread", the whole process
        as it has one), which skips the global threadgroup lock whose RCU grace period makes
        a `cgroup.procs` write take 8-19 ms here (Lambda has no such step); v2 has no such
        form: its pid goes to `cgroup.procs`."""
        if self.join_kind is None:
            source = pathlib.Path(__file__).resolve().parent / "cgroup_join.c"
            binary = self.tmp / "cgroup_join"
            for kind, flags in (("static C", ["-static"]), ("dynamic C", [])):
                built = subprocess.run(["cc", "-O2", *flags, "-o", str(binary), str(source)],
                                       capture_output=True, text=True) if shutil.which("cc") else None
                if built is not None and built.returncode == 0:
                    self.join_cmd, self.join_kind = [str(binary)], f"scripts/cgroup_join.c ({kind})"
                    break
            else:
                script = self.tmp / "cgroup_join.sh"
                script.write_text('#!/bin/sh\n# Joins the cgroups named before --, then becomes the function.\n'
                                  'while [ "$1" != -- ]; do\n'
                                  '  case "$1" in */tasks) echo 0 > "$1";; *) echo $$ > "$1";; esac || exit 111\n'
                                  '  shift\ndone\nshift\nexec "$@"\n')
                script.chmod(0o755)
                self.join_cmd, self.join_kind = [str(script)], "a /bin/sh script (no C compiler: ~0.7 ms more CPU per cold start)"
        return self.join_cmd

    def init_unlimited(self, memory):
        """BENCH_INIT_BOOST: no quota until `after_init` (the group holds one process at a time)."""
        self._set_quota(self.groups[memory]["dirs"], None)

    def after_init(self, memory):
        """BENCH_INIT_BOOST: the quota again, at once (no process moves between groups)."""
        self._set_quota(self.groups[memory]["dirs"], self.quota_us(memory) if CPU_SHARE else None)

    def stat(self, memory):
        """(CPU time s, throttled periods, throttled time s) of the function's group so far."""
        g = self.groups.get(memory)
        if not g:
            return None
        dirs = g["dirs"]
        fields = dict(line.split() for line in (dirs[0] / "cpu.stat").read_text().splitlines())
        if self.version == 1:
            usage_file = next((d / "cpuacct.usage" for d in dirs if (d / "cpuacct.usage").exists()), None)
            usage = int(usage_file.read_text()) / 1e9 if usage_file else float("nan")
            return usage, int(fields.get("nr_throttled", 0)), int(fields.get("throttled_time", 0)) / 1e9
        return int(fields["usage_usec"]) / 1e6, int(fields.get("nr_throttled", 0)), int(fields.get("throttled_usec", 0)) / 1e6

    def pids(self, memory):
        g = self.groups.get(memory)
        return [int(p) for p in (g["dirs"][0] / "cgroup.procs").read_text().split()] if g else []

    def drain(self, memory, timeout=3.0):
        """Waits for the groups' processes (the last run's function) to be gone; kills
        what is left after `timeout` (processes this script started, by pid)."""
        deadline = time.monotonic() + timeout
        while self.pids(memory):
            if time.monotonic() > deadline:
                for pid in self.pids(memory):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
                return
            time.sleep(0.02)

    def cleanup(self):
        for memory, g in list(self.groups.items()):
            self.drain(memory, timeout=2.0)
            self._remove(g["dirs"])
        self.groups.clear()

    def describe(self):
        if not self.available:
            return f"UNCONFINED: {self.reason}; the functions had the whole machine's CPU"
        kind = "cgroup v1 cpu.cfs_quota_us" if self.version == 1 else "cgroup v2 cpu.max"
        if not CPU_SHARE:
            return f"OFF (BENCH_CPU_SHARE=0): no quota, the whole machine's CPU; {kind} groups only count CPU time"
        boost = "; BENCH_INIT_BOOST: init runs WITHOUT the quota (set when the emulator reports init done)" if INIT_BOOST else ""
        return (f"{kind}, period {CFS_PERIOD_US} µs, quota = MemorySize/{ONE_VCPU_MB} of one core{boost}; "
                f"joined just before exec by {self.joiner() and self.join_kind}")


# --- Configuration and the functions' setup ----------------------------------------------


def machine_speed():
    """Two yardsticks printed with the figures, so runs on different days (or beside other
    load) can be told apart: a process's start and exit (/bin/true, wall, median of 101:
    what every cold start pays first) and SHA-256 of 32 MiB (CPU time, one core)."""
    walls = []
    for _ in range(101):
        t = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        walls.append(time.perf_counter() - t)
    data = bytes(32 << 20)
    t = time.process_time()
    hashlib.sha256(data).digest()
    return statistics.median(walls) * 1000, (time.process_time() - t) * 1000


def release_binary(name):
    """The build of `name`: BENCH_COLD_LAMBDA_DIR/<name>/bootstrap where there is one (a
    `cargo lambda build` output, e.g. another target or linking), else cargo's target
    directory's (CARGO_TARGET_DIR honoured)."""
    if LAMBDA_DIR and (LAMBDA_DIR / name / "bootstrap").exists():
        return LAMBDA_DIR / name / "bootstrap"
    return cargo_target.binary(name, PROFILE)


def memory_sizes(algorithm):
    """MemorySize per binary from template.yaml as deployed with SigningAlgorithm =
    `algorithm` (the Globals default where not set; `!If` on the template's conditions
    resolved, the other parameters at their defaults)."""
    doc = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)
    params = {k: v.get("Default") for k, v in doc.get("Parameters", {}).items()}
    params["SigningAlgorithm"] = algorithm

    def value(v):
        if isinstance(v, dict) and len(v) == 1:
            (fn, arg), = v.items()
            fn = fn.removeprefix("Fn::")
            if fn == "Ref":
                return params[arg]
            if fn == "If":
                return value(arg[1] if condition(arg[0]) else arg[2])
        return v

    def holds(expr):
        (fn, arg), = expr.items()
        fn = fn.removeprefix("Fn::")
        if fn == "Condition":
            return condition(arg)
        if fn == "Equals":
            return str(value(arg[0])) == str(value(arg[1]))
        if fn == "Not":
            return not holds(arg[0])
        if fn in ("And", "Or"):
            return (all if fn == "And" else any)(holds(a) for a in arg)
        raise ValueError(f"template condition {fn} not understood by bench_cold.py")

    def condition(name):
        return holds(doc["Conditions"][name])

    default = value(doc["Globals"]["Function"].get("MemorySize", 128))
    sizes = {}
    for resource in doc["Resources"].values():
        binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        if binary:
            sizes[binary] = int(value(resource["Properties"].get("MemorySize", default)))
    return doc, sizes


def public_jwks(private_document):
    """The published set of an RS256 key document: its public JWK (n, e)."""
    doc = json.loads(private_document)
    key = serialization.load_der_private_key(base64.b64decode(doc["pkcs8"]), password=None)
    numbers = key.public_key().public_numbers()
    b64 = lambda n: base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()  # noqa: E731
    return json.dumps({"keys": [{"kid": doc["kid"], "kty": "RSA", "alg": "RS256", "use": "sig", "n": b64(numbers.n), "e": b64(numbers.e)}]})


def quota_after_init(rt, share, memory, done):
    """BENCH_INIT_BOOST: as soon as the emulator reports init done (the runtime's first
    request for an event), the function's group gets its quota."""
    while not done.is_set():
        if "INIT REPORT" in rt.text():
            share.after_init(memory)
            return
        time.sleep(0.0005)


def scheduler_times(rt):
    """(CPU ms, run-queue wait ms, minor page faults) of the function process: CPU and wait
    of its live threads (cgroup accounting, where there is one, also counts threads that
    have ended), faults of all of them; None once the process is gone."""
    try:
        return (*rt.schedstat_ms(), rt.minor_faults())
    except (OSError, ValueError):
        return None


class Measured(Exception):
    pass


def cold_run(name, command, env, ev, memory, share, proxy, cwd=None, boost=INIT_BOOST):
    """One fresh emulator, one invocation: the figures of that cold start (`boost`: init
    without the quota)."""
    wrapper = share.group(memory) or []
    rt = Runtime([*wrapper, *WRAP, *command], env, cwd)
    try:
        before = share.stat(memory)
        done = threading.Event()
        if boost and share.available:
            share.init_unlimited(memory)
            threading.Thread(target=quota_after_init, args=(rt, share, memory, done), daemon=True).start()
        t0 = time.monotonic()
        try:
            answer = rt.invoke(ev)
        except Exception as e:  # noqa: BLE001 - reported with the emulator's log
            raise Measured(f"{name}: invocation failed ({e}); emulator log:\n{rt.text()[-3000:]}") from None
        t1 = time.monotonic()
        done.set()
        after = share.stat(memory)
        sched = scheduler_times(rt)
        try:
            check(answer)
        except RuntimeError as e:
            raise Measured(f"{name}: {e}; emulator log:\n{rt.text()[-3000:]}") from None
        conns = proxy.since(t0)
        init, invoke = rt.init_ms(), rt.invoke_ms()
    finally:
        rt.stop()
        share.drain(memory)
        if boost and share.available:
            share.after_init(memory)  # the next run starts under the quota, whatever happened
    requests = sorted((t, c.service, label) for c in conns for t, label in c.requests if t <= t1)
    run = {
        "wall": (t1 - t0) * 1000,
        "init": init[0] if init else float("nan"),
        "invoke": invoke[0] if invoke else float("nan"),
        "conns": [c for c in conns if c.accepted <= t1],
        "requests": requests,
        "store": sum(c.store_s for c in conns) * 1000,
        "t0": t0,
    }
    if sched:
        run["cpu"], run["wait"], run["faults"] = sched
    if before and after:
        run["cpu"] = (after[0] - before[0]) * 1000
        run["throttled"] = (after[2] - before[2]) * 1000
        run["periods"] = after[1] - before[1]
    return run


def measure(name, command, env, events, memory, *, share, proxy, cwd=None, boost=INIT_BOOST):
    print(f"  {name} ({memory} MB{', init without the quota' if boost else ''}) ...", file=sys.stderr, flush=True)
    runs = [cold_run(name, command, env, next(events), memory, share, proxy, cwd, boost) for _ in range(RUNS)]
    return {"memory": memory, "runs": runs}


def forever(make):
    while True:
        yield make()


def prepare_users(env, binary, count):
    """A user and `count` sessions (for the functions that use a refresh token or a
    session up), made through the same store by the release register and login."""
    setup = Runtime(binary("register"), env)
    username = f"bench-{uuid.uuid4().hex[:10]}"
    try:
        user = json.loads(check(setup.invoke(event("register", body=json.dumps({"username": username, "password": PASSWORD}))))["body"])
    finally:
        setup.stop()
    user["username"] = username
    setup = Runtime(binary("login"), env)
    try:
        sessions = [json.loads(check(setup.invoke(event("login", body=json.dumps({"username": username, "password": PASSWORD}))))["body"])
                    for _ in range(count)]
    finally:
        setup.stop()
    return user, iter(sessions)


def events_for(user, pool):
    admin = event("admin")
    admin["pathParameters"] = {"username": user["username"]}
    login_body = json.dumps({"username": user["username"], "password": PASSWORD})
    return {
        "register": forever(lambda: event("register", body=json.dumps({"username": f"bench-{uuid.uuid4().hex[:10]}", "password": PASSWORD}))),
        "login": forever(lambda: event("login", body=login_body)),
        "refresh": forever(lambda: event("refresh", body=json.dumps({"refresh_token": next(pool)["refresh_token"]}))),
        "logout": forever(lambda: with_context("logout", next(pool)["access_token"])),
        "me": forever(lambda: with_context("me", user["access_token"])),
        "authorizer": forever(lambda: authorizer_event(user["access_token"])),
        # The event's authorizer context is an admin's; it reads the bench user.
        "admin": forever(lambda: json.loads(json.dumps(admin))),
        "account": forever(lambda: with_context("account", user["access_token"])),
        "discovery": forever(lambda: event("discovery")),
        "preflight": forever(lambda: event("preflight")),
    }


# --- Report ------------------------------------------------------------------------------


def med(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def spread(values):
    values = [v for v in values if v == v]
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def calls_of(run):
    counts = {}
    for _, service, label in run["requests"]:
        key = label if service == "dynamodb" or label == "GetSecretValue" else f"{service}:{label}"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k}×{n}" if n > 1 else k for k, n in counts.items()) or "none"


def conns_of(run):
    by = {}
    for c in run["conns"]:
        by[c.service] = by.get(c.service, 0) + 1
    short = {"dynamodb": "ddb", "secretsmanager": "sm"}
    return f"{len(run['conns'])}" + (f" ({', '.join(f'{short.get(k, k)} {n}' for k, n in by.items())})" if len(by) > 1 else "")


def timeline(run):
    """Offsets (ms from sending the invocation) of each connection, its handshake and
    each request, in the order they happened."""
    marks = []
    for c in run["conns"]:
        svc = {"dynamodb": "ddb", "secretsmanager": "sm"}[c.service]
        marks.append((c.accepted, f"{svc} TCP"))
        if c.handshaken:
            marks.append((c.handshaken, f"{svc} TLS done ({(c.handshaken - c.accepted) * 1000:.1f})"))
        elif c.error:
            marks.append((c.accepted, f"{svc} TLS FAILED: {c.error}"))
    for t, service, label in run["requests"]:
        marks.append((t, label))
    marks.sort()
    parts = [f"+{(t - run['t0']) * 1000:.1f} {what}" for t, what in marks]
    return "; ".join(parts + [f"answer +{run['wall']:.1f}"])


def report(results, share, header, arch):
    print()
    print(f"Cold invocations over HTTPS at Lambda's CPU share ({arch}; {RUNS} fresh emulators per function, one invocation each;"
          " median (min–max))")
    for line in header:
        print(f"  {line}")
    cols = f"{'function':<24} {'MB':>5} {'core':>5}  {'init ms':>19} {'1st invoke ms':>19} {'invoke-to-answer ms':>21} {'rest':>5} {'CPU ms':>7} {'CPU/core':>8} {'thr ms':>7} {'runq ms':>7} {'faults':>6} {'store':>6} {'hs ms':>5} {'TLS':<15}  calls (median run)"
    for config, rows in results.items():
        if not rows:
            continue
        print()
        print(f"[{config}]")
        print(cols)
        for name, m in rows.items():
            runs = m["runs"]
            memory = m["memory"]
            confined = share.available and CPU_SHARE
            # The share the quota actually gives (the kernel's 1 ms minimum can round it up).
            share_of = (lambda m: share.quota_us(m) / CFS_PERIOD_US) if confined else (lambda m: float("nan"))
            core = f"{share_of(memory):.3f}" if confined else "all"
            rest = med([r["wall"] - r["init"] - r["invoke"] for r in runs])
            cpu = med([r.get("cpu", float("nan")) for r in runs])
            thr = med([r.get("throttled", float("nan")) for r in runs])
            wait = med([r.get("wait", float("nan")) for r in runs])
            faults = med([r.get("faults", float("nan")) for r in runs])
            store = med([r["store"] for r in runs])
            hs = med([(c.handshaken - c.accepted) * 1000 for r in runs for c in r["conns"] if c.handshaken])
            median_run = sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]
            failures = sum(1 for r in runs for c in r["conns"] if c.error)
            print(f"{name:<24} {memory:>5} {core:>5}  {spread([r['init'] for r in runs]):>19} {spread([r['invoke'] for r in runs]):>19}"
                  f" {spread([r['wall'] for r in runs]):>21} {rest:>5.1f} {cpu:>7.1f} {cpu / share_of(memory):>8.1f} {thr:>7.1f} {wait:>7.1f} {faults:>6.0f} {store:>6.1f} {hs:>5.1f} {conns_of(median_run):<15}"
                  f"  {calls_of(median_run)}" + (f"  [{failures} TLS handshakes FAILED]" if failures else ""))
    print()
    print("Columns (one line each):")
    print("  MB, core          the function's MemorySize in template.yaml and the share of one core its CFS quota gives (MB/1769; 'all': no quota)")
    print("  init ms           the emulator's INIT REPORT: the runtime process's initialisation until it asks for its first event (config, clients, keys, warm-up)")
    print("  1st invoke ms     the emulator's INVOKE RTDONE duration of that first, cold invocation (event handed over to answer posted)")
    print("  invoke-to-answer  this script's clock from sending the first invocation to reading its answer: what the caller waits (process start + init + invoke)")
    print("  rest              invoke-to-answer - init - 1st invoke, per run: what neither of the emulator's figures covers (its own hops, exec)")
    print("  CPU ms            CPU time of the function process, all threads, from its start to the answer (cgroup accounting; nan without cgroups)")
    print("  CPU/core          CPU ms / core share: the wall time that much CPU takes at this share, were it spread evenly (the CPU-bound floor)")
    print("  thr ms            wall time the process spent throttled by its quota in that cold invocation (cgroup cpu.stat)")
    print("  runq ms           time its threads waited, runnable, for a CPU (schedstat run_delay, summed over threads): throttling and the machine's other load")
    print("  faults            minor page faults of the function process from its start to the answer (/proc/PID/stat): each first touch of a page, by the kernel's CPU")
    print("  store             time the proxy waited for moto's answers, summed over the calls (moto answers in ms; DynamoDB in its region in a few)")
    print("  hs ms             median TLS handshake as the server saw it: TCP accept to the client's Finished (both sides' crypto, chain verification)")
    print("  TLS               TLS connections the process opened from its start to the answer (ddb / sm: DynamoDB / Secrets Manager)")
    print("  calls             requests on those connections, by X-Amz-Target (else method and path), in the median-wall run")


def main():
    if RUNS < 1:
        sys.exit("BENCH_COLD_RUNS must be at least 1")
    known = FUNCTIONS + [PYTHON]
    unknown = [n for n in ONLY if n not in known]
    if unknown:
        sys.exit(f"BENCH_ONLY: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    try:
        missing = [str(release_binary(b)) for b in FUNCTIONS if not release_binary(b).exists()]
    except cargo_target.CargoTargetError as e:
        sys.exit(str(e))
    if missing:
        sys.exit(f"missing: {', '.join(missing)}: run `cargo build --release --workspace --bins` (make bench does)")
    doc, sizes = memory_sizes("HS256")
    _, rs_sizes = memory_sizes("RS256")
    selected = [f for f in FUNCTIONS if not ONLY or f in ONLY]
    with_python = not ONLY or PYTHON in ONLY

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-cold-"))
    share = CpuShare(tmp)
    interrupted = []

    def on_term(*_):
        interrupted.append(True)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        return run(doc, sizes, rs_sizes, selected, with_python, tmp, share)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        share.cleanup()
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


def run(doc, sizes, rs_sizes, selected, with_python, tmp, share):
    root_pem, chain, key = make_pki(tmp)
    system = SYSTEM_BUNDLE.read_bytes() if SYSTEM_BUNDLE.exists() and TRUST_SYSTEM else b""
    bundle = tmp / "ca-bundle.pem"
    bundle.write_bytes(system + (b"\n" if system and not system.endswith(b"\n") else b"") + root_pem)
    test_root = tmp / "test-root.pem"
    test_root.write_bytes(root_pem)
    system_certs = system.count(b"-----BEGIN CERTIFICATE-----")
    moto = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    proxy = TLSProxy(moto, chain, key)

    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "MALLOC_")) or k in ("PATH", "USERS_TABLE", "REVOKED_TOKENS_TABLE", "SESSIONS_TABLE")}
    env.pop("AWS_CA_BUNDLE", None)
    env.update(
        AWS_ENDPOINT_URL_DYNAMODB=proxy.endpoint("dynamodb"),
        SSL_CERT_FILE=str(bundle),
        AWS_CA_BUNDLE=str(test_root),
        JWT_SECRET=secrets.token_urlsafe(48),
        JWT_ISSUER="https://auth.bench.test",
        JWT_ALGORITHM="HS256",
        JWT_AUDIENCE=doc["Parameters"]["JwtAudience"]["Default"],
        ROUTE_ROLES=doc["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]["ROUTE_ROLES"],
        ALLOWED_ORIGINS=ORIGIN,
        # As deployed: metrics on (the template's default namespace), JSON logs.
        METRICS_NAMESPACE=doc["Parameters"]["MetricsNamespace"]["Default"],
        METRICS_SERVICE="bench",
        AWS_LAMBDA_LOG_FORMAT="JSON",
        RUST_LOG="warn",
        AWS_LAMBDA_LOG_LEVEL="WARN",
    )

    def binary(name):
        return [str(release_binary(name))]

    def fn_env(base, name, sizes=sizes):
        return dict(base, AWS_LAMBDA_FUNCTION_NAME=name, AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(sizes[name]))

    load = os.getloadavg()
    header = [] if RUNS >= 7 else [f"BENCH_COLD_RUNS={RUNS}: fewer than the issue's 7 runs per figure"]
    if WRAP:
        header.append(f"BENCH_COLD_WRAP: every function ran under {shlex.join(WRAP)}: its cost is in these figures")
    if LAMBDA_DIR:
        from_dir = [f for f in FUNCTIONS if (LAMBDA_DIR / f / "bootstrap").exists()]
        header.append(f"BENCH_COLD_LAMBDA_DIR: {', '.join(from_dir) or 'no function'} from {LAMBDA_DIR}/<name>/bootstrap, the rest from the {PROFILE} build")
    header += [
        f"HTTPS store: moto ({moto}) behind a TLS proxy, DynamoDB on {proxy.endpoint('dynamodb')}, Secrets Manager on {proxy.endpoint('secretsmanager')};"
        " test chain root -> intermediate -> localhost, RSA 2048",
        (f"trust: SSL_CERT_FILE (rustls-native-certs) and AWS_CA_BUNDLE for boto3 = {SYSTEM_BUNDLE} ({len(system):,} bytes, {system_certs} certificates)"
         f" + the test root = {bundle.stat().st_size:,} bytes, {system_certs + 1} certificates" if TRUST_SYSTEM else
         f"trust: SSL_CERT_FILE and boto3's AWS_CA_BUNDLE = the test root ALONE (BENCH_TRUST=test; {bundle.stat().st_size:,} bytes): the system's roots left out")
        + "; AWS_CA_BUNDLE for the Rust functions = the test root alone (added to roots built in, if the build has them)",
        f"CPU share: {share.describe()}",
    ]
    if share.available and CPU_SHARE:
        quotas = sorted({sizes[f] for f in selected} | ({rs_sizes[f] for f in selected if f in KEYED} if RS256 else set())
                        | ({128} if with_python else set()))
        header.append("  quotas: " + ", ".join(f"{m} MB -> {share.quota_us(m)} µs per {CFS_PERIOD_US} µs ({share.quota_us(m) / CFS_PERIOD_US:.3f} core)" for m in quotas)
                      + ("; init WITHOUT the quota (BENCH_INIT_BOOST)" if INIT_BOOST else f"; the quota holds for init too, except in the row '{BOOSTED}' (BENCH_INIT_BOOST=1: every function so)"))
    spawn_ms, sha_ms = machine_speed()
    header.append(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (others may be compiling: compare medians of a few runs);"
                  f" yardsticks: /bin/true run in {spawn_ms:.2f} ms, SHA-256 of 32 MiB in {sha_ms:.0f} ms of CPU (slower figures here mean a slower or busier machine, not a slower build)")
    header.append("rotation (KeyRotationFunction) is not measured: it is not on a request path (Secrets Manager invokes it on the rotation schedule)")

    results = {}
    print("preparing users and sessions (HS256) ...", file=sys.stderr, flush=True)
    user, pool = prepare_users(env, binary, 2 * RUNS + 2)
    events = events_for(user, pool)
    rows = {}
    failures = []
    def attempt(rows, row, name, *args, **kwargs):
        """rows[row] = measure(name, ...), or the failure noted and the row left out."""
        try:
            rows[row] = measure(name, *args, share=share, proxy=proxy, **kwargs)
        except Measured as e:
            failures.append(str(e))
            print(f"  {e}", file=sys.stderr)

    print("measuring HS256 (JWT_SECRET in the environment) ...", file=sys.stderr, flush=True)
    for name in selected:
        attempt(rows, name, name, binary(name), fn_env(env, name), events[name], sizes[name])
    if BOOSTED_ROW and "authorizer" in selected:
        attempt(rows, BOOSTED, BOOSTED, binary("authorizer"), fn_env(env, "authorizer"), events["authorizer"], sizes["authorizer"], boost=True)
    if with_python:
        py_env = {k: v for k, v in env.items() if k != "SSL_CERT_FILE"}
        py_env.update(PYTHONPATH=str(ROOT / "scripts"), AWS_CA_BUNDLE=str(bundle), AWS_LAMBDA_FUNCTION_NAME="python-authorizer",
                      AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128")
        attempt(rows, "python authorizer", "python authorizer (PyJWT + boto3)",
                [sys.executable, "-m", "awslambdaric", "bench_python_authorizer.handler"], py_env,
                forever(lambda: authorizer_event(user["access_token"])), 128, cwd=str(ROOT / "scripts"))
    results["HS256, JWT_SECRET in the environment (as bench.py; the Python authorizer verifies only HS256)"] = rows

    keyed = [f for f in selected if f in KEYED]
    if RS256 and keyed:
        import boto3

        print("preparing RS256 keys in Secrets Manager, users and sessions ...", file=sys.stderr, flush=True)
        sm = boto3.client("secretsmanager", endpoint_url=moto)
        private = signing_keys.generate("RS256")
        suffix = uuid.uuid4().hex[:8]
        private_arn = sm.create_secret(Name=f"bench-jwt-private-{suffix}", SecretString=private)["ARN"]
        public_arn = sm.create_secret(Name=f"bench-jwt-public-{suffix}", SecretString=public_jwks(private))["ARN"]
        rs_env = {k: v for k, v in env.items() if k != "JWT_SECRET"}
        rs_env.update(JWT_ALGORITHM="RS256", JWT_PUBLIC_KEYS_ARN=public_arn, AWS_ENDPOINT_URL_SECRETS_MANAGER=proxy.endpoint("secretsmanager"))
        signers = {"register", "login", "refresh", "account"}  # as template.yaml gives JWT_PRIVATE_KEY_ARN

        def rs_fn_env(name):
            e = fn_env(rs_env, name, rs_sizes)
            if name in signers:
                e["JWT_PRIVATE_KEY_ARN"] = private_arn
            return e

        signer_env = dict(rs_env, JWT_PRIVATE_KEY_ARN=private_arn)
        rs_user, rs_pool = prepare_users(signer_env, binary, RUNS + 2)
        rs_events = events_for(rs_user, rs_pool)
        rows = {}
        print("measuring RS256 (keys read from Secrets Manager over HTTPS) ...", file=sys.stderr, flush=True)
        for name in keyed:
            attempt(rows, name, name, binary(name), rs_fn_env(name), rs_events[name], rs_sizes[name])
        if BOOSTED_ROW and "authorizer" in keyed:
            attempt(rows, BOOSTED, BOOSTED, binary("authorizer"), rs_fn_env("authorizer"), rs_events["authorizer"], rs_sizes["authorizer"],
                    boost=True)
        results["RS256, keys read from Secrets Manager over HTTPS (the deployed default; functions that read no keys are as above)"] = rows

    report(results, share, header, platform.machine())
    print()
    print("Where the time went, run by run (median-wall run; ms from sending the invocation; handshake ms in brackets):")
    for config, rows in results.items():
        tag = "RS256" if config.startswith("RS256") else "HS256"
        for name, m in rows.items():
            median_run = sorted(m["runs"], key=lambda r: r["wall"])[len(m["runs"]) // 2]
            cpu = f", CPU {median_run['cpu']:.1f} ms, throttled {median_run['throttled']:.1f} ms" if "cpu" in median_run else ""
            print(f"  {tag} {name:<18} init {median_run['init']:.1f} + invoke {median_run['invoke']:.1f}{cpu}: {timeline(median_run)}")
    versions = sorted({f"{c.version} {c.cipher}" for rows in results.values() for m in rows.values() for r in m["runs"] for c in r["conns"] if c.version})
    if versions:
        print(f"  negotiated: {'; '.join(versions)}")
    print()
    print("Target (issue 15; this machine, medians):")
    hs = results[next(iter(results))]
    if "authorizer" in hs:
        wall = med([r["wall"] for r in hs["authorizer"]["runs"]])
        applied = share.available and CPU_SHARE
        init = "init without the quota (BENCH_INIT_BOOST)" if INIT_BOOST else "the quota on init too"
        print(f"  authorizer invoke-to-answer <= {TARGET_MS:.0f} ms at the 128 MB share over HTTPS: {wall:.1f} ms (HS256, {init})"
              + ("" if applied else "  [NOT at the 128 MB share: no quota was applied]"))
        for config, rows in list(results.items())[1:]:
            if "authorizer" in rows:
                print(f"    RS256 with keys from Secrets Manager: {med([r['wall'] for r in rows['authorizer']['runs']]):.1f} ms")
        if applied and BOOSTED in hs:
            boosted = " (RS256: ".join(f"{med([r['wall'] for r in rows[BOOSTED]['runs']]):.1f} ms" for rows in results.values() if BOOSTED in rows)
            boosted += ")" if "(RS256" in boosted else ""
            print(f"    with init on a whole vCPU, as on-demand Lambda runs it (the row '{BOOSTED}'): {boosted}")
        if applied:
            quota_ms, period_ms = share.quota_us(128) / 1000, CFS_PERIOD_US / 1000
            periods = -(-TARGET_MS // period_ms)  # the quota periods 25 ms can touch at best
            cpu = med([r.get("cpu", float("nan")) for r in hs["authorizer"]["runs"]])
            print(f"    at this share {TARGET_MS:.0f} ms of wall holds {TARGET_MS * quota_ms / period_ms:.1f} ms of CPU spread evenly,"
                  f" {periods * quota_ms:.1f} ms with the luckiest period boundaries ({periods:.0f} x {quota_ms:.2f} ms per {period_ms:.0f} ms);"
                  f" the authorizer's cold answer used {cpu:.1f} ms")
        if "python authorizer" in hs:
            py = med([r["wall"] for r in hs["python authorizer"]["runs"]])
            print(f"  Python authorizer, same conditions: {py:.1f} ms ({py / wall:.1f}x the Rust one)")
    load = os.getloadavg()
    print(f"  load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for f in failures:
        print(f"NOT MEASURED: {f.splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
