"""Where cargo puts what it builds, as cargo itself reports it.

CARGO_TARGET_DIR, or `build.target-dir` in a .cargo/config.toml (the workspace's or the
user's), moves cargo's output away from ./target. Every script and test that runs a built
binary finds it through here instead of assuming ./target.
"""

import functools
import json
import pathlib
import platform
import struct
import subprocess

from devtools import ROOT


class CargoTargetError(RuntimeError):
    """cargo could not say where its target directory is."""


@functools.lru_cache(maxsize=None)
def target_dir():
    """cargo's target directory for this workspace (absolute), asked once per process:
    `cargo metadata` run from the repository root, so a relative CARGO_TARGET_DIR means
    what it means to `cargo build` there."""
    command = ["cargo", "metadata", "--format-version", "1", "--no-deps"]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise CargoTargetError("cargo is not on PATH: it is needed to find the built binaries") from None
    except subprocess.CalledProcessError as e:
        raise CargoTargetError(f"`{' '.join(command)}` failed: {e.stderr.strip()}") from None
    return pathlib.Path(json.loads(done.stdout)["target_directory"])


def binary(name, profile="debug"):
    """Path of the binary `name` of a cargo build with `profile` (debug or release)."""
    return target_dir() / profile / name


def built(name, profile, lambda_dir=None):
    """The build of `name` a benchmark runs: `lambda_dir`/<name>/bootstrap where there is one
    (a `cargo lambda build` output: another target, or another linking), else cargo's."""
    if lambda_dir and (lambda_dir / name / "bootstrap").exists():
        return lambda_dir / name / "bootstrap"
    return binary(name, profile)


def host_arch():
    """This machine's Lambda architecture name (the Makefile's HOST_ARCH)."""
    return "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"


def static_dir(arch=None):
    """Where `make build` (the Makefile's static-bins, STATIC_DIR) puts the static binaries
    of `arch` (this machine's by default): <dir>/<name>/bootstrap, the files it copies into
    SAM's artifacts."""
    return ROOT / ".local" / f"lambda-static-{arch or host_arch()}"


# ELF e_machine -> Lambda architecture.
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "arm64"}


def elf(path):
    """(Lambda architecture, or None for another machine; the types of the program headers)
    of a 64-bit little-endian ELF file. ValueError if `path` is not one."""
    data = pathlib.Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4:6] != b"\x02\x01":
        raise ValueError(f"{path} is not a 64-bit little-endian ELF file")
    (machine,) = struct.unpack_from("<H", data, 0x12)
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return ELF_MACHINES.get(machine), [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
