"""`Model`: one ONNX Runtime session over a model of the strcnn-onnx contract, plus its sidecar.

A Model holds no stream state; any number of `Deblurrer`s, in any threads, can share one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import threading
import warnings
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort

from . import openvino_session as openvino
from .providers import CPU_BACKENDS, DEVICES, Provider, first_provider, nvidia_driver_present, resolve_providers
from .system import caller_stacklevel, cpu_has_int8_dot

FORMAT = "strcnn-onnx/1"
INPUTS = ("frames", "F_in", "h_in")
OUTPUTS = ("sharp", "F_out", "h_out")
PRECISIONS = ("auto", "fp32", "int8", "fp16")
State = tuple[ort.OrtValue, ort.OrtValue] | tuple[openvino.HostTensor, openvino.HostTensor]


class UntrainedModelWarning(UserWarning):
    """The loaded model has random weights: it runs, but does not deblur."""


class QualityWarning(UserWarning):
    """The model's own measurements (its sidecar's ``quality.test``) fail the do-no-harm rule: it makes some
    footage worse, such as nearly sharp or mildly blurred video. Given once per process and model file, when the
    model first runs (not when it loads), attributed to the caller's line; Python's warning filters silence it."""


_QUALITY_WARNED: set[str] = set()  # the QualityWarnings given in this process
_QUALITY_LOCK = threading.Lock()


def _weights() -> Path:
    """The folder of the shipped models, inside the installed package."""
    return Path(str(resources.files("strcnn_sdk.weights")))


@functools.cache
def _manifest() -> dict[str, Any]:
    """``models.json`` in the package's folder of weights, which the JavaScript runtimes read too."""
    return json.loads((_weights() / "models.json").read_text())


def shipped_models() -> dict[str, dict[str, str]]:
    """The shipped models by name ("full", width 64, and "fast", a narrower network for real time on CPUs), each
    with its fp32 ``file`` (the other precisions beside it as NAME.PRECISION.onnx) and its model ``card``, in the
    package's folder of weights (`models.json`)."""
    return dict(_manifest()["models"])


def shipped_default(realtime: bool = False) -> str:
    """The shipped model that runs when none is named, as `models.json` says: its ``default`` (the one that
    gains most on the validation set while keeping the do-no-harm rule), or with `realtime` its ``realtime``
    model (the one that keeps up with a camera on a CPU)."""
    return _manifest()["realtime" if realtime else "default"]


def shipped_model_path(precision: str = "fp32", provider: str = "CPUExecutionProvider", name: str | None = None
                       ) -> Path:
    """Path of a shipped model (`name`: "full" or "fast"; None: the default) in a precision ("auto": the best one
    for `provider`)."""
    name = shipped_default() if name is None else name
    if name not in shipped_models():
        raise ValueError(f"no shipped model is named {name!r}; the shipped ones are {', '.join(shipped_models())} "
                         "(or give the path of an .onnx)")
    folder, stem = _weights(), Path(shipped_models()[name]["file"]).stem
    if precision == "auto":
        best = "fp16" if provider == "CUDAExecutionProvider" else "int8" if cpu_has_int8_dot() else "fp32"
        precision = best if (folder / f"{stem}.{best}.onnx").is_file() else "fp32"
    return folder / (f"{stem}.onnx" if precision == "fp32" else f"{stem}.{precision}.onnx")


def shipped_name(model: str | os.PathLike | None) -> str | None:
    """The shipped model that `model` names: the default (`shipped_default`) for None, the name itself for a
    shipped model's name (a str; a file of that name is given as a Path or as ./NAME), None for a path."""
    if model is None:
        return shipped_default()
    return model if isinstance(model, str) and model in shipped_models() else None


def _precision_reason(shipped: bool, precision: str, provider: str, meta: dict[str, Any]) -> str:
    """Why the loaded variant runs, in words for `strcnn info` and logs."""
    loaded = meta.get("precision", "fp32")
    if not shipped:
        return f"{loaded}: the model file given"
    if precision != "auto":
        return f"{loaded}: asked for"
    if provider == "CUDAExecutionProvider":
        why = "fp16 on CUDA"
    elif cpu_has_int8_dot():
        why = "int8 on this CPU, which has 8-bit dot-product instructions (VNNI, AMX or ARM dot product)"
    else:
        why = "fp32 on this CPU, which lacks 8-bit dot-product instructions (int8 would run slower)"
    best = why.split()[0]
    return f"{loaded}: auto picks {why}" + ("" if best == loaded else f"; the {best} variant is not installed")


_LOG = {"shown": False}  # whether ONNX Runtime's own log reaches stderr (see show_onnxruntime_log)


def show_onnxruntime_log(show: bool = True) -> None:
    """Let ONNX Runtime's own messages (CUDA libraries that fail to load, kernel warnings) reach stderr when Models
    open, or keep them quiet, the default: the runtime reports what matters in its own words (`strcnn -v`)."""
    _LOG["shown"] = show


@contextlib.contextmanager
def _onnxruntime_quiet() -> Any:
    """Unless the log is shown: ONNX Runtime's process-wide logger at FATAL only (a provider that fails to load
    logs an ERROR) and the CUDA library preloader's prints captured."""
    if _LOG["shown"]:
        ort.set_default_logger_severity(2)  # ONNX Runtime's own default: warnings and above
        yield
        return
    ort.set_default_logger_severity(4)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def planned_model(path: str | os.PathLike | None = None, providers: str | Provider | Sequence[Provider] = "auto",
                  precision: str = "auto") -> tuple[Path, str]:
    """The model file and the provider that `Model(path, providers, precision=precision)` will try first, without
    opening anything (the provider may still fall back when the session opens)."""
    first = first_provider(providers)
    return _model_file(path, precision, first), first


def default_model(providers: str | Provider | Sequence[Provider] = "auto", realtime: bool = False) -> str:
    """The shipped model a run takes when none is named: the default (`shipped_default`), but the real-time one
    when the run keeps up with a live input (``realtime``) on the CPU, where a wider model runs at a fraction of a
    camera's rate."""
    return shipped_default(realtime and first_provider(providers) in CPU_BACKENDS)


def _model_file(path: str | os.PathLike | None, precision: str, provider: str) -> Path:
    """The file a Model opens: the one given, else the shipped model's variant of `precision` for `provider`."""
    name = shipped_name(path)
    return Path(path) if name is None else shipped_model_path(precision, provider, name)


def _read_sidecar(path: Path) -> dict[str, Any]:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        if path.suffix.lower() != ".onnx":
            raise ValueError(f"{path} is not an ONNX model: a model is an .onnx file with the .json sidecar that "
                             "`python -m export` writes beside it")
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
    Close it (or use it in a ``with`` block) to free the session's memory at once.

    Args:
        path: a shipped model's name, "full" (width 64) or "fast" (a narrower network, about three times as
            fast on CPUs: `shipped_models`), or an .onnx of the strcnn-onnx contract with its .json sidecar
            beside it. None is the default of `models.json` (`shipped_default`).
        providers: "auto" (CUDA where a usable GPU is present, else CPU), "cuda", "cpu", or ONNX Runtime
            providers in order of preference, as names or (name, options) pairs,
            e.g. ``[("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]``.
        threads: intra-op threads of the session; None lets ONNX Runtime use one per physical core.
        precision: which variant of a shipped model to load: "fp32", "int8" (quantized, for CPUs),
            "fp16" (for GPUs), or "auto": int8 on a CPU with 8-bit dot-product instructions (VNNI, AMX), fp16 on
            CUDA, fp32 otherwise. Each variant's quality loss against fp32 is in its sidecar; `precision_reason`
            says why the one loaded was chosen.
        device_id: the GPU to run on, for every GPU provider whose options do not name one.
        session_options: an ``onnxruntime.SessionOptions`` to start from (profiling, custom thread pools,
            optimisation level); `threads` still applies when given.
    """

    def __init__(self, path: str | os.PathLike | None = None, providers: str | Provider | Sequence[Provider] = "auto",
                 threads: int | None = None, precision: str = "auto", device_id: int | None = None,
                 session_options: ort.SessionOptions | None = None) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        requested, strict = resolve_providers(providers, device_id)
        first = requested[0][0]
        if strict and first in DEVICES and DEVICES[first] == "cuda" and not nvidia_driver_present():
            raise ValueError(f"{first} was asked for, but this machine has no NVIDIA driver (libcuda does not "
                             "load); ask for auto or cpu instead")
        self.threads, self._session_options = threads, session_options
        name = shipped_name(path)  # None for a file
        with _onnxruntime_quiet():
            if first in DEVICES and hasattr(ort, "preload_dlls"):
                ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* wheels, where installed
            self._open(_model_file(path, precision, first), requested)
            if name is not None and precision == "auto" and self.provider != first:
                self._open(shipped_model_path("auto", self.provider, name), [(self.provider, {})])  # the CPU's best
        if first != "CPUExecutionProvider" and self.provider != first:
            cause = ("this machine has no NVIDIA driver" if not nvidia_driver_present() else
                     "its CUDA libraries did not load: install onnxruntime-gpu[cuda,cudnn], which brings CUDA 13 "
                     "and cuDNN 9; ONNX Runtime's own log, shown by strcnn -v, says which")
            why = f"{first} was asked for, but ONNX Runtime could not use it ({cause})"
            if strict:
                self.close()
                raise ValueError(f"{why}; ask for auto or cpu instead, or end the providers with cpu to fall back")
            warnings.warn(f"{why}; running on {self.provider}", RuntimeWarning, stacklevel=caller_stacklevel())
        self.precision_reason = _precision_reason(name is not None, precision, self.provider, self.meta)
        if self.provider == openvino.OPENVINO:
            self.precision_reason += f"; OpenVINO computes in {self.session.inference_precision}"
        if not self.meta.get("trained", False):
            warnings.warn(f"{self.path.name} is UNTRAINED (random weights): it runs but does not deblur. "
                          f"Train one with `python -m export.train` and pass it as the model.",
                          UntrainedModelWarning, stacklevel=caller_stacklevel())
        self._quality_note = None  # a QualityWarning to give when the model first runs
        if self.trained and (test := (self.meta.get("quality") or {}).get("test")) and not test.get("no_harm", True):
            self._quality_note = (f"{self.path.name} fails the do-no-harm rule on its test set "
                                  f"({'; '.join(test['harm'])}): it can make some footage worse; see its model card")

    def _open(self, path: Path, providers: list[tuple[str, dict[str, Any]]]) -> None:
        """Read and check the model file and its sidecar, and open the session."""
        self.path = path
        if not path.is_file():
            named = "" if path.suffix else f" (a shipped model is named {' or '.join(shipped_models())})"
            raise FileNotFoundError(f"model file {path} not found{named}")
        self.meta = _read_sidecar(path)
        data = path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()  # which weights ran, recorded in every video written
        expected_hash = self.meta.get("onnx_sha256")
        if expected_hash is not None and self.sha256 != expected_hash:
            raise ValueError(f"model sidecar {path.with_suffix('.json')} belongs to another model "
                             f"(its onnx_sha256 does not match {path.name}): re-export the pair")
        if providers[0][0] == openvino.OPENVINO:
            exact = self.meta.get("precision", "fp32") == "fp32"  # an fp32 file computes in fp32
            self.session = openvino.Session(data, path, self.threads, exact)
            self.provider, self.device, self.device_id = openvino.OPENVINO, "cpu", 0
        else:
            options = self._session_options
            if options is None:
                options = ort.SessionOptions()
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.inter_op_num_threads = 1
                options.log_severity_level = 2 if _LOG["shown"] else 3  # e.g. fp16 graphs' constant-folding warnings
            if self.threads is not None:
                options.intra_op_num_threads = self.threads
            try:
                self.session = ort.InferenceSession(data, options, providers=[name for name, _ in providers],
                                                    provider_options=[opts for _, opts in providers])
            except Exception as e:  # onnxruntime raises its own exception types for corrupt graphs
                raise ValueError(f"model file {path} cannot be loaded by ONNX Runtime: "
                                 f"{str(e).splitlines()[0]}") from None
            self.provider = self.session.get_providers()[0]
            self.device = DEVICES.get(self.provider, "cpu")
            self.device_id = int(self.session.get_provider_options().get(self.provider, {}).get("device_id", 0))
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

    @property
    def min_tile(self) -> int:
        """The smallest tile side a Deblurrer takes with this model: four times pad_multiple."""
        return 4 * self.pad_multiple

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
        return self.state_from_numpy(*(np.zeros((n, c, height // 2, width // 2), np.float32)
                                       for c in self.state_channels))

    def state_from_numpy(self, f: np.ndarray, h: np.ndarray) -> State:
        """Place a copy of a state given as numpy arrays on the session's device."""
        arrays = (np.array(a, np.float32, order="C") for a in (f, h))
        if self.provider == openvino.OPENVINO:
            return tuple(openvino.HostTensor(a) for a in arrays)
        return tuple(ort.OrtValue.ortvalue_from_numpy(a, self.device, self.device_id) for a in arrays)

    def warmup(self, height: int, width: int) -> None:
        """Run one step at a frame size, so that the first real frame does not pay for the session's allocations
        and kernel choices at that size."""
        padded = self.padded_size(height, width)
        self.run(np.zeros((1, 3 * self.window, *padded), np.float32), self.zero_state(1, *padded))

    def close(self) -> None:
        """Release the session (and its memory, on the GPU too); the Model cannot run afterwards."""
        self.session = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, frames: np.ndarray, state: State, sharp: np.ndarray | None = None,
            next_state: State | None = None) -> tuple[np.ndarray, State]:
        """One step: frames float32 [N, 3(2m+1), H, W] and a state -> sharp [N, 3, H, W] and the next state.

        Input and output are bound explicitly (IOBinding), so on CUDA the state never leaves the device. `sharp`,
        a float32 array of the output's shape, receives the output in place (a buffer reused across steps), and
        so does `next_state`, a state of the same shape (not `state` itself), for the next state.
        """
        if self.session is None:
            raise RuntimeError("this Model was closed")
        if self._quality_note is not None:
            self._warn_quality()
        if self.provider == openvino.OPENVINO:  # the outputs written where they are wanted, as IOBinding does
            out = np.empty((len(frames), 3, *frames.shape[2:]), np.float32) if sharp is None else sharp
            next_state = next_state or tuple(openvino.HostTensor(np.empty_like(s.array)) for s in state)
            self.session.run(frames, state[0].array, state[1].array, (out, next_state[0].array, next_state[1].array))
            return out, next_state
        binding = self.session.io_binding()
        binding.bind_cpu_input("frames", frames)
        binding.bind_ortvalue_input("F_in", state[0])
        binding.bind_ortvalue_input("h_in", state[1])
        if sharp is not None:
            binding.bind_ortvalue_output("sharp", ort.OrtValue.ortvalue_from_numpy(sharp))
        else:
            binding.bind_output("sharp", "cpu")
        if next_state is not None:
            binding.bind_ortvalue_output("F_out", next_state[0])
            binding.bind_ortvalue_output("h_out", next_state[1])
        else:
            binding.bind_output("F_out", self.device, self.device_id)
            binding.bind_output("h_out", self.device, self.device_id)
        self.session.run_with_iobinding(binding)
        out, f, h = binding.get_outputs()
        return (out.numpy() if sharp is None else sharp), (next_state or (f, h))

    def _warn_quality(self) -> None:
        """Give this model's QualityWarning, unless this process has given it already."""
        with _QUALITY_LOCK:
            note, self._quality_note = self._quality_note, None
            if note is None or note in _QUALITY_WARNED:
                return
            _QUALITY_WARNED.add(note)
        warnings.warn(note, QualityWarning, stacklevel=caller_stacklevel())

    def __repr__(self) -> str:
        return (f"Model({str(self.path)!r}, variant={self.meta.get('variant')!r}, m={self.m}, "
                f"provider={self.provider!r}, trained={self.trained})")
