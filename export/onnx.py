"""Export a STRCNN model to the product's ONNX contract, check it, and write it with its sidecar.

The contract (the runtime's only interface to the training side):

- inputs  ``frames`` [N, 3(2m+1), H, W], ``F_in`` [N, C_F, H2, W2], ``h_in`` [N, C_h, H2, W2]
- outputs ``sharp`` [N, 3, H, W] clipped to [0, 1], ``F_out`` and ``h_out`` shaped like the inputs
- N, H, W, H2, W2 named dynamic dimensions, H = 2 H2 and W = 2 W2; opset 17; float32
- the same facts in ``metadata_props`` and in a JSON sidecar (``NAME.json``) for runtimes that cannot read them.

Weights below `TINY` (1e-12) in magnitude are written as zero: they change no output, but they make fp32
arithmetic denormal, which slowed one trained model's CPU inference about twenty-fold.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from strcnn_sdk.system import write_atomic

from .health import TINY
from .model import STRCNN
from .phases import half_resolution

FORMAT = "strcnn-onnx/1"
OPSET = 17
TOLERANCE = 1e-4
INPUT_NAMES = ["frames", "F_in", "h_in"]
OUTPUT_NAMES = ["sharp", "F_out", "h_out"]
DYNAMIC_AXES = {
    "frames": {0: "N", 2: "H", 3: "W"},
    "F_in": {0: "N", 2: "H2", 3: "W2"},
    "h_in": {0: "N", 2: "H2", 3: "W2"},
    "sharp": {0: "N", 2: "H", 3: "W"},
    "F_out": {0: "N", 2: "H2", 3: "W2"},
    "h_out": {0: "N", 2: "H2", 3: "W2"},
}


class ContractModule(nn.Module):
    """The model as the contract sees it: one step with the sharp frame clipped to [0, 1], float32 in and out
    whatever precision the model computes in (a .half() model gives the fp16 variant)."""

    def __init__(self, model: STRCNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: Tensor, f_in: Tensor, h_in: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        dtype = next(self.model.parameters()).dtype
        sharp, f_out, h_out = self.model(frames.to(dtype), f_in.to(dtype), h_in.to(dtype))
        return sharp.clamp(0.0, 1.0).float(), f_out.float(), h_out.float()


def sidecar(model: STRCNN, *, name: str, trained: bool, training: dict | None = None,
            quality: dict | None = None) -> dict[str, Any]:
    """The facts about a model that a runtime in any language needs (DESIGN.md's sidecar shape)."""
    cf, ch = model.f_channels, model.h_channels
    return {
        "format": FORMAT, "name": name, "variant": model.variant, "m": model.m, "width": model.width,
        "residual": model.residual,
        "inputs": {"frames": "N,3*(2m+1),H,W", "F_in": f"N,{cf},H/2,W/2", "h_in": f"N,{ch},H/2,W/2"},
        "outputs": {"sharp": "N,3,H,W", "F_out": f"N,{cf},H/2,W/2", "h_out": f"N,{ch},H/2,W/2"},
        "color": "RGB", "range": [0, 1], "layout": "NCHW", "pad_multiple": 2, "latency_frames": model.m,
        "precision": "fp32", "opset": OPSET, "trained": trained,
        "guard": model.guard.config.describe() if model.guard is not None else None,
        "training": training, "quality": quality,
    }


def to_onnx(model: STRCNN, meta: dict[str, Any]) -> onnx.ModelProto:
    """Trace one step of the model, rewritten to work at half resolution (`phases.half_resolution`: the same
    function, a faster graph), into an opset-17 graph with the contract's names, axes and metadata."""
    module = ContractModule(half_resolution(model)).eval()
    frames = torch.rand(1, 3 * (2 * model.m + 1), 32, 48)
    state = model.init_state(1, 32, 48)
    buffer = io.BytesIO()
    # The TorchScript exporter (dynamo=False) is deprecated in favour of one that cannot write opset 17.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, (frames, *state), buffer, input_names=INPUT_NAMES,
                          output_names=OUTPUT_NAMES, dynamic_axes=DYNAMIC_AXES, opset_version=OPSET,
                          dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    names = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])
    if names != (INPUT_NAMES, OUTPUT_NAMES):
        raise RuntimeError(f"exported graph has inputs/outputs {names}, the contract needs "
                           f"{INPUT_NAMES} and {OUTPUT_NAMES}")
    opsets = {o.domain: o.version for o in proto.opset_import}
    if opsets.get("", opsets.get("ai.onnx")) != OPSET:
        raise RuntimeError(f"exporter wrote opset {opsets}, the contract needs {OPSET}")
    proto.producer_name = "strcnn-sdk"
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def verify(proto: onnx.ModelProto, model: STRCNN, *, sizes=((64, 96), (38, 50)), steps: int = 5,
           batch: int = 2, seed: int = 0) -> float:
    """Run the graph in ONNX Runtime beside the PyTorch model over `steps` recurrent steps at each size,
    in one session, and return the largest absolute difference over every output and state."""
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    module = ContractModule(model).eval()
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for height, width in sizes:
        state_pt = model.init_state(batch, height, width)
        state_ort = [s.numpy() for s in state_pt]
        for _ in range(steps):
            frames = torch.rand(batch, 3 * (2 * model.m + 1), height, width, generator=generator)
            with torch.no_grad():
                expected = module(frames, *state_pt)
            got = session.run(OUTPUT_NAMES, {"frames": frames.numpy(), "F_in": state_ort[0],
                                             "h_in": state_ort[1]})
            for e, g in zip(expected, got):
                if e.shape != g.shape:
                    raise RuntimeError(f"ONNX output shape {g.shape} differs from PyTorch's {tuple(e.shape)}")
                worst = max(worst, float(np.abs(e.numpy() - g).max()))
            state_pt, state_ort = expected[1:], got[1:]
    return worst


def identity_onnx(m: int = 1, width: int = 64) -> onnx.ModelProto:
    """A model of the same contract that returns the centre frame and passes the state through: what the
    video pipeline costs with a model that costs nothing (``strcnn bench``)."""
    from onnx import TensorProto, helper

    def value(name: str, channels: int, h: str, w: str):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", channels, h, w])

    cf, ch = width // 2, width
    constants = [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in
                 (("start", 3 * m), ("end", 3 * m + 3), ("axis", 1))]
    graph = helper.make_graph(
        [helper.make_node("Slice", ["frames", "start", "end", "axis"], ["sharp"]),
         helper.make_node("Identity", ["F_in"], ["F_out"]), helper.make_node("Identity", ["h_in"], ["h_out"])],
        "identity",
        [value("frames", 3 * (2 * m + 1), "H", "W"), value("F_in", cf, "H2", "W2"), value("h_in", ch, "H2", "W2")],
        [value("sharp", 3, "H", "W"), value("F_out", cf, "H2", "W2"), value("h_out", ch, "H2", "W2")],
        initializer=constants)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="strcnn-sdk",
                              ir_version=8)  # opset 17's IR version, which every current ONNX Runtime reads
    onnx.checker.check_model(proto, full_check=True)
    return proto


def write_identity(onnx_path: Path, m: int = 1, width: int = 64) -> None:
    """Write the identity model and its sidecar (variant "identity", untrained by nature)."""
    onnx_path = Path(onnx_path)
    data = identity_onnx(m, width).SerializeToString()
    side = dict(sidecar(STRCNN("cnn", m=m, width=width), name=onnx_path.stem, trained=False),
                variant="identity", onnx_sha256=hashlib.sha256(data).hexdigest())
    write_atomic(onnx_path, data)
    write_sidecar(onnx_path, side)


def write_sidecar(onnx_path: Path, side: dict[str, Any]) -> None:
    """Write the JSON sidecar beside an .onnx (NAME.json), atomically."""
    write_atomic(Path(onnx_path).with_suffix(".json"), (json.dumps(side, indent=2) + "\n").encode())


def save_torch(path: Path, payload: dict[str, Any]) -> None:
    """torch.save, atomically."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomic(Path(path), buffer.getvalue())


def save_checkpoint(model: STRCNN, path: Path) -> None:
    """Save the shipped checkpoint: constructor arguments and state dict only (loads with weights_only=True)."""
    save_torch(path, {"config": model.config(), "state_dict": model.state_dict()})


def load_checkpoint(path: Path) -> STRCNN:
    """Rebuild a model from a checkpoint holding ``config`` and ``state_dict`` (training checkpoints do too),
    without executing code from the file."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises pickle, zip and runtime errors alike for a file it cannot read
        raise ValueError(f"{path}: not a checkpoint torch.load can read (with weights_only=True)") from None
    if not isinstance(data, dict) or "config" not in data or "state_dict" not in data:
        raise ValueError(f"{path}: not a STRCNN checkpoint (expected a dict with 'config' and 'state_dict')")
    model = STRCNN(**data["config"])
    model.load_state_dict(data["state_dict"])
    return model.eval()


def flush_tiny(model: STRCNN) -> int:
    """Set every parameter value below `TINY` in magnitude (but not zero) to zero, in place; returns how many."""
    flushed = 0
    with torch.no_grad():
        for parameter in model.parameters():
            tiny = (parameter.abs() < TINY) & (parameter != 0)
            flushed += int(tiny.sum())
            parameter[tiny] = 0.0
    return flushed


def export(model: STRCNN, onnx_path: Path, *, trained: bool, training: dict | None = None,
           quality: dict | None = None, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Export, check (onnx.checker, then ONNX Runtime against PyTorch) and only then write
    ``NAME.onnx``, ``NAME.json`` and ``NAME.pt`` (weights below `TINY` set to zero in all three; the caller's
    model is left as it is). Returns the sidecar, with the measured difference."""
    onnx_path = Path(onnx_path)
    model = copy.deepcopy(model).eval()
    flushed = flush_tiny(model)
    total = sum(p.numel() for p in model.parameters())
    print(f"set {flushed} of {total} weights below {TINY:g} to zero ({100 * flushed / total:.2f}%): they would "
          "make fp32 arithmetic denormal and slow")
    meta = sidecar(model, name=onnx_path.stem, trained=trained, training=training, quality=quality)
    proto = to_onnx(model, meta)
    error = verify(proto, model)
    print(f"ONNX Runtime vs PyTorch, 5 steps at 64x96 and 38x50: max abs difference {error:.3g}")
    if not error <= tolerance:
        raise RuntimeError(f"exported graph differs from PyTorch by {error:.3g} > {tolerance:g}; not written")
    data = proto.SerializeToString()
    side = dict(meta, onnx_sha256=hashlib.sha256(data).hexdigest(), export_max_abs_error=error)
    save_checkpoint(model, onnx_path.with_suffix(".pt"))
    write_atomic(onnx_path, data)
    write_sidecar(onnx_path, side)
    return side
