"""``python -m export.quantize``: the int8 (CPU) and fp16 (GPU) variants of an exported fp32 model.

int8: static QDQ quantization (ONNX Runtime's quantizer), per-channel signed 8-bit weights and unsigned 8-bit
activations (the guard, where the model has one, stays in float), calibrated on clips rendered from the gathered
training photographs (never the validation or test photographs) with the recurrent state the fp32 model produces
along each clip. fp16: weights and arithmetic in float16 with float32 inputs and outputs, so callers and the state
handling are unchanged.

Each variant is written as ``NAME.PRECISION.onnx`` with its sidecar beside the fp32 model; its quality is measured
on the test set as for fp32 (`export.quality`) and recorded in its sidecar, with its gain against fp32's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from strcnn_sdk.system import write_atomic

from .data import Sources, synthetic_batch
from .onnx import load_checkpoint, to_onnx, write_sidecar
from .quality import measure, write_quality


class Calibration(CalibrationDataReader):
    """Feeds of (frames, F_in, h_in) along rendered training clips, the state coming from the fp32 model."""

    def __init__(self, model_path: Path, sources: Sources, clips: int, frames: int, size: tuple[int, int]) -> None:
        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        meta = json.loads(model_path.with_suffix(".json").read_text())
        window, width = 2 * meta["m"] + 1, meta["width"]
        blurry, _ = synthetic_batch(sources, 20261127, 0, clips, frames, size)
        self.feeds = []
        for clip in blurry.numpy():
            state = [np.zeros((1, c, size[0] // 2, size[1] // 2), np.float32) for c in (width // 2, width)]
            for t in range(frames - window + 1):
                feed = {"frames": clip[t:t + window].reshape(1, 3 * window, *size), "F_in": state[0],
                        "h_in": state[1]}
                self.feeds.append(feed)
                state = session.run(["F_out", "h_out"], feed)
        self._iter = iter(self.feeds)

    def get_next(self) -> dict | None:
        return next(self._iter, None)


def quantize_int8(fp32: Path, out: Path, sources: Sources, clips: int = 8, frames: int = 8, size=(96, 128)) -> None:
    """Static QDQ int8 quantization of `fp32` into `out`, calibrated on rendered training clips."""
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        # the guard's motion measure (export.guard) compares small differences of pixels: it stays in float
        guard = [node.name for node in onnx.load(prepared).graph.node if "/guard/" in node.name]
        quantize_static(str(prepared), str(Path(tmp) / "int8.onnx"), Calibration(fp32, sources, clips, frames, size),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=guard)
        proto = onnx.load(Path(tmp) / "int8.onnx")
    _float_inputs_to_float_nodes(proto, set(guard))
    _finish(proto, fp32, out, "int8")


def _float_inputs_to_float_nodes(proto: onnx.ModelProto, names: set[str]) -> None:
    """Feed the nodes `names`, left in float, the graph's inputs themselves instead of their quantized and
    dequantized copies: the copy of the frames is a full-resolution tensor that nothing else needs (ONNX Runtime
    fuses the first convolution's dequantization into it), and made for the guard alone it cost a tenth of the
    fast model's time."""
    inputs = {i.name for i in proto.graph.input}
    dequantized = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    quantized = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    for node in proto.graph.node:
        if node.name in names:
            for k, name in enumerate(node.input):
                source = quantized.get(dequantized.get(name, ""), "")
                if source in inputs:
                    node.input[k] = source


def convert_fp16(fp32: Path, out: Path) -> None:
    """Float16 weights and arithmetic, float32 inputs and outputs: the checkpoint beside `fp32` traced in half
    precision."""
    model = load_checkpoint(fp32.with_suffix(".pt")).half()
    _finish(to_onnx(model, {}), fp32, out, "fp16")


def _finish(proto: onnx.ModelProto, fp32: Path, out: Path, precision: str) -> None:
    """Carry the fp32 model's metadata over with the new precision, and write the model and its sidecar."""
    side = json.loads(fp32.with_suffix(".json").read_text())
    side.update(precision=precision, name=out.name.split(".")[0], export_max_abs_error=None)
    props = {p.key: p.value for p in onnx.load(fp32).metadata_props}
    props["precision"] = json.dumps(precision)
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    side["onnx_sha256"] = hashlib.sha256(data).hexdigest()
    write_atomic(out, data)
    write_sidecar(out, side)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.quantize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, nargs="?", default=Path("weights/strcnn_dtb.onnx"),
                        help="the fp32 .onnx (with its sidecar)")
    parser.add_argument("--photos", type=Path, default=Path("data/photos"),
                        help="the gathered photographs; int8 calibrates on their training split")
    parser.add_argument("--precision", choices=("int8", "fp16"), action="append",
                        help="variants to write (default: both)")
    parser.add_argument("--gopro", type=Path, help="real NAME_blur1.png / NAME_sharp1.png pairs, also measured")
    args = parser.parse_args(argv)
    precisions = args.precision or ["int8", "fp16"]
    if "int8" in precisions:
        try:
            sources = Sources.folder(args.photos, "train")
        except (OSError, ValueError) as e:
            raise SystemExit(f"int8 calibration needs the gathered photographs: {e}") from None
    if not (json.loads(args.model.with_suffix(".json").read_text()).get("quality") or {}).get("test"):
        write_quality(args.model, measure(args.model, args.gopro))  # the reference the variants are judged against
    for precision in precisions:
        out = args.model.with_name(f"{args.model.stem}.{precision}.onnx")
        if precision == "int8":
            quantize_int8(args.model, out, sources)
        else:
            convert_fp16(args.model, out)
        vs = write_quality(out, measure(out, args.gopro))["quality_vs_fp32"]
        print(f"{precision} {out}: test gain {vs['test_gain_db']:+.3f} dB, fp32 {vs['fp32_test_gain_db']:+.3f} dB")


if __name__ == "__main__":
    main()
