"""OpenVINO, the second backend of `Model` (``pip install "strcnn-sdk[openvino]"``): Intel's runtime reads the
same .onnx files and runs the same contract (frames and the explicit state in, the sharp frame and the next
state out). On Intel CPUs with 8-bit dot-product instructions it runs the shipped models 1.5-1.9x as fast as
ONNX Runtime (docs/BENCHMARKS.md), so `auto` picks it there. Only this module imports openvino.
"""

from __future__ import annotations

import importlib.metadata
import io
import importlib.util
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .system import cpu_has_int8_dot, cpu_vendor

OPENVINO = "OpenVINO"  # `Model.provider` while this backend runs
EXTRA = 'pip install "strcnn-sdk[openvino]"'


def installed() -> bool:
    """Whether the openvino package can be imported."""
    return importlib.util.find_spec("openvino") is not None


def describe() -> str:
    """OpenVINO's version and whether `auto` picks it here, in words for `strcnn info`."""
    if not installed():
        return f"OpenVINO not installed ({EXTRA} adds it)"
    auto = "auto picks it here" if preferred() else "auto does not pick it here (not an Intel CPU with VNNI or AMX)"
    return f"OpenVINO {importlib.metadata.version('openvino')} ({auto})"


def preferred() -> bool:
    """Whether `auto` runs OpenVINO: installed, on an Intel CPU with VNNI or AMX, where it was measured at 1.5-1.9x
    ONNX Runtime's frames a second (docs/BENCHMARKS.md). Elsewhere ONNX Runtime runs: AMD CPUs are not measured
    yet, and without 8-bit dot products the int8 files that make the difference are not what runs."""
    return cpu_vendor() == "GenuineIntel" and cpu_has_int8_dot() and installed()


class Port(NamedTuple):
    """An input or output as `Model`'s contract check reads it (ONNX Runtime's NodeArg has the same fields)."""

    name: str
    type: str
    shape: list[int | None]


class HostTensor:
    """A state tensor in host memory, with the `numpy()` of ONNX Runtime's OrtValue that `Deblurrer` reads."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def numpy(self) -> np.ndarray:
        return self.array


class Session:
    """A model compiled for OpenVINO's CPU plugin, for latency. `exact` (an fp32 file) keeps fp32 arithmetic; else
    OpenVINO's own choice runs (bf16 beside the int8 layers on CPUs with AMX), which `inference_precision` names.
    Each thread gets its own infer request, so that Deblurrers in several threads share one Session as they share
    one ONNX Runtime session."""

    def __init__(self, data: bytes, path: Path, threads: int | None, exact: bool) -> None:
        """Compile the model file's bytes (`data`, those whose SHA-256 `Model` checked; `path` names it in
        errors)."""
        import openvino as ov

        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        if exact:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(io.BytesIO(data)), "CPU", config)
        except RuntimeError as e:  # OpenVINO's message ends with its reason, after the places that passed it on
            reason = [line for line in str(e).splitlines() if line.strip()][-1:] or ["no reason given"]
            raise ValueError(f"model file {path} cannot be loaded by OpenVINO: {reason[0]}") from None
        self.inference_precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
        self._local = threading.local()
        self._tensor = ov.Tensor  # the output buffers' wrapper, looked up once rather than at every step

    @staticmethod
    def _port(port) -> Port:
        """A port as ONNX Runtime names it: OpenVINO gives each port the graph's name and the exporter's inner
        names of the same tensor (which begin with "/")."""
        name = min(port.get_names(), key=lambda name: (name.startswith("/"), name))
        shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        kind = port.get_element_type().get_type_name()
        return Port(name, "tensor(float)" if kind == "f32" else kind, shape)

    def get_inputs(self) -> list[Port]:
        return [self._port(port) for port in self.compiled.inputs]

    def get_outputs(self) -> list[Port]:
        return [self._port(port) for port in self.compiled.outputs]

    def run(self, frames: np.ndarray, f: np.ndarray, h: np.ndarray,
            into: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """One step: frames, F and h are read in place, and the sharp frame, F and h written into `into`
        (C-contiguous float32 arrays of their shapes): nothing is copied either way."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        for index, array in enumerate(into):
            request.set_output_tensor(index, self._tensor(array, shared_memory=True))
        request.infer({"frames": frames, "F_in": f, "h_in": h}, share_inputs=True)
