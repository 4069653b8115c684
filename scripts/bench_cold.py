"""`make bench`, second part: the cold answer as a deployed function meets it.

Runs inside scripts/with_dynamodb.py, after bench.py, on the same build (`make bench`: the
static one `make build` packages, BENCH_COLD_LAMBDA_DIR; else cargo's release build):

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

The pieces live in scripts/devtools/ (the CA: pki.py, the proxy: tlsproxy.py, the cgroups:
cgroup.py, the emulator: rie.py, the events and users: invocations.py; which functions,
and which of them read keys or sign: shared/functions.json through functions.py); this
script runs them and reports.

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
                                default the quota holds from exec to answer (the method of the targets in docs/performance.md) and the
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

Figures, not assertions: the targets (docs/performance.md) are printed beside them.
"""

import hashlib
import os
import pathlib
import platform
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from devtools import ROOT, cargo_target, functions, keys, template
from devtools.cgroup import CpuShare
from devtools.invocations import authorizer_event, events_for, forever, prepare_users
from devtools.pki import make_pki
from devtools.rie import Runtime, check, inherited_env
from devtools.tlsproxy import TLSProxy

RUNS = int(os.environ.get("BENCH_COLD_RUNS", "7"))
ONLY = [f for f in os.environ.get("BENCH_ONLY", "").split(",") if f]
CPU_SHARE = os.environ.get("BENCH_CPU_SHARE", "1") not in ("0", "false", "no", "off")
CFS_PERIOD_US = int(os.environ.get("BENCH_CFS_PERIOD_US", "20000"))
RS256 = os.environ.get("BENCH_RS256", "1") not in ("0", "false", "no", "off")
# BENCH_INIT_BOOST=1: init without the quota, the invocation under it, for every function.
# On-demand Lambda runs init on a full vCPU (AWS's own guide, see the docstring), but the
# Lambda Developer Guide does not say so, so the table keeps the quota on by default (the
# targets' method) and only the authorizer gets a second row the other way (BOOSTED).
INIT_BOOST = os.environ.get("BENCH_INIT_BOOST", "0") not in ("0", "false", "no", "off", "")
BOOSTED = "authorizer, init boost"
BOOSTED_ROW = not INIT_BOOST
# BENCH_TRUST=test: trust the test root alone, to see what parsing the system's roots costs.
TRUST_SYSTEM = os.environ.get("BENCH_TRUST", "system") != "test"
# The release build is what is measured; `debug` only to try this script out quickly.
PROFILE = os.environ.get("BENCH_COLD_PROFILE", "release")
WRAP = shlex.split(os.environ.get("BENCH_COLD_WRAP", ""))
LAMBDA_DIR = pathlib.Path(os.environ["BENCH_COLD_LAMBDA_DIR"]).resolve() if os.environ.get("BENCH_COLD_LAMBDA_DIR") else None
# Every function on a request path (the HTTP functions and the authorizer), in
# shared/functions.json's order; rotation runs on a schedule, not for a caller.
FUNCTIONS = [f.name for f in functions.load() if f.on_request_path]
# The deployed default (RS256, keys in Secrets Manager) changes only the functions that
# read keys (the table's `keys`: sign, verify or publish).
KEYED = [f.name for f in functions.load() if f.on_request_path and f.reads_keys]
PYTHON = "python"
SYSTEM_BUNDLE = pathlib.Path("/etc/ssl/certs/ca-certificates.crt")
ORIGIN = "http://127.0.0.1:3001"
TARGET_MS = 25.0


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
    """The build of `name` (BENCH_COLD_LAMBDA_DIR's, else cargo's)."""
    return cargo_target.built(name, PROFILE, LAMBDA_DIR)


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
        sys.exit(f"missing: {', '.join(missing)}: `make bench` builds them")
    # MemorySize per binary as deployed with each SigningAlgorithm.
    doc = template.load()
    sizes = template.memory_sizes(doc, {"SigningAlgorithm": "HS256"})
    rs_sizes = template.memory_sizes(doc, {"SigningAlgorithm": "RS256"})
    selected = [f for f in FUNCTIONS if not ONLY or f in ONLY]
    with_python = not ONLY or PYTHON in ONLY

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-cold-"))
    share = CpuShare(tmp, period_us=CFS_PERIOD_US, quota=CPU_SHARE, init_boost=INIT_BOOST)
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

    env = inherited_env()
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
    header = [] if RUNS >= 7 else [f"BENCH_COLD_RUNS={RUNS}: fewer than the targets' 7 runs per figure"]
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
        private = keys.generate("RS256")
        suffix = uuid.uuid4().hex[:8]
        private_arn = sm.create_secret(Name=f"bench-jwt-private-{suffix}", SecretString=private)["ARN"]
        public_arn = sm.create_secret(Name=f"bench-jwt-public-{suffix}", SecretString=keys.public_jwks(private))["ARN"]
        rs_env = {k: v for k, v in env.items() if k != "JWT_SECRET"}
        rs_env.update(JWT_ALGORITHM="RS256", JWT_PUBLIC_KEYS_ARN=public_arn, AWS_ENDPOINT_URL_SECRETS_MANAGER=proxy.endpoint("secretsmanager"))
        # The signers get JWT_PRIVATE_KEY_ARN, as template.yaml gives it.
        signers = {f.name for f in functions.load() if f.signs}

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
    print("Target (docs/performance.md; this machine, medians):")
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
            print(f"  authorizer >= 100x faster than the Python authorizer in the same conditions: {py / wall:.1f}x (Python {py:.1f} ms)")
    load = os.getloadavg()
    print(f"  load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for f in failures:
        print(f"NOT MEASURED: {f.splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
