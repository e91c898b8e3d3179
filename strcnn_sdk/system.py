"""Facts about the machine printed beside every figure: the processor's relevant flags and resident memory."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_flags() -> str:
    """The processor and the flags that decide its speed here (AVX2, AVX-512, VNNI, AMX)."""
    name, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                break
    except OSError:
        pass
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
