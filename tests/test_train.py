"""Training runs, checkpoints, resumes, and its checkpoint exports to a model the runtime loads."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("skimage")

from export.__main__ import main as export_main  # noqa: E402
from export.train import main as train_main  # noqa: E402
from strcnn_sdk import Deblurrer, UntrainedModelWarning  # noqa: E402
from strcnn_sdk.cli import app  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample.mp4"

TINY = ["--preset", "cpu", "--width", "8", "--batch", "1", "--frames", "4", "--patch", "16", "--threads", "1",
        "--precision", "fp32", "--eval-every", "2"]


def test_train_resume_export_and_run(tmp_path):
    out = tmp_path / "run"
    train_main([*TINY, "--out", str(out), "--steps", "2"])
    first = torch.load(out / "last.pt", weights_only=True)
    assert first["step"] == 2 and (out / "best.pt").exists()
    train_main([*TINY, "--out", str(out), "--steps", "3", "--resume"])
    resumed = torch.load(out / "last.pt", weights_only=True)
    assert resumed["step"] == 3 and resumed["elapsed_s"] >= first["elapsed_s"]
    log = (out / "log.txt").read_text()
    assert "start step 2" in log and "heldout psnr" in log and "data" in log

    export_main(["--checkpoint", str(out / "last.pt"), "--out", str(tmp_path / "mine.onnx")])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedModelWarning)  # a checkpoint export counts as trained
        deblurrer = Deblurrer(tmp_path / "mine.onnx")
    frames = [np.full((10, 12, 3), 128, np.uint8)] * 3
    outs = [deblurrer.push(f) for f in frames] + deblurrer.flush()
    assert [o.shape for o in outs if o is not None] == [(10, 12, 3)] * 3

    result = CliRunner().invoke(app, ["deblur", str(SAMPLE), str(tmp_path / "out.mp4"), "--model",
                                      str(tmp_path / "mine.onnx"), "--quiet"])
    assert result.exit_code == 0 and "UNTRAINED" not in result.output, result.output
    assert (tmp_path / "out.mp4").stat().st_size > 0
