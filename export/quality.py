"""``python -m export.quality MODEL.onnx``: measure a model's quality as `strcnn eval` does and write it into its
sidecar's ``quality`` field, where `strcnn info` and the runtime's do-no-harm warning read it.

It scores the frozen test set (`export.data.test_clips`), with ``--photos DIR`` the validation set and the natural
photographs (`export.data.natural_clips`), and with ``--gopro DIR`` real blurry/sharp pairs (the GoPro pairs of Nah
et al.: reported, never used to choose), on the CPU in the model's own precision. A variant (int8, fp16) also
gets ``quality_vs_fp32``: its test gain against that of the fp32 model beside it.

    python -m export.quality weights/strcnn_dtb.onnx --photos data/photos --gopro GOPRO_PAIRS/
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from strcnn_sdk import Deblurrer, Model, UntrainedModelWarning
from strcnn_sdk.evaluation import evaluate_clips, evaluate_folder
from strcnn_sdk.metrics import describe_quality, quality_fields, summarize
from strcnn_sdk.model import QualityWarning

from .data import natural_clips, test_clips, validation_clips
from .onnx import write_sidecar


def measure(path: Path, gopro: Path | None = None, photos: Path | None = None) -> dict:
    """The sidecar ``quality`` of the model at `path`: test-set figures and verdict, the validation set's (what the
    shipping rule and the choice of the default model judge by) and the natural photographs' where the gathered
    `photos` are given, GoPro gain where given."""
    with warnings.catch_warnings():  # the figures being measured replace the ones that warn (when it runs)
        warnings.simplefilter("ignore", UntrainedModelWarning)
        warnings.simplefilter("ignore", QualityWarning)
        deblurrer = Deblurrer(Model(path, providers="cpu"))
        precision = deblurrer.model.meta.get("precision", "fp32")
        quality = {"measured": f"strcnn eval --precision {precision}, CPU: the test set of export/data.py (frozen)",
                   "test": quality_fields(summarize(evaluate_clips(test_clips(), deblurrer, ssim=False)))}
        if photos is not None:
            quality["measured"] += (", the validation set (export.data.validation_clips), the natural photographs "
                                    "(export.data.natural_clips)")
            for name, clips in (("validation", validation_clips), ("natural", natural_clips)):
                quality[name] = quality_fields(summarize(evaluate_clips(clips(photos), deblurrer, ssim=False)))
        if gopro is not None:
            rows = evaluate_folder(gopro, deblurrer, ssim=False)
            quality["measured"] += ", and real pairs (GoPro, Nah et al., CVPR 2017)"
            quality["gopro"] = {"gain_db": round(summarize(rows)["gain"], 3),
                                "pairs": {r["clip"]: {"blurry_db": round(r["psnr_blurry"], 3),
                                                      "model_db": round(r["psnr_model"], 3)} for r in rows}}
    return quality


def write_quality(path: Path, quality: dict) -> dict:
    """Put `quality` into the sidecar of `path`; a variant also gets ``quality_vs_fp32`` against the fp32 model
    beside it (``NAME.onnx`` for ``NAME.PRECISION.onnx``). Returns the sidecar."""
    side = json.loads(path.with_suffix(".json").read_text())
    side["quality"] = quality
    side.pop("quality_vs_fp32", None)
    if side.get("precision", "fp32") != "fp32":
        reference = json.loads(path.with_name(path.name.split(".")[0] + ".json").read_text())
        ours, theirs = quality["test"]["gain_db"], reference["quality"]["test"]["gain_db"]
        side["quality_vs_fp32"] = {"test_gain_db": ours, "fp32_test_gain_db": theirs,
                                   "loss_db": round(theirs - ours, 3)}
    write_sidecar(path, side)
    return side


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+", help=".onnx files with sidecars (fp32 first)")
    parser.add_argument("--gopro", type=Path, help="a folder of NAME_blur1.png / NAME_sharp1.png pairs")
    parser.add_argument("--photos", type=Path, help="the gathered photographs (export.photos): also score the "
                                                   "validation set")
    args = parser.parse_args(argv)
    for path in args.models:
        try:
            side = write_quality(path, measure(path, args.gopro, args.photos))
        except (OSError, ValueError) as e:  # e.g. photographs gathered before the natural split existed
            raise SystemExit(f"python -m export.quality: {e}") from None
        vs = side.get("quality_vs_fp32")
        against = f"; {vs['loss_db']:.3f} dB less gain than fp32" if vs else ""
        print(f"{path}: {describe_quality(side['quality'])}{against}")


if __name__ == "__main__":
    main()
