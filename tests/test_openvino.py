"""The OpenVINO backend: the same model files and contract as ONNX Runtime, the same frames within one 8-bit level
in fp32, its own state handed over exactly, chosen by `auto` only where it was measured faster, and a one-line
error where it is asked for and cannot run."""

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("openvino", reason="the OpenVINO backend's extra is not installed (the test command installs it)")

from strcnn_sdk import Deblurrer, Model, UntrainedModelWarning  # noqa: E402
from strcnn_sdk import openvino_session  # noqa: E402
from strcnn_sdk.cli import app  # noqa: E402
from strcnn_sdk.providers import first_provider  # noqa: E402
from strcnn_sdk.system import cpu_has_int8_dot, cpu_vendor  # noqa: E402
from media import frames_of, make_video  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "examples" / "golden"
SAMPLE = ROOT / "examples" / "sample.mp4"
runner = CliRunner()


def stream(model: Model, frames: list[np.ndarray], **options) -> np.ndarray:
    return np.stack(list(Deblurrer(model, **options).stream(frames)))


def test_the_golden_sequence_within_one_level_and_the_shipped_model_too():
    """The committed golden sequence (ONNX Runtime's output of the tiny model) and the shipped fp32 model's frames
    over the sample clip, through OpenVINO: within one 8-bit level of ONNX Runtime."""
    manifest = json.loads((GOLDEN / "golden.json").read_text())
    expected = np.fromfile(GOLDEN / manifest["expected"], "<f4").reshape(-1, manifest["height"], manifest["width"], 3)
    frames = [cv2.cvtColor(cv2.imread(str(GOLDEN / name)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
              for name in manifest["frames"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)
        tiny = Model(GOLDEN / manifest["model"], providers="openvino")
    assert tiny.provider == "OpenVINO" and "OpenVINO computes in f32" in tiny.precision_reason
    assert np.abs(stream(tiny, frames) - expected).max() <= 1 / 255
    clip = list(frames_of(SAMPLE)[:6, :96, :128])
    ours, theirs = (stream(Model("fast", providers=p, precision="fp32"), clip) for p in ("openvino", "cpu"))
    assert np.abs(ours.astype(int) - theirs).max() <= 1


def test_state_hand_off_batches_and_tiles_on_openvino():
    """A stream cut in two with its state handed to a new Deblurrer gives the same bits as one run; batched
    streams and tiles run as on ONNX Runtime (within one level)."""
    model = Model("fast", providers="openvino", precision="fp32")
    clip = list(frames_of(SAMPLE)[:7, :64, :96])
    whole = stream(model, clip)
    first = Deblurrer(model)
    head = [out for out in (first.push(frame) for frame in clip[:4]) if out is not None]
    second = Deblurrer(model)
    second.state = first.state
    tail = [out for out in (second.push(frame) for frame in clip[4:]) if out is not None] + second.flush()
    assert np.array_equal(np.stack(head + tail), whole)
    reference = Model("fast", providers="cpu", precision="fp32")
    for options in ({"tile": 32}, {}):
        assert np.abs(stream(model, clip, **options).astype(int) - stream(reference, clip, **options)).max() <= 1
    batch = [np.stack([frame, frame[::-1]]) for frame in clip]
    ours, theirs = (np.stack(list(Deblurrer(m).stream(batch))) for m in (model, reference))
    assert ours.shape == (7, 2, 64, 96, 3) and np.abs(ours.astype(int) - theirs).max() <= 1


def test_auto_runs_openvino_where_it_was_measured_faster(monkeypatch):
    """`auto` picks OpenVINO on Intel CPUs with VNNI or AMX where it is installed, ONNX Runtime's CPU provider
    elsewhere; the int8 file runs where the CPU has 8-bit dot products, as on ONNX Runtime."""
    assert openvino_session.preferred() == (cpu_vendor() == "GenuineIntel" and cpu_has_int8_dot())
    for preferred, expected in ((True, "OpenVINO"), (False, "CPUExecutionProvider")):
        monkeypatch.setattr(openvino_session, "preferred", lambda: preferred)
        assert first_provider("auto") == expected
    monkeypatch.setattr(openvino_session, "preferred", lambda: True)
    model = Model("fast")
    assert model.provider == "OpenVINO" and model.path.name == (
        "strcnn_dtb_fast.int8.onnx" if cpu_has_int8_dot() else "strcnn_dtb_fast.onnx")


def test_asking_for_openvino_where_it_is_not_installed_is_one_line(monkeypatch):
    monkeypatch.setattr(openvino_session, "installed", lambda: False)
    with pytest.raises(ValueError, match=r'needs OpenVINO, which is not installed: pip install '
                                         r'"strcnn-sdk\[openvino\]"'):
        Model("fast", providers="openvino")
    assert first_provider("auto") != "OpenVINO"
    result = runner.invoke(app, ["info", "--provider", "openvino"])
    assert result.exit_code == 1 and result.output.strip().splitlines() == [
        'strcnn: error: the openvino provider needs OpenVINO, which is not installed: pip install '
        '"strcnn-sdk[openvino]"']


def test_the_command_line_on_openvino(tmp_path):
    """deblur says the backend and its inference precision in its summary line, info in its lines; deblur-many,
    a live input with --realtime and eval run on it; bench puts OpenVINO's rows beside ONNX Runtime's with their
    ratio."""
    out = tmp_path / "out.mp4"
    result = runner.invoke(app, ["deblur", str(SAMPLE), str(out), "--frames", "3", "--provider", "openvino",
                                 "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert "on OpenVINO, fp32: asked for; OpenVINO computes in f32)" in result.output and len(frames_of(out)) == 3
    info = runner.invoke(app, ["info", "--provider", "openvino", "--precision", "fp32"])
    assert info.exit_code == 0 and "provider in use: OpenVINO" in info.output and "OpenVINO 20" in info.output
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_video(clips / name, frames=3, size=(32, 48))
    many = runner.invoke(app, ["deblur-many", str(clips), "--out", str(tmp_path / "sharp"), "--provider", "openvino"])
    assert many.exit_code == 0 and "2 done" in many.output, many.output
    live = runner.invoke(app, ["deblur", "lavfi:testsrc2=size=64x48:rate=25", str(tmp_path / "live.mkv"), "--frames",
                               "5", "--realtime", "--provider", "openvino"])
    assert live.exit_code == 0 and "fast" in live.output and "on OpenVINO" in live.output, live.output
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    sharp = np.random.default_rng(0).integers(0, 256, (16, 20, 3), np.uint8)
    cv2.imwrite(str(pairs / "x_sharp1.png"), sharp)
    cv2.imwrite(str(pairs / "x_blur1.png"), cv2.GaussianBlur(sharp, (5, 5), 0))
    evaluated = runner.invoke(app, ["eval", str(pairs), "--provider", "openvino", "--no-ssim"])
    assert evaluated.exit_code == 0 and "gain " in evaluated.output, evaluated.output
    bench = runner.invoke(app, ["bench", "--sizes", "32x24", "--runs", "1", "--precisions", "fp32", "--providers",
                                "cpu,openvino", "--model", "fast", "--stream-steps", "0", "--no-pipeline"])
    assert bench.exit_code == 0, bench.output
    assert "strcnn_dtb_fast.onnx (fp32) on OpenVINO 32x24: model" in bench.output
    assert "OpenVINO against ONNX Runtime on the CPU, fast in fp32 at 32x24: " in bench.output
