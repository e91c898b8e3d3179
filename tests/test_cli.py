"""`strcnn deblur | info | bench | eval` on real files: containers, timing, colour, audio, errors, atomicity."""

import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from strcnn_sdk import UntrainedModelWarning
from strcnn_sdk.cli import app
from strcnn_sdk.metrics import describe_quality, psnr
from strcnn_sdk.model import shipped_default, shipped_model_path
from strcnn_sdk.providers import cuda_usable
from strcnn_sdk.many import deblur_many
from strcnn_sdk.pipeline import deblur_video
from strcnn_sdk.video import MediaError
from media import frames_of, make_video, video_facts

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample.mp4"
IDENTITY = str(shipped_model_path().with_name("identity.onnx"))
runner = CliRunner()


def strcnn(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def judged_model(folder: Path) -> Path:
    """The identity model as a trained one whose own verdict fails do-no-harm: it warns when it first runs."""
    judged = folder / "judged.onnx"
    shutil.copy(IDENTITY, judged)
    side = json.loads(Path(IDENTITY).with_suffix(".json").read_text())
    test = {"gain_db": 0.1, "no_harm": False, "harm": ["mild clips lose 0.200 dB on average"]}
    judged.with_suffix(".json").write_text(json.dumps(dict(side, trained=True, quality={"test": test})))
    return judged


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


def test_the_quality_warning_comes_once_when_a_model_runs_and_quiet_silences_it(tmp_path):
    """A model whose own verdict fails warns in one line when it first runs; not in `strcnn info`, not before an
    error about the input, not with -q, not under PYTHONWARNINGS=ignore."""
    judged = judged_model(tmp_path)

    def stderr(*args: str, **env: str) -> str:
        run = subprocess.run([sys.executable, "-m", "strcnn_sdk.cli", *map(str, args), "--model", str(judged)],
                             capture_output=True, text=True, env={**os.environ, **env})
        return run.stderr

    deblur = ["deblur", SAMPLE, tmp_path / "out.mp4", "--frames", "3", "--force"]
    said = [line for line in stderr(*deblur).splitlines() if "do-no-harm" in line]
    assert len(said) == 1 and said[0].startswith("strcnn: warning: judged.onnx fails the do-no-harm rule"), said
    assert "do-no-harm" not in stderr(*deblur, "-q")
    assert "do-no-harm" not in stderr(*deblur, PYTHONWARNINGS="ignore")
    assert "do-no-harm" not in stderr("info")
    missing = stderr("deblur", tmp_path / "missing.mp4", tmp_path / "out2.mp4")
    assert missing.strip().splitlines() == [f"strcnn: error: {tmp_path / 'missing.mp4'}: no such file or folder"]


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
    result = strcnn("deblur", tmp_path / "in.mp4", folder, "--model", IDENTITY)
    assert result.exit_code == 0 and f"wrote 4 frames as PNG images into the folder {folder} (" in result.stderr
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(4)]
    np.testing.assert_array_equal(frames_of(folder), frames_of(tmp_path / "in.mp4"))  # lossless PNGs
    result = strcnn("deblur", str(folder / "*.png"), tmp_path / "sbs.mp4", "--model", tiny[0], "--fps", "30000/1001",
                    "--side-by-side")
    assert result.exit_code == 0, result.output
    assert f"wrote 4 frames to {tmp_path / 'sbs.mp4'} (" in result.stderr
    facts = video_facts(tmp_path / "sbs.mp4")
    assert facts["size"] == (24, 60) and facts["frames"] == 4 and facts["rate"] == Fraction(30000, 1001)


def test_force_overwrites_an_existing_output(tmp_path):
    make_video(tmp_path / "in.mp4", frames=2)
    (tmp_path / "out.mp4").write_bytes(b"old")
    assert strcnn("deblur", tmp_path / "in.mp4", tmp_path / "out.mp4", "--model", IDENTITY, "--force").exit_code == 0
    assert video_facts(tmp_path / "out.mp4")["frames"] == 2
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "stale.png").write_bytes(b"old")
    assert strcnn("deblur", tmp_path / "in.mp4", tmp_path / "frames", "--model", IDENTITY, "--force").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_000000.png", "frame_000001.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "in.mp4", "out.mp4"]  # nothing set aside is left


def test_bad_options(tmp_path):
    make_video(tmp_path / "in.mp4", frames=2)
    cases = [(["--codec", "nosuchcodec"], "not available"), (["--fps", "0"], "--fps"),
             (["--pix-fmt", "rgb9000"], "--pix-fmt 'rgb9000' is not a pixel format; libx264 takes yuv420p, "),
             (["--codec", "libvpx-vp9", "--pix-fmt", "yuv420p10le"],
              "--pix-fmt 'yuv420p10le' is not one that libvpx-vp9 encodes; libvpx-vp9 takes yuv420p, "),
             (["--crf", "99"], "--crf 99 is outside libx264's scale of 0 (best) to 51"),
             (["--codec", "libvpx-vp9", "--crf", "64"], "--crf 64 is outside libvpx-vp9's scale of 0 (best) to 63")]
    for options, message in cases:
        result = strcnn("deblur", tmp_path / "in.mp4", tmp_path / "out.mp4", "--model", IDENTITY, *options)
        assert result.exit_code == 1 and result.stderr.startswith("strcnn: error: ") and message in result.stderr, \
            result.output
        assert len(result.stderr.splitlines()) == 1, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    with pytest.raises(MediaError, match="'rgb9000' is not a pixel format"):
        deblur_video(tmp_path / "in.mp4", tmp_path / "out.mp4", model=IDENTITY, pix_fmt="rgb9000")


def test_a_truncated_input_keeps_its_frames_and_says_how_many_of_the_promised_came(tmp_path):
    """An MP4 with its index in front, cut in half, decodes only part of its frames: they are written, and one
    line says how many of the frames the header promises arrived; in Python, the job's result carries it."""
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as c:
        stream = c.add_stream("libx264", rate=25, options={"crf": "20"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(60):
            c.mux(stream.encode(av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), np.uint8), "rgb24")))
        c.mux(stream.encode(None))
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    result = strcnn("deblur", cut, tmp_path / "out.mp4", "--model", IDENTITY, "-q")
    written = video_facts(tmp_path / "out.mp4")["frames"]
    assert result.exit_code == 0 and 0 < written < 60, result.output
    said = [line for line in result.stderr.splitlines() if "its header promises" in line]
    assert said == [f"strcnn: warning: {cut}: the input ended after {written} of the 60 frames its header promises: "
                    f"the file is cut short or damaged; the {written} frames read are written"], result.stderr
    assert "its header promises" not in strcnn("deblur", whole, tmp_path / "whole_out.mp4", "--model", IDENTITY,
                                               "-q").stderr
    with pytest.warns(UntrainedModelWarning):  # the identity model says so when it loads
        [row] = deblur_many([cut], tmp_path / "many", model=IDENTITY)
    assert row.status == "done" and row.frames == written and any(f"after {written} of the 60" in w
                                                                   for w in row.warnings)


def test_info_and_eval(tmp_path):
    result = strcnn("info", "--model", IDENTITY)
    assert result.exit_code == 0 and "CPUExecutionProvider" in result.output and "cpu:" in result.output
    shipped = strcnn("info")
    assert shipped.exit_code == 0 and "strcnn_dtb" in shipped.output and "trained:" in shipped.output
    for name, card in (("full", "MODEL_CARD.md"), ("fast", "MODEL_CARD_fast.md")):  # the shipped models listed
        [line] = [line for line in shipped.output.splitlines() if line.startswith(f"  {name}")]
        assert ("(the default" in line) == (name == shipped_default()), line
        side = json.loads(shipped_model_path("auto", name=name).with_suffix(".json").read_text())
        assert f"{shipped_model_path('auto', name=name).name}, width {side['width']}" in line, line
        assert " fps; test set " in line and f"{side['quality']['test']['gain_db']:+.3f} dB" in line
        assert line.endswith(card)
    fast = strcnn("info", "--model", "fast", "--precision", "fp32")
    assert fast.exit_code == 0 and "strcnn_dtb_fast: variant dtb, m 1, width 32, precision fp32" in fast.output
    assert "(see MODEL_CARD_fast.md)" in fast.output
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
    cv2.imwrite(str(pairs / "y_sharp1.png"), sharp)  # a near-sharp pair: its input is its target
    cv2.imwrite(str(pairs / "y_blur1.png"), sharp)
    result = strcnn("eval", pairs, "--model", IDENTITY, "--no-ssim")
    assert "1 near-sharp clips, input 40 dB or more, are left out of the mean" in result.output, result.output
    assert "gain +0.000 dB over 1 clips below 40 dB" in result.output and "do-no-harm holds" in result.output


def test_info_prints_the_models_own_verdict():
    """`strcnn info` states the shipped model's test-set gain with its do-no-harm verdict and its GoPro gain, as
    measured in the precision that runs; it gives no QualityWarning, as it does not run the model."""
    for precision in ("fp32", "int8"):
        result = strcnn("info", "--precision", precision)
        meta = json.loads(shipped_model_path(precision).with_suffix(".json").read_text())
        assert result.exit_code == 0 and describe_quality(meta["quality"]) in result.output, result.output
        assert "GoPro pairs" in result.output and "do-no-harm" in result.output
        assert "do-no-harm rule" not in result.output  # stated among the figures; the warning is for using it
        assert f"measured in {precision} (the precision that runs)" in result.output


def test_info_opens_each_model_once(monkeypatch):
    """The model `strcnn info` describes serves its own line of the shipped models' list: each file opens once."""
    from strcnn_sdk.model import Model

    opened = []
    open_ = Model._open
    monkeypatch.setattr(Model, "_open", lambda self, path, providers: (opened.append(path.name),
                                                                       open_(self, path, providers))[1])
    result = strcnn("info", "--model", "fast", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert sorted(opened) == ["strcnn_dtb.onnx", "strcnn_dtb_fast.onnx"]


def test_bench_prints_every_figure():
    result = strcnn("bench", "--sizes", "32x24", "--runs", "1", "--precisions", "fp32", "--stream-steps", "5",
                    "--stream-size", "16x12", "--pipeline-frames", "10", "--preset", "ultrafast", "--model-frames", "0")
    assert result.exit_code == 0, result.output
    assert "cpu:" in result.output and "Deblurrer.push" in result.output
    assert "stream of 5 steps" in result.output and "of the encoder" in result.output


def test_bench_measures_each_configuration_once_reports_as_it_goes_and_releases_sessions(monkeypatch):
    """Both shipped models by default; auto is int8 or fp32 on any CPU, so three precisions are two
    configurations a model: eight rows at two sizes, each announced, with the time left after each; each session
    is released after its rows; then the fast model against the full one, precision by precision and size by
    size."""
    from strcnn_sdk.model import Model

    closed = []
    close = Model.close
    monkeypatch.setattr(Model, "close", lambda self: (closed.append(self.meta["precision"]), close(self))[1])
    result = strcnn("bench", "--sizes", "32x24,48x32", "--runs", "1", "--precisions", "auto,fp32,int8",
                    "--stream-steps", "0", "--no-pipeline")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("row ")] == [f"row {i}/8" for i in range(1, 9)]
    assert sum("measured once" in line for line in lines) == 2
    assert not [line for line in lines if "overhead -" in line]  # noise is called noise, not a negative cost
    assert sum("fps, Deblurrer.push" in line for line in lines) == 8 and "s left" in result.output
    assert sum(line.startswith("strcnn_dtb_fast.") and "fps, Deblurrer.push" in line for line in lines) == 4
    assert len(closed) == 4
    compared = [line for line in lines if line.startswith("fast against full, ")]
    assert len(compared) == 4 and all("x the frames a second (model)" in line for line in compared), compared
    assert {line.split(" on ")[0].split(", ")[1] for line in compared} == {"int8", "fp32"}


def test_bench_pipeline_on_a_real_video_with_audio():
    result = strcnn("bench", "--sizes", "32x24", "--runs", "1", "--precisions", "fp32", "--stream-steps", "0",
                    "--pipeline-source", SAMPLE, "--preset", "ultrafast", "--model-frames", "2")
    assert result.exit_code == 0, result.output
    assert "pipeline 480x270 sample.mp4" in result.output and "of the model alone" in result.output


def test_an_explicit_cuda_request_that_cannot_run_is_an_error_without_onnxruntime_noise():
    if cuda_usable():
        pytest.skip("CUDA is usable here: the request is honoured")
    result = strcnn("info", "--provider", "cuda", "--model", IDENTITY)
    assert result.exit_code == 1 and "auto or cpu" in result.output, result.output
    assert "onnxruntime:" not in result.output and "Failed to load" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_fp16_is_refused_on_the_cpu_unless_given_as_a_file():
    if cuda_usable():
        pytest.skip("CUDA is usable here: fp16 is its format")
    result = strcnn("info", "--precision", "fp16")
    assert result.exit_code == 1 and "--precision auto or fp32" in result.output, result.output
    given = strcnn("info", "--model", shipped_model_path("fp16"))
    assert given.exit_code == 0 and "precision fp16" in given.output, given.output
    assert "onnxruntime:" not in given.output  # its kernel warnings stay quiet


def test_checks_that_cost_nothing_come_before_the_model_loads(tmp_path, tiny):
    """An existing output without --force is refused before the (untrained, so warning) model loads."""
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"keep me")
    result = strcnn("deblur", SAMPLE, existing, "--model", tiny[0])
    assert result.exit_code == 1 and "exists; pass --force" in result.output and "UNTRAINED" not in result.output
    assert existing.read_bytes() == b"keep me"


def test_messages_in_the_clis_own_words(tmp_path):
    result = strcnn("deblur", SAMPLE, tmp_path / "a.mp4", "--model", IDENTITY, "--tile", "0")
    assert result.exit_code == 1 and "--tile must be auto, off or a side of at least 8 pixels" in result.output
    assert "None" not in result.output
    notes = tmp_path / "notes.mp4"
    notes.write_bytes(b"not a model")
    result = strcnn("deblur", SAMPLE, tmp_path / "b.mp4", "--model", notes)
    assert result.exit_code == 1 and "notes.mp4 is not an ONNX model" in result.output, result.output
    assert list(tmp_path.iterdir()) == [notes]
    help_text = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["deblur", "--help"]).output
    assert "keeps what was deblurred until then; an interrupted file leaves nothing." in " ".join(help_text.split())


def test_a_gif_keeps_every_frame_its_timing_and_its_colours(tmp_path):
    """out.gif: FFmpeg's GIF encoder with each frame's own palette; every frame at its time (in the GIF's
    hundredths of a second), no audio and no warning about it."""
    pts = [0, 40, 100, 140, 200, 240]
    clip = make_video(tmp_path / "in.mkv", frames=len(pts), pts=pts, audio=True)
    result = strcnn("deblur", tmp_path / "in.mkv", tmp_path / "out.gif", "--model", IDENTITY)
    assert result.exit_code == 0 and "audio" not in result.output, result.output
    facts = video_facts(tmp_path / "out.gif")
    assert facts["frames"] == len(pts) and facts["size"] == (48, 64) and facts["types"] == ["video"]
    assert facts["pts"] == [Fraction(p, 1000) for p in pts]
    gif = frames_of(tmp_path / "out.gif")
    assert min(psnr(a, b) for a, b in zip(clip, gif)) > 22  # 256 colours of each frame's own, ordered dither
    assert np.abs(clip.mean(axis=(0, 1, 2)) - gif.mean(axis=(0, 1, 2))).max() < 2  # no colour shift


def test_a_container_that_cannot_hold_the_codec_is_one_line_before_the_model_loads(tmp_path):
    """A container/codec pair that cannot be written is refused up front, naming the codecs the container takes;
    the model named (here a missing file) is never opened, and nothing is written."""
    for name, codec, takes in (("out.gif", "libx264", "it takes gif"), ("out.webm", "libx264", "libvpx-vp9"),
                               ("out.mp4", "gif", "libx264")):
        result = strcnn("deblur", SAMPLE, tmp_path / name, "--codec", codec, "--model", tmp_path / "missing.onnx")
        assert result.exit_code == 1, result.output
        [line] = result.output.strip().splitlines()
        assert line.startswith(f"strcnn: error: {tmp_path / name}: ") and f"cannot hold {codec} video" in line, line
        assert takes in line and "--codec" in line, line
    with pytest.raises(MediaError, match="webm cannot hold libx264 video"):
        deblur_video(SAMPLE, tmp_path / "out.webm", model=IDENTITY, codec="libx264")
    assert list(tmp_path.iterdir()) == []


def test_quiet_silences_progress_and_the_quality_warning_in_eval_and_bench_too(tmp_path):
    """-q is taken by every command that shows progress or the model's quality warning."""
    judged = judged_model(tmp_path)
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    sharp = np.random.default_rng(0).integers(0, 256, (16, 20, 3), np.uint8)
    cv2.imwrite(str(pairs / "x_sharp1.png"), sharp)
    cv2.imwrite(str(pairs / "x_blur1.png"), cv2.GaussianBlur(sharp, (5, 5), 0))
    bench = ["bench", "--sizes", "32x24", "--runs", "1", "--precisions", "fp32", "--stream-steps", "0",
             "--no-pipeline", "--model", judged]
    for command in (["eval", pairs, "--model", judged], bench):  # a new process each: the warning comes once in one
        loud, quiet = (subprocess.run([sys.executable, "-m", "strcnn_sdk.cli", *map(str, command), *extra],
                                      capture_output=True, text=True) for extra in ([], ["-q"]))
        assert loud.returncode == quiet.returncode == 0, quiet.stderr
        assert "do-no-harm rule" in loud.stderr and "do-no-harm rule" not in quiet.stderr
    assert "row 1/1" in loud.stdout and "row 1/1" not in quiet.stdout
    assert "judged.onnx (fp32) on " in quiet.stdout and " 32x24: model " in quiet.stdout  # the figures stay


@pytest.mark.parametrize("command", ["deblur", "deblur-many", "info", "bench", "eval", None])
def test_help_fits_80_columns_whole_without_type_labels(command):
    """Every command's --help at 80 columns keeps every word (nothing cut to an ellipsis, no line wider than the
    terminal), names option values (FILE, N, NAME) rather than Python types (<str>, <int range>), and gives each
    flag one name."""
    text = CliRunner(env={"COLUMNS": "80"}).invoke(app, [*([command] if command else []), "--help"]).output
    assert "…" not in text
    assert max(map(len, text.splitlines())) <= 80
    options = [line for line in text.splitlines() if line.startswith("  -")]
    assert options and not [line for line in options if "<" in line or "range>" in line]
    if command == "deblur":
        assert "--side-by-side " in text and "--no-side-by-side" not in text and "--model NAME|FILE" in text


def test_an_odd_size_that_420_cannot_keep_is_noted(tmp_path):
    make_video(tmp_path / "odd.mp4", frames=3, size=(25, 33))
    result = strcnn("deblur", tmp_path / "odd.mp4", tmp_path / "a.mp4", "--model", IDENTITY, "--quiet")
    assert result.exit_code == 0, result.output
    assert "33x25 frames become 34x26 (the last row and column repeated)" in result.output
    assert "--pix-fmt yuv444p or a folder of PNGs keeps the size" in result.output
    assert video_facts(tmp_path / "a.mp4")["size"] == (26, 34)
    result = strcnn("deblur", tmp_path / "odd.mp4", tmp_path / "b.mp4", "--model", IDENTITY, "--quiet",
                    "--pix-fmt", "yuv444p")
    assert result.exit_code == 0 and "become" not in result.output and video_facts(tmp_path / "b.mp4")["size"] == (25, 33)


def test_strength_zero_writes_the_input_frames_bit_for_bit_and_is_recorded(tmp_path, tiny):
    """--strength 0 on PNGs gives back the same PNGs; a video records the strength that made it; one outside
    [0, 1] is refused before anything runs."""
    from strcnn_sdk.video import read_record

    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "in" / f"f{i}.png"), rng.integers(0, 256, (19, 27, 3), dtype=np.uint8))
    result = strcnn("deblur", tmp_path / "in", tmp_path / "out", "--model", tiny[0], "--strength", "0", "-q")
    assert result.exit_code == 0, result.output
    made = sorted((tmp_path / "out").iterdir())
    assert len(made) == 3
    for i, path in enumerate(made):
        assert np.array_equal(cv2.imread(str(path)), cv2.imread(str(tmp_path / "in" / f"f{i}.png")))
    video = tmp_path / "half.mkv"
    assert strcnn("deblur", tmp_path / "in", video, "--model", tiny[0], "--strength", "0.5", "-q").exit_code == 0
    assert read_record(video)["strength"] == 0.5
    refused = strcnn("deblur", tmp_path / "in", tmp_path / "x.mkv", "--model", tiny[0], "--strength", "1.5")
    assert refused.exit_code == 2 and "--strength" in refused.output and not (tmp_path / "x.mkv").exists()
    with pytest.raises(MediaError, match="strength must be a number from 0"):
        deblur_video(tmp_path / "in", tmp_path / "y.mkv", model=tiny[0], strength=2)
