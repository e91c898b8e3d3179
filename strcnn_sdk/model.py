"""`Model`: one ONNX Runtime session over a model of the strcnn-onnx contract, plus its sidecar.

A Model holds no stream state; any number of `Deblurrer`s, in any threads, can share one.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import sys
import warnings
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort

from .system import cpu_has_int8_dot

FORMAT = "strcnn-onnx/1"
INPUTS = ("frames", "F_in", "h_in")
OUTPUTS = ("sharp", "F_out", "h_out")
PRECISIONS = ("auto", "fp32", "int8", "fp16")
_PROVIDER_NAMES = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}

State = tuple[ort.OrtValue, ort.OrtValue]


class UntrainedModelWarning(UserWarning):
    """The loaded model has random weights: it runs, but does not deblur."""


def shipped_model_path(precision: str = "fp32", provider: str = "CPUExecutionProvider") -> Path:
    """Path of the model shipped inside the package in a precision ("auto": the best one for `provider`)."""
    folder = Path(str(resources.files("strcnn_sdk.weights")))
    if precision == "auto":
        best = "fp16" if provider == "CUDAExecutionProvider" else "int8" if cpu_has_int8_dot() else "fp32"
        precision = best if (folder / f"strcnn_dtb.{best}.onnx").is_file() else "fp32"
    return folder / ("strcnn_dtb.onnx" if precision == "fp32" else f"strcnn_dtb.{precision}.onnx")


def nvidia_driver_present() -> bool:
    """True where the NVIDIA driver library loads: without it CUDA cannot work, so it is not even tried."""
    try:
        ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
    except OSError:
        return False
    return True


def _resolve_providers(providers: str | Sequence[str]) -> list[str]:
    if isinstance(providers, str):
        if providers == "auto":
            cuda = "CUDAExecutionProvider" in ort.get_available_providers() and nvidia_driver_present()
            return ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        providers = [providers]
    resolved = [_PROVIDER_NAMES.get(p.lower(), p) for p in providers]
    unknown = [p for p in resolved if p not in ort.get_available_providers()]
    if unknown:
        raise ValueError(f"provider(s) {unknown} are not in this ONNX Runtime build; available: "
                         f"{ort.get_available_providers()} (or 'auto', 'cuda', 'cpu')")
    return resolved if "CPUExecutionProvider" in resolved else [*resolved, "CPUExecutionProvider"]


def _read_sidecar(path: Path) -> dict[str, Any]:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise FileNotFoundError(f"model sidecar {sidecar} not found: every .onnx needs the .json that "
                                f"`python -m export` writes beside it")
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"model sidecar {sidecar} is not readable JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"model sidecar {sidecar} is not of format {FORMAT!r}")
    for key in ("m", "width", "pad_multiple"):
        if not isinstance(meta.get(key), int):
            raise ValueError(f"model sidecar {sidecar} lacks the integer {key!r}")
    return meta


class Model:
    """One ONNX Runtime session of a STRCNN model and its sidecar facts, shareable across streams and threads.

    Args:
        path: an .onnx of the strcnn-onnx contract with its .json sidecar beside it; None for the shipped model.
        providers: "auto" (CUDA where a usable GPU is present, else CPU), "cuda", "cpu", or ONNX Runtime
            provider names in order of preference.
        threads: intra-op threads of the session; None lets ONNX Runtime use one per physical core.
        precision: which shipped variant to load when `path` is None: "fp32", "int8" (quantized, for CPUs),
            "fp16" (for GPUs), or "auto": int8 on a CPU with 8-bit dot-product instructions (VNNI, AMX), fp16 on
            CUDA, fp32 otherwise. Each variant's quality loss against fp32 is in its sidecar.
    """

    def __init__(self, path: str | Path | None = None, providers: str | Sequence[str] = "auto",
                 threads: int | None = None, precision: str = "auto") -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        requested = _resolve_providers(providers)
        if "CUDAExecutionProvider" in requested and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* wheels, where installed
        self.threads = threads
        self._open(Path(path) if path is not None else shipped_model_path(precision, requested[0]), requested)
        if path is None and precision == "auto" and self.provider != requested[0]:
            self._open(shipped_model_path("auto", self.provider), [self.provider])  # the CPU's best variant
        if requested[0] != "CPUExecutionProvider" and self.provider != requested[0]:
            warnings.warn(f"{requested[0]} was requested but ONNX Runtime could not use it and runs on "
                          f"{self.provider}; for CUDA install onnxruntime-gpu[cuda,cudnn] and an NVIDIA driver",
                          RuntimeWarning, stacklevel=2)
        if not self.meta.get("trained", False):
            warnings.warn(f"{self.path.name} is UNTRAINED (random weights): it runs but does not deblur. "
                          f"Train one with `python -m export.train` and pass it as the model.",
                          UntrainedModelWarning, stacklevel=2)

    def _open(self, path: Path, providers: list[str]) -> None:
        """Read and check the model file and its sidecar, and open the session."""
        self.path = path
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} not found")
        self.meta = _read_sidecar(path)
        data = path.read_bytes()
        expected_hash = self.meta.get("onnx_sha256")
        if expected_hash is not None and hashlib.sha256(data).hexdigest() != expected_hash:
            raise ValueError(f"model sidecar {path.with_suffix('.json')} belongs to another model "
                             f"(its onnx_sha256 does not match {path.name}): re-export the pair")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        try:
            self.session = ort.InferenceSession(data, options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for corrupt graphs
            raise ValueError(f"model file {path} cannot be loaded by ONNX Runtime: "
                             f"{str(e).splitlines()[0]}") from None
        self.provider = self.session.get_providers()[0]
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self._check_contract()

    @property
    def m(self) -> int:
        """Temporal radius: a step sees 2m+1 frames and streaming output lags input by m frames."""
        return self.meta["m"]

    @property
    def window(self) -> int:
        """Frames per step, 2m+1."""
        return 2 * self.m + 1

    @property
    def pad_multiple(self) -> int:
        """Frame height and width must be multiples of this; the Deblurrer pads to it."""
        return self.meta["pad_multiple"]

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """A frame size rounded up to what the model takes (multiples of pad_multiple)."""
        m = self.pad_multiple
        return height + -height % m, width + -width % m

    @property
    def trained(self) -> bool:
        return bool(self.meta.get("trained", False))

    def _check_contract(self) -> None:
        """Compare the graph's inputs and outputs with the contract and the sidecar."""
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if tuple(inputs) != INPUTS or tuple(outputs) != OUTPUTS:
            raise ValueError(f"model {self.path} does not follow the contract: inputs {list(inputs)}, outputs "
                             f"{list(outputs)}; expected {list(INPUTS)} and {list(OUTPUTS)}")
        width = self.meta["width"]
        channels = {"frames": 3 * self.window, "F_in": width // 2, "h_in": width,
                    "sharp": 3, "F_out": width // 2, "h_out": width}
        for name, arg in {**inputs, **outputs}.items():
            if arg.type != "tensor(float)" or len(arg.shape) != 4 or arg.shape[1] != channels[name]:
                raise ValueError(f"model {self.path}: {name} is {arg.type} {arg.shape}; the sidecar "
                                 f"(m={self.m}, width={width}) needs tensor(float) [N, {channels[name]}, ., .]")
        self.state_channels = (channels["F_in"], channels["h_in"])

    def zero_state(self, n: int, height: int, width: int) -> State:
        """The first step's state for n streams of padded height x width frames, on the session's device."""
        return tuple(ort.OrtValue.ortvalue_from_numpy(
            np.zeros((n, c, height // 2, width // 2), np.float32), self.device) for c in self.state_channels)

    def state_from_numpy(self, f: np.ndarray, h: np.ndarray) -> State:
        """Place a state given as numpy arrays on the session's device."""
        return tuple(ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(a, np.float32), self.device)
                     for a in (f, h))

    def run(self, frames: np.ndarray, state: State, sharp: np.ndarray | None = None) -> tuple[np.ndarray, State]:
        """One step: frames float32 [N, 3(2m+1), H, W] and a state -> sharp [N, 3, H, W] and the next state.

        Input and output are bound explicitly (IOBinding), so on CUDA the state never leaves the device. `sharp`,
        a float32 array of the output's shape, receives the output in place (a buffer reused across steps).
        """
        binding = self.session.io_binding()
        binding.bind_cpu_input("frames", frames)
        binding.bind_ortvalue_input("F_in", state[0])
        binding.bind_ortvalue_input("h_in", state[1])
        if sharp is not None:
            binding.bind_ortvalue_output("sharp", ort.OrtValue.ortvalue_from_numpy(sharp))
        else:
            binding.bind_output("sharp", "cpu")
        binding.bind_output("F_out", self.device)
        binding.bind_output("h_out", self.device)
        self.session.run_with_iobinding(binding)
        out, f, h = binding.get_outputs()
        return (out.numpy() if sharp is None else sharp), (f, h)

    def __repr__(self) -> str:
        return (f"Model({str(self.path)!r}, variant={self.meta.get('variant')!r}, m={self.m}, "
                f"provider={self.provider!r}, trained={self.trained})")
