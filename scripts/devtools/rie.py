"""AWS's Runtime Interface Emulator (aws-lambda-rie, the one `sam local invoke` uses, shipped
in the aws-sam-cli package) running one function: a fresh execution environment per
Runtime, its log, the emulator's INIT REPORT and INVOKE RTDONE figures, and what the
kernel says of the runtime process (CPU, run-queue wait, page faults, peak RSS).
"""

import json
import os
import pathlib
import platform
import re
import socket
import subprocess
import tempfile
import time
import urllib.request

import samcli

from devtools.net import free_port

RIE = pathlib.Path(samcli.__file__).parent / "local" / "rapid" / f"aws-lambda-rie-{platform.machine()}"


def inherited_env(environ=os.environ):
    """What a function run here is given of this process's environment: the AWS SDK's
    variables (endpoints, region, credentials), glibc's MALLOC_ tunables, PATH, and the
    table names scripts/with_dynamodb.py exports."""
    return {k: v for k, v in environ.items() if k.startswith(("AWS_", "MALLOC_")) or k in ("PATH", "USERS_TABLE", "REVOKED_TOKENS_TABLE", "SESSIONS_TABLE")}


class Runtime:
    """One execution environment: a fresh emulator running `command`."""

    def __init__(self, command, env, cwd=None):
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(RIE), "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
             "--runtime-api-address", f"127.0.0.1:{free_port()}", *command],
            env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"emulator did not start: {self.text()[-2000:]}")
                time.sleep(0.02)

    def invoke(self, event):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/2015-03-31/functions/function/invocations", data=json.dumps(event).encode()
        )
        with urllib.request.urlopen(req, timeout=60) as res:
            return json.loads(res.read())

    def text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def init_ms(self):
        return [float(x) for x in re.findall(r"INIT REPORT\(durationMs: ([\d.]+)\)", self.text())]

    def invoke_ms(self):
        return [float(x) for x in re.findall(r"INVOKE RTDONE\(status: \w+, produced bytes: \d+, duration: ([\d.]+)ms\)", self.text())]

    def children(self):
        """The pids of the runtime process (the emulator's child; a list for the rare
        moment it has more than one)."""
        return [int(child) for task in pathlib.Path(f"/proc/{self.proc.pid}/task").iterdir()
                for child in (task / "children").read_text().split()]

    def schedstat_ms(self):
        """(CPU, run-queue wait) so far, in ms, of the runtime process (the emulator's
        child), summed over its live threads, from /proc/PID/task/*/schedstat
        (nanoseconds, unlike the clock ticks of /proc/PID/stat)."""
        cpu = wait = 0
        for child in self.children():
            for thread in pathlib.Path(f"/proc/{child}/task").iterdir():
                on_cpu, queued, _ = (thread / "schedstat").read_text().split()
                cpu, wait = cpu + int(on_cpu), wait + int(queued)
        return cpu / 1e6, wait / 1e6

    def minor_faults(self):
        """Minor page faults so far of the runtime process (the emulator's child): field 10
        of /proc/PID/stat, which counts every thread, ended ones included."""
        faults = 0
        for child in self.children():
            stat = pathlib.Path(f"/proc/{child}/stat").read_text()
            # After the command name in parentheses: state is field 3, minflt field 10.
            faults += int(stat[stat.rindex(")") + 2:].split()[7])
        return faults

    def peak_rss_kib(self):
        """VmHWM of the runtime process (the emulator's child)."""
        peak = 0
        for child in self.children():
            status = pathlib.Path(f"/proc/{child}/status").read_text()
            peak = max(peak, int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)))
        return peak

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def check(answer):
    """`answer`, unless it is an error (the runtime's errorMessage, or a status of 400 or more)."""
    status = answer.get("statusCode")
    if "errorMessage" in answer or (status is not None and status >= 400):
        raise RuntimeError(f"unexpected answer: {json.dumps(answer)[:400]}")
    return answer
