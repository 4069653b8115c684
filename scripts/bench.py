"""`make bench`: how fast, small and cheap every function is, next to the Python stack.

Runs inside scripts/with_dynamodb.py. For each function's release binary (`make bench`:
the static build `make build` packages, BENCH_LAMBDA_DIR; else cargo's release build, see
scripts/devtools/cargo_target.py) under AWS's
Runtime Interface Emulator (the one `sam local invoke` uses): cold-start init duration
(median of COLD_STARTS fresh emulators), warm invocation duration (median), the runtime
process's CPU per warm invocation (everything it does, not just the handler), peak RSS of
the runtime process, binary size, and DynamoDB round trips per invocation, counted by a
proxy in front of the emulator. The same for an equivalent Python authorizer (PyJWT +
boto3, scripts/bench_python_authorizer.py) under the same emulator and DynamoDB server.
Then the criterion benchmarks of shared/benches (JWT sign/verify, argon2id, the
authorizer's CPU per request) and PyJWT's verify.

Figures, not assertions: the targets are printed beside them.
"""

import os
import pathlib
import platform
import re
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import timeit

from devtools import ROOT, cargo_target, functions, template
from devtools.invocations import authorizer_event, events_for, forever, prepare_users
from devtools.rie import Runtime, check, inherited_env

COLD_STARTS = int(os.environ.get("BENCH_COLD_STARTS", "10"))
WARM = int(os.environ.get("BENCH_WARM", "30"))
# The functions measured (a choice: the request path); what they are (which hash
# passwords) comes from shared/functions.json.
FUNCTIONS = ["register", "login", "refresh", "logout", "me", "authorizer"]
# BENCH_ONLY=login,register: just those functions' rows (no Python, no criterion), for
# comparing builds quickly; `make bench` without it prints everything.
ONLY = [f for f in os.environ.get("BENCH_ONLY", "").split(",") if f]
# BENCH_LAMBDA_DIR=DIR: run DIR/<name>/bootstrap where it exists (`cargo lambda build
# --lambda-dir DIR`: another target or linking), to compare builds function by function.
LAMBDA_DIR = pathlib.Path(os.environ["BENCH_LAMBDA_DIR"]).resolve() if os.environ.get("BENCH_LAMBDA_DIR") else None
HASHING = {f.name for f in functions.load() if f.hashes_passwords}


class CountingProxy:
    """Forwards TCP to the DynamoDB server and counts the API calls (X-Amz-Target)."""

    TARGET = re.compile(rb"x-amz-target:\s*DynamoDB_\d+\.(\w+)", re.IGNORECASE)

    def __init__(self, endpoint):
        host, port = endpoint.rsplit("/", 1)[-1].split(":")
        self.upstream = (host, int(port))
        self.streams = []
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def calls(self):
        with self.lock:
            return [m.decode() for buf in self.streams for m in self.TARGET.findall(bytes(buf))]

    def _accept(self):
        while True:
            client, _ = self.server.accept()
            upstream = socket.create_connection(self.upstream)
            buf = bytearray()
            with self.lock:
                self.streams.append(buf)
            threading.Thread(target=self._pump, args=(client, upstream, buf), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, src, dst, record):
        try:
            while data := src.recv(65536):
                if record is not None:
                    with self.lock:
                        record.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def measure(command, env, events, cwd=None):
    """COLD_STARTS fresh environments, one invocation each, then warm invocations in the
    last one; `events` yields a fresh event per call."""
    inits = []
    for i in range(COLD_STARTS):
        rt = Runtime(command, env, cwd)
        check(rt.invoke(next(events)))
        inits += rt.init_ms()
        if i < COLD_STARTS - 1:
            rt.stop()
    warm_events = [next(events) for _ in range(WARM)]
    calls_before = len(PROXY.calls())
    check(rt.invoke(warm_events[0]))
    round_trips = PROXY.calls()[calls_before:]
    cpu_before, _ = rt.schedstat_ms()
    for ev in warm_events[1:]:
        check(rt.invoke(ev))
    # What a warm invocation costs the process in all: the runtime API's two requests, the
    # event's JSON, the handler, its store calls (moto closes each connection, so a TCP
    # connect too, unlike DynamoDB) and the logs; criterion's figures are the handler's alone.
    warm_cpu_us = (rt.schedstat_ms()[0] - cpu_before) * 1000 / max(1, len(warm_events) - 1)
    rss = rt.peak_rss_kib()
    warm = rt.invoke_ms()[1:]  # the first was this environment's cold invocation
    rt.stop()
    return {"init": statistics.median(inits), "warm": statistics.median(warm), "warm_cpu": warm_cpu_us, "rss": rss / 1024, "calls": round_trips}


def release_binary(name):
    """The release build of `name`: BENCH_LAMBDA_DIR/<name>/bootstrap where there is one
    (another build, e.g. a static musl one), else cargo's target directory's
    (CARGO_TARGET_DIR honoured)."""
    return cargo_target.built(name, "release", LAMBDA_DIR)


def main():
    global PROXY
    try:
        missing = [str(b) for b in map(release_binary, FUNCTIONS) if not b.exists()]
    except cargo_target.CargoTargetError as e:
        sys.exit(str(e))
    if missing:
        sys.exit(f"missing: {', '.join(missing)}: `make bench` builds them")
    doc = template.load()
    PROXY = CountingProxy(os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    env = inherited_env()
    env.update(
        AWS_ENDPOINT_URL_DYNAMODB=PROXY.endpoint,
        JWT_SECRET=secrets.token_urlsafe(48),
        # A fixed issuer (the template's default, empty, is learnt from the API's requests);
        # HS256, the one algorithm the Python authorizer it compares with verifies.
        JWT_ISSUER="https://auth.bench.test",
        JWT_ALGORITHM="HS256",
        JWT_AUDIENCE=doc["Parameters"]["JwtAudience"]["Default"],
        ROUTE_ROLES=doc["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]["ROUTE_ROLES"],
        RUST_LOG="warn",
        AWS_LAMBDA_LOG_LEVEL="WARN",
    )

    def binary(name):
        return [str(release_binary(name))]

    # A user, and a pool of sessions for the functions that use a token up.
    user, pool = prepare_users(env, binary, 2 * (COLD_STARTS + WARM))
    events = events_for(user, pool)
    results = {}
    for name in ONLY or FUNCTIONS:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        results[name] = measure(binary(name), env, events[name])
        results[name]["size"] = release_binary(name).stat().st_size / (1024 * 1024)
    if ONLY:
        for name, m in results.items():
            print(f"{name:<12} cold init {m['init']:.2f} ms, warm {m['warm']:.2f} ms ({m['warm_cpu']:.0f} µs of CPU), peak RSS {m['rss']:.1f} MiB, "
                  f"{release_binary(name).stat().st_size:,} bytes, {len(m['calls'])} DynamoDB calls")
        return

    print("measuring the Python authorizer ...", file=sys.stderr, flush=True)
    py_env = dict(env, PYTHONPATH=str(ROOT / "scripts"), AWS_LAMBDA_FUNCTION_NAME="python-authorizer")
    results["python authorizer"] = measure(
        [sys.executable, "-m", "awslambdaric", "bench_python_authorizer.handler"], py_env,
        forever(lambda: authorizer_event(user["access_token"])), cwd=str(ROOT / "scripts"),
    )

    # Under fat LTO the whole program is optimised at the level of its root crate: for the
    # bench that is `shared` (opt-level "s", like refresh/logout/me/authorizer), while
    # register and login are built at 3. So JWT and the authorizer are measured as built,
    # then argon2 again with the bench built at 3, as the two hashing functions have it.
    def criterion(*args):
        print(f"running the criterion benchmarks (cargo bench {' '.join(args)}) ...", file=sys.stderr, flush=True)
        out = subprocess.run(
            ["cargo", "bench", "--locked", *args, "-p", "shared", "--bench", "crypto", "--", "--output-format", "bencher"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
        return {m[0]: float(m[1].replace(",", "")) for m in re.findall(r"test (\S+)\s+\.\.\. bench:\s+([\d,]+) ns/iter", out)}

    ns = criterion()
    ns.update({f"{k} at 3": v for k, v in criterion("--config", "profile.bench.package.shared.opt-level=3").items() if k.startswith("argon2id")})

    import jwt  # PyJWT, installed by `make bench`

    token = user["access_token"]
    n = 20000
    pyjwt_us = timeit.timeit(
        lambda: jwt.decode(token, env["JWT_SECRET"], algorithms=["HS256"], issuer=env["JWT_ISSUER"], audience=env["JWT_AUDIENCE"]),
        number=n,
    ) / n * 1e6
    report(results, ns, pyjwt_us)


def report(r, ns, pyjwt_us):
    arch = platform.machine()
    print()
    print(f"Lambda functions under aws-lambda-rie ({arch}; cold = median of {COLD_STARTS} fresh environments, warm = median of {WARM}, warm CPU = the process's mean over the last {WARM - 1})")
    print(f"{'function':<20} {'cold init ms':>12} {'warm ms':>8} {'warm CPU µs':>12} {'peak RSS MiB':>13} {'binary MiB':>11}  DynamoDB calls per invocation")
    for name, m in r.items():
        size = f"{m['size']:.2f}" if "size" in m else "-"
        calls = ", ".join(m["calls"]) or "none"
        print(f"{name:<20} {m['init']:>12.2f} {m['warm']:>8.2f} {m['warm_cpu']:>12.0f} {m['rss']:>13.1f} {size:>11}  {len(m['calls'])} ({calls})")
    rust, py = r["authorizer"], r["python authorizer"]
    print()
    print(f"authorizer, Python / Rust: cold init {py['init'] / rust['init']:.1f}x, warm {py['warm'] / rust['warm']:.1f}x, peak RSS {py['rss'] / rust['rss']:.1f}x")
    print()
    print("CPU per operation (criterion, release build, this machine)")
    us = {k: v / 1000 for k, v in ns.items()}
    print(f"  JWT sign (HS256)                 {us.get('jwt_sign', float('nan')):>10.2f} µs")
    print(f"  JWT verify (HS256)               {us.get('jwt_verify', float('nan')):>10.2f} µs   PyJWT verify {pyjwt_us:.2f} µs ({pyjwt_us / us.get('jwt_verify', float('nan')):.1f}x)")
    print(f"  authorizer CPU per request       {us.get('authorizer_cpu', float('nan')):>10.2f} µs   (verify + revocation rule + policy, no I/O)")
    print(f"  argon2id hash (m=19 MiB, t=2)    {us.get('argon2id/argon2id_hash at 3', float('nan')) / 1000:>10.2f} ms   as register/login are built (opt-level 3); at \"s\": {us.get('argon2id/argon2id_hash', float('nan')) / 1000:.2f} ms")
    print(f"  argon2id verify                  {us.get('argon2id/argon2id_verify at 3', float('nan')) / 1000:>10.2f} ms   at \"s\": {us.get('argon2id/argon2id_verify', float('nan')) / 1000:.2f} ms")
    print()
    rss_light = max(r[f]["rss"] for f in FUNCTIONS if f not in HASHING)
    print("Targets (docs/performance.md):")
    print(f"  authorizer cold init <= 15 ms median: {rust['init']:.2f} ms")
    print(f"  authorizer cold init >= 25x faster than Python: {py['init'] / rust['init']:.1f}x")
    print(f"  authorizer DynamoDB round trips == 1: {len(rust['calls'])}")
    print(f"  authorizer CPU per request <= 20 µs: {us.get('authorizer_cpu', float('nan')):.2f} µs")
    print(f"  peak RSS <= 40 MB for functions that do not hash passwords: largest {rss_light:.1f} MiB")
    largest_bytes = max(release_binary(f).stat().st_size for f in FUNCTIONS)
    print(f"  every binary <= 6 MB stripped: largest {largest_bytes / 1e6:.2f} MB ({largest_bytes / 2**20:.2f} MiB), {arch} build of this machine")
    built = sam_built_binaries()
    if built:
        listed = ", ".join(f"{name} {size / 1e6:.2f} MB ({machine})" for name, machine, size in built)
        print(f"    as packaged by `make build` (.aws-sam/build): {listed}")
    else:
        print("    (`make build` packages the deployable arm64 binaries into .aws-sam/build; their sizes show here when present)")


def sam_built_binaries():
    """The `bootstrap` binaries `make build` left in .aws-sam/build: (binary, architecture
    read from the ELF header, size). Stale ones are the user's to judge: dates are not kept."""
    found = []
    for logical_id, binary in template.binaries(template.load()).items():
        path = ROOT / ".aws-sam" / "build" / logical_id / "bootstrap"
        if path.is_file():
            try:
                machine = cargo_target.elf(path)[0] or "unknown"
            except ValueError:
                machine = "not ELF"
            found.append((binary, machine, path.stat().st_size))
    return found


if __name__ == "__main__":
    main()
