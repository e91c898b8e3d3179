"""The Python video API (`deblur_video`, `iter_frames`) and what a video brings beside its pictures: streams the
output cannot hold, raw streams, size changes, aspect ratio, HDR tags, image order, progress."""

import dataclasses
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from strcnn_sdk import Cancelled, MediaError, MediaWarning, Model, Settings, deblur_video, iter_frames
from strcnn_sdk.cli import app
from strcnn_sdk.console import ProgressBar
from strcnn_sdk.model import shipped_model_path
from strcnn_sdk.pipeline import _label
from strcnn_sdk.video import read_record
from media import SUBTITLE, frames_of, make_video, video_facts

IDENTITY = shipped_model_path().with_name("identity.onnx")
runner = CliRunner()


@pytest.fixture(scope="module")
def identity() -> Model:
    with pytest.warns(UserWarning):  # untrained
        return Model(IDENTITY, providers="cpu", threads=1)


def streams(path: Path) -> list[tuple[str, str | None]]:
    with av.open(str(path)) as c:
        return [(s.type, getattr(s.codec_context, "name", None)) for s in c.streams]


def subtitle_texts(path: Path) -> list[str]:
    with av.open(str(path)) as c:
        packets = [bytes(p) for p in c.demux(c.streams.subtitles[0]) if p.size]
    return [p[2:].decode() if streams(path)[-1][1] == "mov_text" else p.decode() for p in packets]


def test_aac_into_webm_comes_out_as_opus_of_the_same_length(tmp_path, identity):
    make_video(tmp_path / "in.mp4", frames=10, audio=True)
    with pytest.warns(MediaWarning, match=r"stream #1 \(audio, aac\): webm cannot hold it; encoded as libopus"):
        assert deblur_video(tmp_path / "in.mp4", tmp_path / "out.webm", model=identity) == 10
    assert streams(tmp_path / "out.webm") == [("video", "vp9"), ("audio", "opus")]
    with av.open(str(tmp_path / "out.webm")) as c:
        decoded = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].rate
    assert abs(decoded - 10 / 25) < 0.05, decoded


def test_audio_modes(tmp_path, identity):
    make_video(tmp_path / "in.mp4", frames=4, audio=True)
    deblur_video(tmp_path / "in.mp4", tmp_path / "none.mkv", model=identity, audio="none")
    assert streams(tmp_path / "none.mkv") == [("video", "h264")]
    deblur_video(tmp_path / "in.mp4", tmp_path / "encoded.webm", model=identity, audio="encode")
    assert streams(tmp_path / "encoded.webm")[1] == ("audio", "opus")
    with pytest.raises(MediaError, match="audio must be one of copy, encode, none"):
        deblur_video(tmp_path / "in.mp4", tmp_path / "x.mp4", model=identity, audio="mp3")


@pytest.mark.parametrize("subtitle, output, expected", [("subrip", "out.mp4", "mov_text"),
                                                        ("mov_text", "out.mkv", "subrip")])
def test_text_subtitles_are_rewritten_in_the_output_format(tmp_path, identity, subtitle, output, expected):
    source = tmp_path / ("in.mkv" if subtitle == "subrip" else "in.mp4")
    make_video(source, frames=4, subtitle=subtitle)
    with pytest.warns(MediaWarning, match=f"rewritten as {expected}"):
        deblur_video(source, tmp_path / output, model=identity)
    kind, codec = streams(tmp_path / output)[-1]
    assert kind == "subtitle" and codec in (expected, "srt" if expected == "subrip" else expected)
    assert subtitle_texts(tmp_path / output) == [SUBTITLE]


def test_a_data_stream_that_cannot_be_held_is_left_out_with_a_warning(tmp_path, identity):
    make_video(tmp_path / "in.mov", frames=4, timecode=True)
    assert [t for t, _ in streams(tmp_path / "in.mov")] == ["video", "data"]
    for name in ("out.webm", "out.mkv"):
        with pytest.warns(MediaWarning, match=r"stream #1 \(data, .*\): left out"):
            assert deblur_video(tmp_path / "in.mov", tmp_path / name, model=identity) == 4
        assert [t for t, _ in streams(tmp_path / name)] == ["video"]
    result = runner.invoke(app, ["deblur", str(tmp_path / "in.mov"), str(tmp_path / "cli.webm"), "--model",
                                 str(IDENTITY), "-q"])
    assert result.exit_code == 0 and "strcnn: warning: stream #1 (data" in result.output
    assert "Traceback" not in result.output


def test_deblur_video_starts_a_new_stream_on_every_call_and_reports_progress(tmp_path, tiny_model):
    make_video(tmp_path / "in.mp4", frames=5)
    calls = []
    deblur_video(str(tmp_path / "in.mp4"), str(tmp_path / "a.mkv"), model=tiny_model, crf=0,
                 progress=lambda done, total: calls.append((done, total)))
    deblur_video(tmp_path / "in.mp4", tmp_path / "b.mkv", model=tiny_model, crf=0)
    assert calls == [(i, 5) for i in range(1, 6)]
    np.testing.assert_array_equal(frames_of(tmp_path / "a.mkv"), frames_of(tmp_path / "b.mkv"))


def test_a_progress_callback_returning_false_cancels_with_nothing_written(tmp_path, identity):
    make_video(tmp_path / "in.mp4", frames=6)
    with pytest.raises(Cancelled, match="after 2 frames"):
        deblur_video(tmp_path / "in.mp4", tmp_path / "out.mp4", model=identity, progress=lambda done, total: done < 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_deblur_video_refuses_what_the_cli_refuses(tmp_path, identity):
    make_video(tmp_path / "in.mp4", frames=2)
    with pytest.raises(MediaError, match="would overwrite the input"):
        deblur_video(tmp_path / "in.mp4", tmp_path / "in.mp4", model=identity, overwrite=True)
    (tmp_path / "out.mp4").write_bytes(b"keep")
    with pytest.raises(MediaError, match="exists; pass --force to overwrite it"):
        deblur_video(tmp_path / "in.mp4", tmp_path / "out.mp4", model=identity)
    assert (tmp_path / "out.mp4").read_bytes() == b"keep"


def test_iter_frames_yields_rgb_frames_with_their_times(tmp_path):
    pts = [0, 40, 100, 140]
    clip = make_video(tmp_path / "in.mkv", frames=4, pts=pts)
    frames = list(iter_frames(str(tmp_path / "in.mkv")))
    assert [f.time for f in frames] == [Fraction(p, 1000) for p in pts]
    assert all(f.rgb.shape == clip[0].shape and f.rgb.dtype == np.uint8 for f in frames)
    np.testing.assert_array_equal(np.stack([f.rgb for f in frames]), frames_of(tmp_path / "in.mkv"))


def test_image_names_are_sorted_naturally(tmp_path, identity):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 2, 10):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((8, 8, 3), i * 20, np.uint8))
    assert [f.name for f in iter_frames(folder)] == ["1.png", "2.png", "10.png"]
    deblur_video(folder, tmp_path / "out", model=identity)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "10.png", "2.png"]


def _raw(path: Path, size: tuple[int, int], frames: int, rate: int) -> None:
    with av.open(str(path), "w", format="h264") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = size[1], size[0], "yuv420p"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.full((*size, 3), 30 * i, np.uint8), format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))


def test_a_raw_stream_without_timestamps_is_timed_from_its_frame_rate(tmp_path, identity):
    _raw(tmp_path / "in.h264", (48, 64), 6, 30)
    assert [f.time for f in iter_frames(tmp_path / "in.h264")] == [Fraction(i, 30) for i in range(6)]
    deblur_video(tmp_path / "in.h264", tmp_path / "out.mp4", model=identity)
    facts = video_facts(tmp_path / "out.mp4")
    assert facts["frames"] == 6 and facts["pts"] == [Fraction(i, 30) for i in range(6)]


def test_a_size_change_mid_video_is_a_one_line_error_naming_the_frame(tmp_path, identity):
    _raw(tmp_path / "a.h264", (48, 64), 3, 25)
    _raw(tmp_path / "b.h264", (64, 80), 3, 25)
    (tmp_path / "in.h264").write_bytes((tmp_path / "a.h264").read_bytes() + (tmp_path / "b.h264").read_bytes())
    with pytest.raises(MediaError, match="frame 3 is 80x64 but the video starts at 64x48"):
        deblur_video(tmp_path / "in.h264", tmp_path / "out.mp4", model=identity)
    assert not (tmp_path / "out.mp4").exists()


def test_sample_aspect_ratio_is_copied(tmp_path, identity):
    make_video(tmp_path / "in.mp4", frames=2, aspect=Fraction(4, 3))
    deblur_video(tmp_path / "in.mp4", tmp_path / "out.mp4", model=identity)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.sample_aspect_ratio == Fraction(4, 3)


def test_hdr_input_gets_a_warning(tmp_path, identity):
    make_video(tmp_path / "in.mkv", frames=2, trc=16)
    with pytest.warns(MediaWarning, match="HDR video \\(PQ"):
        deblur_video(tmp_path / "in.mkv", tmp_path / "out.mkv", model=identity)


@pytest.mark.skipif("libsvtav1" not in av.codecs_available, reason="this PyAV build has no SVT-AV1 encoder")
def test_svt_av1_gets_a_numeric_preset(tmp_path, identity):
    make_video(tmp_path / "in.mp4", frames=2, size=(64, 64))
    deblur_video(tmp_path / "in.mp4", tmp_path / "out.mkv", model=identity, codec="libsvtav1", preset="medium")
    assert streams(tmp_path / "out.mkv")[0][1] in ("libdav1d", "av1", "libaom-av1")


def test_settings_and_keywords_say_the_same(tmp_path, identity):
    """A `Settings` object and keyword arguments are one way of saying how to run: keywords replace its fields,
    the outputs' records agree, a keyword that is no setting is a TypeError naming it, and settings are frozen."""
    make_video(tmp_path / "in.mp4", frames=2)
    deblur_video(tmp_path / "in.mp4", tmp_path / "a.mkv", model=identity, crf=30, side_by_side=True)
    shared = Settings(crf=10, side_by_side=True)
    deblur_video(tmp_path / "in.mp4", tmp_path / "b.mkv", model=identity, settings=shared, crf=30)
    assert read_record(tmp_path / "a.mkv") == read_record(tmp_path / "b.mkv")
    assert read_record(tmp_path / "b.mkv")["crf"] == 30 and shared.crf == 10
    with pytest.raises(TypeError, match="not a setting of a run: quality"):
        deblur_video(tmp_path / "in.mp4", tmp_path / "c.mkv", model=identity, quality=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        shared.crf = 20


def test_side_by_side_halves_are_labelled(tmp_path, identity):
    clip = make_video(tmp_path / "in.mp4", frames=2, size=(96, 128))
    deblur_video(tmp_path / "in.mp4", tmp_path / "out.mkv", model=identity, side_by_side=True, crf=0,
                 pix_fmt="yuv444p")
    pair = frames_of(tmp_path / "out.mkv")[0].astype(int)
    assert pair.shape == (96, 256, 3)
    for half in (pair[:, :128], pair[:, 128:]):
        corner = np.abs(half[:30, :80] - clip[0][:30, :80]).max(-1)
        assert (corner > 100).sum() > 20  # the label's strokes
        assert np.abs(half[50:] - clip[0][50:]).mean() < 3  # the picture below it is untouched
    labels = {}
    for text in ("identity (untrained)", "deblurred"):  # the model's half names the model, not a claim
        labels[text] = clip[0].copy()
        _label(labels[text], text)
    assert np.abs(pair[:40, 128:] - labels["identity (untrained)"][:40]).mean() < \
        0.5 * np.abs(pair[:40, 128:] - labels["deblurred"][:40]).mean()


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path, monkeypatch):
    make_video(tmp_path / "in.mp4", frames=3)
    monkeypatch.setattr(ProgressBar, "EVERY_S", 0.0)
    result = runner.invoke(app, ["deblur", str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), "--model",
                                 str(IDENTITY)])
    assert result.exit_code == 0, result.output
    assert "deblurring: 3/3 frames" in result.output and "fps" in result.output


def _ten_bit(path: Path, frames: int = 3) -> np.ndarray:
    """A lossless 10-bit FFV1 clip of a grey ramp finer than 8 bits; returns its RGB as decoded (16-bit)."""
    ramp = np.tile((np.linspace(100, 400, 64).round().astype(np.uint16) << 6)[None, :, None], (16, 1, 3))
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 64, 16, "yuv444p10le"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(ramp, format="rgb48le").reformat(format="yuv444p10le")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return rgb48(path)[0]


def rgb48(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb48le") for f in c.decode(video=0)]).astype(int)


def test_ten_bit_video_keeps_ten_bits_through_the_model(tmp_path, identity):
    source = _ten_bit(tmp_path / "in.mkv")
    frames = list(iter_frames(tmp_path / "in.mkv"))
    assert frames[0].rgb.dtype == np.float32 and len(np.unique(frames[0].rgb[0, :, 1])) > 60  # finer than 8 bits
    deblur_video(tmp_path / "in.mkv", tmp_path / "out.mkv", model=identity, codec="ffv1", pix_fmt="yuv444p10le")
    error = np.abs(rgb48(tmp_path / "out.mkv")[0] - source).max()
    eight_bit = np.abs((source / 257).round() * 257 - source).max()  # what a pass through 8 bits costs
    assert error < 64 < eight_bit, (error, eight_bit)  # within one 10-bit level
    deblur_video(tmp_path / "in.mkv", tmp_path / "eight.mkv", model=identity, codec="ffv1", pix_fmt="yuv444p")
    with av.open(str(tmp_path / "eight.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv444p"
