"""Facts about the machine printed beside every figure (the processor's relevant flags, resident memory), and small
helpers every module shares: atomic writes, timing, and warnings attributed to the caller's code."""

from __future__ import annotations

import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable


@functools.cache
def _cpuinfo() -> tuple[str, str, tuple[str, ...]]:
    """The processor's name, its vendor (GenuineIntel, AuthenticAMD; "" where unknown) and its feature flags
    (Linux; elsewhere the name only); read once, as they do not change while a process runs."""
    name, vendor, flags = platform.processor() or platform.machine(), "", ()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")):
                flags = tuple(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return name, vendor, flags


def cpu_vendor() -> str:
    """The CPU's vendor as the processor reports it: GenuineIntel, AuthenticAMD ("" where unknown)."""
    return _cpuinfo()[1]


def cpu_has_int8_dot() -> bool:
    """True where the CPU multiplies 8-bit integers natively (x86 VNNI or AMX, ARM dot product), which is
    where an int8 model outruns fp32."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"} & set(_cpuinfo()[2]))


def cpu_flags() -> str:
    """The processor and the flags that decide its speed here (AVX2, AVX-512, VNNI, AMX)."""
    name, _, flags = _cpuinfo()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
    return f"{name} [{' '.join(f for f in wanted if f in flags) or 'no AVX2'}]"


def rss_mib() -> float:
    """Resident memory of this process, MiB."""
    try:
        import resource

        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ImportError):
        return float("nan")


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of `runs` calls of `fn`, after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to `path` through a temporary file in the same folder, so a crash leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def caller_stacklevel() -> int:
    """The `warnings.warn` stacklevel, for the function that calls this, that names the first frame outside this
    package: a warning points at the user's line, however deep inside the package it was raised."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level
