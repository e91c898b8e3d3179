"""Which runtime runs a model: ONNX Runtime's providers (CUDA where usable, else the CPU) or the OpenVINO backend,
from what a caller asks for ("auto", short names, ONNX Runtime's names or (name, options) pairs)."""

from __future__ import annotations

import ctypes
import sys
from typing import Any, Sequence

import onnxruntime as ort

from . import openvino_session as openvino

PROVIDER_NAMES = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider", "openvino": openvino.OPENVINO}
CPU_BACKENDS = ("CPUExecutionProvider", openvino.OPENVINO)  # what computes on the CPU: models and precisions for it


def nvidia_driver_present() -> bool:
    """True where the NVIDIA driver library loads: without it CUDA cannot work, so it is not even tried."""
    try:
        ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
    except OSError:
        return False
    return True


def cuda_usable() -> bool:
    """Whether CUDA is worth asking for: this ONNX Runtime has the provider and the NVIDIA driver loads."""
    return "CUDAExecutionProvider" in ort.get_available_providers() and nvidia_driver_present()


Provider = str | tuple[str, dict[str, Any]]
# where each GPU provider keeps its tensors, as OrtValue device types; every other provider works in host memory
DEVICES = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda", "DmlExecutionProvider": "dml"}


def resolve_providers(providers: str | Provider | Sequence[Provider],
                      device_id: int | None) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """Providers as ONNX Runtime takes them, (name, options) in order of preference, ending with the CPU: from
    "auto", our short names ("cuda", "cpu", "openvino": the OpenVINO backend), ONNX Runtime's names, or its
    (name, options) pairs; `device_id` goes into the options of every GPU provider that does not set one. Also
    whether the request is strict: it names no CPU, so running on the CPU instead is an error, not a fallback
    ("auto" is never strict). "auto" is CUDA where usable, else OpenVINO where `openvino.preferred`, else CPU."""
    strict = providers != "auto"
    if providers == "auto":
        providers = ["CUDAExecutionProvider" if cuda_usable() else
                     openvino.OPENVINO if openvino.preferred() else "CPUExecutionProvider"]
    elif isinstance(providers, str) or (isinstance(providers, tuple) and len(providers) == 2
                                        and isinstance(providers[1], dict)):
        providers = [providers]
    resolved = []
    for entry in providers:
        name, options = entry if isinstance(entry, tuple) else (entry, {})
        if not isinstance(name, str) or not isinstance(options, dict):
            raise TypeError(f"a provider is a name or a (name, options dict) pair, got {entry!r}")
        name = PROVIDER_NAMES.get(name.lower(), name)
        options = {k: str(v) for k, v in options.items()}
        if device_id is not None and name in DEVICES:
            options.setdefault("device_id", str(device_id))
        resolved.append((name, options))
    if openvino.OPENVINO in [name for name, _ in resolved] and not openvino.installed():
        raise ValueError(f"the openvino provider needs OpenVINO, which is not installed: {openvino.EXTRA}")
    unknown = [name for name, _ in resolved if name not in [*ort.get_available_providers(), openvino.OPENVINO]]
    if unknown:
        raise ValueError(f"provider(s) {unknown} are not in this ONNX Runtime build; available: "
                         f"{ort.get_available_providers()} (or 'auto', 'cuda', 'cpu', 'openvino')")
    if "CPUExecutionProvider" not in [name for name, _ in resolved]:
        resolved.append(("CPUExecutionProvider", {}))
    else:
        strict = False
    return resolved, strict


def first_provider(providers: str | Provider | Sequence[Provider]) -> str:
    """The provider that a Model of `providers` tries first."""
    return resolve_providers(providers, None)[0][0][0]
