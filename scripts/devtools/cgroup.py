"""Lambda's CPU share for one function process, as far as one machine can give it: a cgroup
per memory size whose CFS quota is MemorySize/1769 of a core (1,769 MB = one vCPU), joined
by the function from its first instruction (scripts/cgroup_join.c, built with `cc` at run
time), and the group's CPU accounting. cgroup v1 or v2; where cgroups cannot be written,
`available` is False and `reason` says why.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import time

ONE_VCPU_MB = 1769
MIN_QUOTA_US = 1000  # the kernel's smallest CFS quota


class CpuShare:
    """A CFS quota of memory/1769 of a core for the function process only, plus CPU time
    accounting. cgroup v1 (cpu, and cpuacct where mounted apart) or v2 (cpu.max)."""

    def __init__(self, tmp, period_us=20000, quota=True, init_boost=False):
        """`tmp`: a directory for the joiner; `period_us`: the CFS period the quota is a share
        of; `quota`: False counts CPU time without limiting it; `init_boost`: the caller
        lifts the quota for init (init_unlimited, after_init), said in describe()."""
        self.tmp = tmp
        self.period_us = period_us
        self.quota = quota
        self.init_boost = init_boost
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
        return max(MIN_QUOTA_US, round(self.period_us * memory / ONE_VCPU_MB))

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
            (dirs[0] / "cpu.max").write_text(f"{quota or 'max'} {self.period_us}")

    def group(self, memory):
        """The wrapper command prefix for a function of `memory` MB (None: run unconfined)."""
        if not self.available:
            return None
        if memory not in self.groups:
            dirs = self._make(memory)
            if self.version == 1:
                (dirs[0] / "cpu.cfs_period_us").write_text(str(self.period_us))
            self._set_quota(dirs, self.quota_us(memory) if self.quota else None)
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
            source = pathlib.Path(__file__).resolve().parent.parent / "cgroup_join.c"
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
        """Init without the quota (BENCH_INIT_BOOST): none until `after_init` (the group holds one process at a time)."""
        self._set_quota(self.groups[memory]["dirs"], None)

    def after_init(self, memory):
        """After an init without it: the quota again, at once (no process moves between groups)."""
        self._set_quota(self.groups[memory]["dirs"], self.quota_us(memory) if self.quota else None)

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
        if not self.quota:
            return f"OFF (BENCH_CPU_SHARE=0): no quota, the whole machine's CPU; {kind} groups only count CPU time"
        boost = "; BENCH_INIT_BOOST: init runs WITHOUT the quota (set when the emulator reports init done)" if self.init_boost else ""
        return (f"{kind}, period {self.period_us} µs, quota = MemorySize/{ONE_VCPU_MB} of one core{boost}; "
                f"joined just before exec by {self.joiner() and self.join_kind}")
