"""`strcnn deblur | info | bench | eval` on real files: containers, timing, colour, audio, errors, atomicity."""

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from strcnn_sdk.cli import app
from strcnn_sdk.metrics import psnr
from strcnn_sdk.model import shipped_model_path
from strcnn_sdk.video import Reader

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample.mp4"
IDENTITY = str(shipped_model_path().with_name("identity.onnx"))
runner = CliRunner()


def strcnn(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def make_video(path: Path, frames: int = 8, size=(48, 64), rate=Fraction(25), pts=None, rotation=0,
               audio=False, seed=0) -> np.ndarray:
    """A small H.264 test clip of smooth random pictures; returns the RGB frames written."""
    rng = np.random.default_rng(seed)
    clip = np.stack([cv2.resize(rng.integers(0, 256, (6, 8, 3), np.uint8), size[::-1], interpolation=cv2.INTER_CUBIC)
                     for _ in range(frames)])
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate, options={"crf": "10"})
        s.width, s.height, s.pix_fmt = size[1], size[0], "yuv444p" if size[0] % 2 or size[1] % 2 else "yuv420p"
        if pts is not None:
            s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            s.set_display_rotation(rotation)
        a = c.add_stream("aac", rate=16000, layout="mono") if audio else None
        for i, rgb in enumerate(clip):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = pts[i] if pts is not None else i
            if pts is not None:
                f.time_base = Fraction(1, 1000)
            c.mux(s.encode(f))
        if a is not None:
            for start in range(0, int(16000 * frames / rate), 1024):
                af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 16000, start
                c.mux(a.encode(af))
            c.mux(a.encode(None))
        c.mux(s.encode(None))
    return clip


def frames_of(path: Path) -> np.ndarray:
    with Reader(path) as r:
        return np.stack([item.rgb for item in r if hasattr(item, "rgb")])


def video_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pts = [f.pts * v.time_base for f in c.decode(v)]
        c.seek(0)
        return {"frames": len(pts), "size": (v.codec_context.height, v.codec_context.width),
                "rate": v.average_rate, "pts": pts, "types": sorted(s.type for s in c.streams),
                "colour": (v.codec_context.colorspace, v.codec_context.color_range)}


def test_identity_round_trip_keeps_frames_timing_colour_and_audio(tmp_path):
    out = tmp_path / "out.mp4"
    result = strcnn("deblur", SAMPLE, out, "--model", IDENTITY, "--quiet")
    assert result.exit_code == 0, result.output
    before, after = video_facts(SAMPLE), video_facts(out)
    assert after["frames"] == before["frames"] == 60 and after["size"] == before["size"]
    assert after["rate"] == before["rate"] and after["pts"] == before["pts"]
    assert after["types"] == ["audio", "video"] and after["colour"] == before["colour"] == (6, 1)
    quality = psnr(frames_of(SAMPLE), frames_of(out))
    assert quality > 40, quality  # codec noise only, no colour shift
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@pytest.mark.parametrize("rate", [Fraction(30000, 1001), Fraction(24)])
def test_constant_rates_are_kept_exactly(tmp_path, rate):
    make_video(tmp_path / "in.mp4", frames=6, rate=rate)
    assert strcnn("deblur", tmp_path / "in.mp4", tmp_path / "out.mp4", "--model", IDENTITY,
                  "--preset", "ultrafast").exit_code == 0
    assert video_facts(tmp_path / "out.mp4")["rate"] == rate
    assert video_facts(tmp_path / "out.mp4")["pts"] == video_facts(tmp_path / "in.mp4")["pts"]


def test_variable_rate_timestamps_are_kept(tmp_path):
    pts = [0, 40, 60, 130, 150, 260, 300]
    make_video(tmp_path / "in.mkv", frames=len(pts), pts=pts)
    assert strcnn("deblur", tmp_path / "in.mkv", tmp_path / "out.mkv", "--model", IDENTITY).exit_code == 0
    assert video_facts(tmp_path / "in.mkv")["pts"] == [Fraction(p, 1000) for p in pts]
    assert video_facts(tmp_path / "out.mkv")["pts"] == [Fraction(p, 1000) for p in pts]


@pytest.mark.parametrize("container", ["webm", "mov", "avi"])
def test_other_containers(tmp_path, container):
    make_video(tmp_path / "in.mp4", frames=4)
    assert strcnn("deblur", tmp_path / "in.mp4", tmp_path / f"a.{container}", "--model", IDENTITY).exit_code == 0
    assert strcnn("deblur", tmp_path / f"a.{container}", tmp_path / f"b.{container}", "--model", IDENTITY).exit_code == 0
    facts = video_facts(tmp_path / f"b.{container}")
    assert facts["frames"] == 4 and facts["size"] == (48, 64)
    before, after = frames_of(tmp_path / "in.mp4").astype(float), frames_of(tmp_path / f"b.{container}")
    assert np.abs(before.mean(axis=(0, 1, 2)) - after.mean(axis=(0, 1, 2))).max() < 2  # no colour shift
    assert min(psnr(a.astype(np.uint8), b) for a, b in zip(before, after)) > 20  # every frame in its place


def test_rotation_is_kept(tmp_path):
    make_video(tmp_path / "in.mp4", frames=3, rotation=90)
    assert strcnn("deblur", tmp_path / "in.mp4", tmp_path / "out.mp4", "--model", IDENTITY).exit_code == 0
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert next(c.decode(video=0)).rotation == 90


def test_odd_sizes(tmp_path):
    make_video(tmp_path / "in.mkv", frames=3, size=(33, 47))
    assert strcnn("deblur", tmp_path / "in.mkv", tmp_path / "a.mp4", "--model", IDENTITY).exit_code == 0
    assert video_facts(tmp_path / "a.mp4")["size"] == (34, 48)  # 4:2:0 needs even sizes: edge repeated
    assert strcnn("deblur", tmp_path / "in.mkv", tmp_path / "b.mkv", "--model", IDENTITY,
                  "--pix-fmt", "yuv444p").exit_code == 0
    assert video_facts(tmp_path / "b.mkv")["size"] == (33, 47)


def test_images_in_and_out_and_side_by_side(tmp_path, tiny):
    make_video(tmp_path / "in.mp4", frames=4, size=(24, 30))
    folder = tmp_path / "frames"
    assert strcnn("deblur", tmp_path / "in.mp4", folder, "--model", IDENTITY).exit_code == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(4)]
    np.testing.assert_array_equal(frames_of(folder), frames_of(tmp_path / "in.mp4"))  # lossless PNGs
    result = strcnn("deblur", str(folder / "*.png"), tmp_path / "sbs.mp4", "--model", tiny[0], "--fps", "30000/1001",
                    "--side-by-side")
    assert result.exit_code == 0, result.output
    facts = video_facts(tmp_path / "sbs.mp4")
    assert facts["size"] == (24, 60) and facts["frames"] == 4 and facts["rate"] == Fraction(30000, 1001)


def test_refuses_to_overwrite(tmp_path):
    make_video(tmp_path / "in.mp4", frames=2)
    (tmp_path / "out.mp4").write_bytes(b"keep me")
    result = strcnn("deblur", tmp_path / "in.mp4", tmp_path / "out.mp4", "--model", IDENTITY)
    assert result.exit_code == 1 and "--force" in result.output
    assert (tmp_path / "out.mp4").read_bytes() == b"keep me"
    assert strcnn("deblur", tmp_path / "in.mp4", tmp_path / "out.mp4", "--model", IDENTITY, "--force").exit_code == 0
    same = strcnn("deblur", tmp_path / "in.mp4", tmp_path / "in.mp4", "--model", IDENTITY, "--force")
    assert same.exit_code == 1 and "overwrite the input" in same.output


def _bad_inputs(tmp_path: Path) -> dict:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 100)
    make_video(tmp_path / "good.mp4", frames=20, size=(96, 128))
    data = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 3])
    sizes = tmp_path / "sizes"
    sizes.mkdir()
    cv2.imwrite(str(sizes / "a.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(sizes / "b.png"), np.zeros((8, 10, 3), np.uint8))
    return {"missing.mp4": "no such file", "empty.mp4": "not a readable video", "text.mp4": "not a readable video",
            "truncated.mp4": "readable|damaged|no frames", "sizes": "one size"}


def test_bad_inputs_give_one_line_errors_and_no_output(tmp_path):
    import re

    for name, message in _bad_inputs(tmp_path).items():
        out = tmp_path / "out" / f"{name}.mp4"
        out.parent.mkdir(exist_ok=True)
        result = strcnn("deblur", tmp_path / name, out, "--model", IDENTITY)
        assert result.exit_code == 1, (name, result.output)
        assert re.search(message, result.output), (name, result.output)
        assert "Traceback" not in result.output and result.output.count("error:") == 1
        assert list(out.parent.iterdir()) == [], name


def test_bad_outputs_and_options(tmp_path):
    make_video(tmp_path / "in.mp4", frames=2)
    cases = [(["--model", IDENTITY], tmp_path / "nowhere" / "out.mp4", "does not exist"),
             (["--model", IDENTITY, "--codec", "nosuchcodec"], tmp_path / "out.mp4", "not available"),
             (["--model", tmp_path / "missing.onnx"], tmp_path / "out.mp4", "not found"),
             (["--model", IDENTITY, "--fps", "0"], tmp_path / "out.mp4", "--fps")]
    for options, out, message in cases:
        result = strcnn("deblur", tmp_path / "in.mp4", out, *options)
        assert result.exit_code == 1 and message in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_info_and_eval(tmp_path):
    result = strcnn("info", "--model", IDENTITY)
    assert result.exit_code == 0 and "CPUExecutionProvider" in result.output and "cpu:" in result.output
    shipped = strcnn("info")
    assert shipped.exit_code == 0 and "strcnn_dtb" in shipped.output and "trained:" in shipped.output
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (16, 20, 3), np.uint8)
    cv2.imwrite(str(pairs / "x_sharp1.png"), sharp)
    cv2.imwrite(str(pairs / "x_blur1.png"), cv2.GaussianBlur(sharp, (5, 5), 0))
    result = strcnn("eval", pairs, "--model", IDENTITY)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("x "))
    assert float(row.split()[4]) == 0.0  # the identity model gains nothing
    assert "mean" in result.output


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_interrupt_leaves_no_partial_output(tmp_path, signum):
    """Ctrl-C (or a kill) mid-run: exit code 130, a one-line message, nothing under the output name or
    beside it."""
    import signal
    import subprocess
    import sys
    import time

    make_video(tmp_path / "in.mp4", frames=400, size=(240, 320))
    out = tmp_path / "out"
    out.mkdir()
    # a shell without job control starts background jobs with SIGINT ignored, which the child would inherit
    process = subprocess.Popen([sys.executable, "-m", "strcnn_sdk.cli", "deblur", str(tmp_path / "in.mp4"),
                                str(out / "out.mp4")], stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while not any(out.iterdir()) and time.time() < deadline:  # wait until the temporary output exists
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(getattr(signal, signum))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert list(out.iterdir()) == []
    assert video_facts(tmp_path / "in.mp4")["frames"] == 400  # the input is untouched


def test_bench_prints_every_figure():
    result = strcnn("bench", "--sizes", "32x24", "--runs", "1", "--precisions", "fp32", "--stream-steps", "5",
                    "--stream-size", "16x12", "--pipeline-frames", "10", "--preset", "ultrafast", "--model-frames", "0")
    assert result.exit_code == 0, result.output
    assert "cpu:" in result.output and "Deblurrer.push" in result.output
    assert "stream of 5 steps" in result.output and "of the encoder" in result.output


def test_bench_pipeline_on_a_real_video_with_audio():
    result = strcnn("bench", "--sizes", "32x24", "--runs", "1", "--precisions", "fp32", "--stream-steps", "0",
                    "--pipeline-source", SAMPLE, "--preset", "ultrafast", "--model-frames", "2")
    assert result.exit_code == 0, result.output
    assert "pipeline 480x270 sample.mp4" in result.output and "of the model alone" in result.output
