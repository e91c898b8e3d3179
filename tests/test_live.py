"""Live inputs and outputs, for real: pipes between processes, an HTTP server and a UDP/MPEG-TS stream on
127.0.0.1, FFmpeg's lavfi test source as a device, Ctrl-C on a live source, and --realtime pass-through."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from strcnn_sdk import MediaError, MediaWarning, StreamLost, deblur_video, iter_frames
from strcnn_sdk.video import locate
from media import make_video, video_facts

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "lavfi:testsrc2=size=64x48:rate=25"


def cli(*args, **kwargs) -> subprocess.CompletedProcess:
    """`strcnn` in a child process, as a shell runs it in a pipeline."""
    return subprocess.run([sys.executable, "-m", "strcnn_sdk.cli", *map(str, args)], capture_output=True,
                          timeout=120, **kwargs)


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return sum(frame.samples for frame in container.decode(audio=0)) / container.streams.audio[0].rate


def test_locate_keeps_urls_and_devices_as_strings(tmp_path, monkeypatch):
    assert locate("rtsp://camera.local/stream").target == "rtsp://camera.local/stream"  # no Path: still two slashes
    assert locate("rtsp://camera.local/stream").kind == "url"
    assert (locate("-").kind, locate("-").target, locate("-", writing=True).target) == ("pipe", "pipe:0", "pipe:1")
    device = locate("lavfi:testsrc2=size=64x48")
    assert (device.kind, device.format, device.target, device.live) == ("device", "lavfi", "testsrc2=size=64x48", True)
    assert locate("C:/videos/in.mp4").kind == "path" and not locate("C:/videos/in.mp4").live
    assert locate("nosuchformat:x").kind == "path"
    monkeypatch.chdir(tmp_path)
    Path("lavfi:clip.mp4").touch()
    assert locate("lavfi:clip.mp4").kind == "path"  # an existing file wins over a device of the same spelling
    with pytest.raises(MediaError, match="writing to a URL is not supported"):
        locate("rtmp://server/live", writing=True)


def test_a_pipe_in_and_a_pipe_out_keep_frames_timing_and_audio(tmp_path, tiny):
    clip = tmp_path / "in.mkv"
    make_video(clip, frames=12, audio=True)
    work = tmp_path / "work"
    work.mkdir()
    run = cli("deblur", "-", "-", "--model", tiny[0], "--provider", "cpu", input=clip.read_bytes(), cwd=work)
    assert run.returncode == 0, run.stderr.decode()
    assert list(work.iterdir()) == []  # nothing on disk
    assert b"wrote 12 frames to standard output" in run.stderr  # the progress and the summary go to stderr
    out = tmp_path / "out.mkv"
    out.write_bytes(run.stdout)
    facts, given = video_facts(out), video_facts(clip)
    assert facts["frames"] == 12 and facts["pts"] == given["pts"] and facts["types"] == ["audio", "video"]
    assert audio_seconds(out) == pytest.approx(audio_seconds(clip), abs=0.07)


def test_a_three_process_pipeline_streams_fragmented_mp4(tmp_path, tiny):
    """producer | strcnn deblur - - --format mp4 | consumer, each a process, as with ffmpeg and ffplay."""
    clip = tmp_path / "in.ts"
    make_video(clip, frames=10)
    producer = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb')"
                                 ".read())", str(clip)], stdout=subprocess.PIPE)
    middle = subprocess.Popen([sys.executable, "-m", "strcnn_sdk.cli", "deblur", "-", "-", "--input-format", "mpegts",
                               "--format", "mp4", "--model", str(tiny[0]), "--provider", "cpu", "--quiet"],
                              stdin=producer.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    producer.stdout.close()
    consumer = subprocess.run([sys.executable, "-c", "import av; c = av.open('pipe:0'); print(c.format.name, "
                               "sum(1 for _ in c.decode(video=0)))"], stdin=middle.stdout, capture_output=True,
                              text=True, timeout=120)
    middle.stdout.close()
    assert middle.wait(timeout=60) == 0, middle.stderr.read().decode()
    assert consumer.returncode == 0, consumer.stderr
    assert "mp4" in consumer.stdout and consumer.stdout.split()[-1] == "10"


def test_a_reader_that_quits_ends_the_run_and_mp4_on_a_pipe_is_explained(tmp_path, tiny):
    clip = tmp_path / "in.mp4"
    make_video(clip, frames=30, size=(240, 320))
    process = subprocess.Popen([sys.executable, "-m", "strcnn_sdk.cli", "deblur", clip, "-", "--crf", "0", "--model",
                                tiny[0], "--provider", "cpu", "--quiet"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.read(1000)  # a player that shows the start and is quit
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0 and b"closed by the program reading it" in stderr and b"Traceback" not in stderr
    run = cli("deblur", "-", tmp_path / "x.mkv", "--model", tiny[0], input=clip.read_bytes())
    assert run.returncode == 1 and b"MP4 cannot be read from a pipe" in run.stderr
    assert not (tmp_path / "x.mkv").exists()


def _y4m(path: Path, frames: int) -> None:
    """A YUV4MPEG2 stream, as `ffmpeg -f yuv4mpegpipe -` writes one."""
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("wrapped_avframe", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.parametrize("name", ["clip.nut", "clip.y4m"])
def test_nut_and_y4m_on_standard_input(tmp_path, tiny, name):
    clip = tmp_path / name
    if name.endswith(".y4m"):
        _y4m(clip, 5)
    else:
        make_video(clip, frames=5)
    run = cli("deblur", "-", tmp_path / "out.mkv", "--model", tiny[0], "--provider", "cpu", input=clip.read_bytes())
    assert run.returncode == 0, run.stderr.decode()
    assert video_facts(tmp_path / "out.mkv")["frames"] == 5


def test_raw_frames_on_a_pipe_with_input_format_and_options(tmp_path, tiny):
    frames = np.random.default_rng(0).integers(0, 256, (5, 24, 32, 3), np.uint8)
    out = tmp_path / "out"
    run = cli("deblur", "-", out, "--input-format", "rawvideo", "--input-option", "video_size=32x24",
              "--input-option", "pixel_format=rgb24", "--input-option", "framerate=25", "--model", tiny[0],
              "--provider", "cpu", input=frames.tobytes())
    assert run.returncode == 0, run.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:06d}.png" for i in range(5)]
    bad = cli("deblur", "-", tmp_path / "x.mkv", "--model", tiny[0], input=b"not a video at all" * 100)
    assert bad.returncode == 1 and b"--input-format" in bad.stderr and b"Traceback" not in bad.stderr
    malformed = cli("deblur", "-", tmp_path / "x.mkv", "--input-option", "video_size", input=b"")
    assert malformed.returncode == 1 and b"KEY=VALUE" in malformed.stderr


def test_a_device_ends_after_frames_or_duration_with_audio_cut_alike(tmp_path, tiny_model):
    assert deblur_video(SOURCE, tmp_path / "seven.mkv", model=tiny_model, frames=7) == 7
    assert video_facts(tmp_path / "seven.mkv")["frames"] == 7
    with_audio = "lavfi:testsrc2=size=64x48:rate=25[out0];sine=frequency=440:sample_rate=16000[out1]"
    out = tmp_path / "timed.mkv"
    assert deblur_video(with_audio, out, model=tiny_model, duration=0.4) == 10
    assert video_facts(out)["types"] == ["audio", "video"]
    assert audio_seconds(out) == pytest.approx(0.4, abs=0.07)
    with pytest.raises(MediaError, match="timestamps, so --duration cannot apply"):
        deblur_video(ROOT / "examples" / "golden", tmp_path / "x.mkv", model=tiny_model, duration=1)
    with pytest.raises(MediaError, match="--realtime is for live inputs"):
        deblur_video(ROOT / "examples" / "sample.mp4", tmp_path / "x.mkv", model=tiny_model, realtime=True)
    assert not (tmp_path / "x.mkv").exists()


class _Server(http.server.ThreadingHTTPServer):
    """Serves one file on 127.0.0.1; requests listed in `cut` (0 is the first) get half of it, then the connection
    drops."""

    def __init__(self, data: bytes, cut: set[int]) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2] if server.requests - 1 in cut else data)
                self.wfile.flush()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.requests = 0
        self.url = f"http://127.0.0.1:{self.server_address[1]}/clip.ts"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def stream(tmp_path) -> bytes:
    """An MPEG-TS clip of 20 frames with AAC audio, as bytes."""
    make_video(tmp_path / "clip.ts", frames=20, audio=True)
    return (tmp_path / "clip.ts").read_bytes()


def test_http_input(tmp_path, tiny_model, stream):
    server = _Server(stream, cut=set())
    try:
        assert deblur_video(server.url, tmp_path / "out.mkv", model=tiny_model) == 20
    finally:
        server.stop()


def test_a_dropped_http_stream_is_reopened_and_goes_on(tmp_path, tiny_model, stream):
    server = _Server(stream, cut={0})
    try:
        with pytest.warns(MediaWarning, match="dropped after .* frames and was reopened"):
            count = deblur_video(server.url, tmp_path / "out.mkv", model=tiny_model)
    finally:
        server.stop()
    facts = video_facts(tmp_path / "out.mkv")
    assert server.requests == 2 and 20 < count == facts["frames"] < 40  # the first half, then the whole clip
    assert all(b > a for a, b in zip(facts["pts"], facts["pts"][1:]))  # the second part follows the first
    assert audio_seconds(tmp_path / "out.mkv") > 1.0  # the sound of both parts: 0.8 s of the whole clip and more


def test_a_stream_that_stays_down_ends_with_an_error_and_keeps_what_was_written(tmp_path, tiny_model, stream):
    server = _Server(stream, cut={0})
    server.RequestHandlerClass.do_GET = _gone_after(server, server.RequestHandlerClass.do_GET)
    out = tmp_path / "out.mkv"
    start = time.monotonic()
    try:
        with pytest.raises(StreamLost, match=r"not be reopened within 1 s \(--reconnect\); the \d+ frames before are "
                                             r"written to "):
            deblur_video(server.url, out, model=tiny_model, reconnect=1)
    finally:
        server.stop()
    assert time.monotonic() - start < 20
    assert 0 < video_facts(out)["frames"] < 20 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _gone_after(server: _Server, serve):
    """A handler that serves once, then answers every later request by closing the connection."""
    def do_GET(self) -> None:
        if server.requests:
            self.close_connection = True
            return
        serve(self)
    return do_GET


def test_udp_mpegts_stream(tmp_path, tiny_model):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sending = threading.Event()

    def send() -> None:
        sending.wait(10)
        time.sleep(0.3)  # the receiver is listening by now
        with av.open(f"udp://127.0.0.1:{port}?pkt_size=1316", "w", format="mpegts") as container:
            video = container.add_stream("libx264", rate=25, options={"tune": "zerolatency", "g": "5"})
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
            for i in range(150):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i, np.uint8), format="rgb24")
                frame.pts = i
                container.mux(video.encode(frame))
                time.sleep(0.01)
            container.mux(video.encode(None))

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    sending.set()
    out = tmp_path / "out.mkv"
    assert deblur_video(f"udp://127.0.0.1:{port}", out, model=tiny_model, frames=20) == 20
    assert video_facts(out)["frames"] == 20
    sender.join(30)


def test_ctrl_c_on_a_live_source_keeps_the_recording(tmp_path, tiny):
    out = tmp_path / "live.mkv"
    process = subprocess.Popen([sys.executable, "-m", "strcnn_sdk.cli", "deblur", SOURCE + ",realtime", out,
                                "--model", str(tiny[0]), "--provider", "cpu"], stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while not list(tmp_path.glob(".live.mkv.*")) and time.time() < deadline:  # until the recording has begun
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "stopped; wrote" in stderr and "Traceback" not in stderr
    facts = video_facts(out)
    assert facts["frames"] >= 10 and facts["pts"][:3] == [0, Fraction(1, 25), Fraction(2, 25)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.mkv"]


STALLING_PRODUCER = """
import sys, time
import av, numpy as np
with av.open("pipe:1", "w", format="mpegts", options={"flush_packets": "1"}) as container:
    video = container.add_stream("libx264", rate=25, options={"tune": "zerolatency"})
    video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
    for i in range(150):  # more than FFmpeg's 5 s of probing
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i, np.uint8), format="rgb24")
        frame.pts = i
        container.mux(video.encode(frame))
    sys.stdout.flush()
    time.sleep(120)  # a producer that stalls: no data, no end
"""


def test_ctrl_c_on_a_stalled_pipe_keeps_what_came(tmp_path, tiny):
    """Standard input waiting for data that never comes: Ctrl-C still ends the run, with the frames that came."""
    producer = subprocess.Popen([sys.executable, "-c", STALLING_PRODUCER], stdout=subprocess.PIPE)
    out = tmp_path / "piped.mkv"
    process = subprocess.Popen([sys.executable, "-m", "strcnn_sdk.cli", "deblur", "-", out, "--model", str(tiny[0]),
                                "--provider", "cpu"], stdin=producer.stdout, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    producer.stdout.close()
    try:
        deadline = time.time() + 60
        while not list(tmp_path.glob(".piped.mkv.*")) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(4)  # the frames that came are through the model; the pipe is silent now
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        producer.kill()
    assert process.returncode == 0 and "stopped; wrote" in stderr, stderr
    # all but the few still inside the decoder's threads when the stop came (Ctrl-C ends the stream there)
    assert 140 <= video_facts(out)["frames"] <= 150


def test_realtime_passes_frames_through_untouched_when_the_model_falls_behind(tmp_path, tiny_model):
    paced = "lavfi:testsrc2=size=64x48:rate=50,realtime"
    given = [frame.rgb for frame in iter_frames("lavfi:testsrc2=size=64x48:rate=50", frames=30)]
    for realtime in (False, True):
        seen = []

        def slow(*report) -> None:  # a model that takes 60 ms a frame, against frames every 20 ms
            seen.append(report)
            time.sleep(0.06)

        out = tmp_path / f"realtime-{realtime}"
        assert deblur_video(paced, out, model=tiny_model, frames=30, realtime=realtime, progress=slow) == 30
        written = [cv2.cvtColor(cv2.imread(str(out / f"frame_{i:06d}.png")), cv2.COLOR_BGR2RGB) for i in range(30)]
        untouched = sum(np.array_equal(a, b) for a, b in zip(given, written))
        if realtime:
            passed = seen[-1][2]
            assert len(seen[-1]) == 3 and 10 < passed < 30 and untouched == passed
        else:
            assert len(seen[-1]) == 2 and untouched == 0  # every frame waits for the model


def test_realtime_on_the_cpu_runs_the_realtime_model_and_says_so_once_where_it_is_not_the_default(tmp_path):
    """Asked to keep up with a live input on the CPU, with no model named, the CLI runs the real-time model of
    models.json, and says so in one line where it is not the default; deblur_video makes the same choice; a named
    model, -q, or a run that is not real time say nothing, and the default runs where no real time is asked for."""
    from strcnn_sdk.model import shipped_default, shipped_model_path
    from strcnn_sdk.video import read_record

    def model_of(*args: str) -> tuple[str, list[str]]:
        out = tmp_path / f"{len(list(tmp_path.iterdir()))}.mkv"
        run = cli("deblur", SOURCE, out, "--frames", "4", "--provider", "cpu", *args)
        assert run.returncode == 0, run.stderr.decode()
        return read_record(out)["model"], [line for line in run.stderr.decode().splitlines() if "running the" in line]

    realtime, default = (shipped_model_path("auto", name=shipped_default(r)).name for r in (True, False))
    model, said = model_of("--realtime")
    assert model == realtime
    if realtime == default:
        assert said == []
    else:
        assert len(said) == 1 and f"--model {shipped_default()}" in said[0], said
    assert model_of("--realtime", "-q") == (realtime, [])
    assert model_of("--realtime", "--model", "full") == (shipped_model_path("auto", name="full").name, [])
    assert model_of() == (default, [])
    deblur_video(SOURCE, tmp_path / "python.mkv", frames=3, realtime=True, providers="cpu")
    assert read_record(tmp_path / "python.mkv")["model"] == realtime


def test_the_opencv_example_writes_the_side_by_side_video_headless(tmp_path, tiny):
    clip = tmp_path / "in.mp4"
    make_video(clip, frames=6, size=(48, 64))
    out = tmp_path / "live.mp4"
    run = subprocess.run([sys.executable, ROOT / "examples" / "live.py", clip, "--model", tiny[0], "--out", out,
                          "--frames", "5"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    facts = video_facts(out)
    assert facts["frames"] == 5 and facts["size"] == (48, 128)  # input and output side by side
    missing = subprocess.run([sys.executable, ROOT / "examples" / "live.py", tmp_path / "none.mp4"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "cannot open" in missing.stderr


def test_bench_live_prints_latency_and_the_sustainable_rate(tiny):
    run = cli("bench", "--live", "--sizes", "32x24", "--live-frames", "5", "--model", tiny[0])
    out = run.stdout.decode()
    assert run.returncode == 0, run.stderr.decode()
    assert "cpu:" in out and "sustainable" in out and "p99" in out and "passed through" in out
    assert "cuda: not measured" in out or "CUDAExecutionProvider" in out


def test_a_terminal_is_refused_as_standard_input_or_output(tmp_path):
    import pty

    main, terminal = pty.openpty()
    try:
        reading = cli("deblur", "-", tmp_path / "x.mkv", stdin=terminal)
        writing = subprocess.run([sys.executable, "-m", "strcnn_sdk.cli", "deblur", ROOT / "examples" / "sample.mp4",
                                  "-"], stdout=terminal, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(main)
        os.close(terminal)
    assert reading.returncode == 1 and b"standard input (-) is a terminal" in reading.stderr
    assert writing.returncode == 1 and b"standard output (-) is a terminal" in writing.stderr


def test_live_outputs_are_encoded_without_reordering(tmp_path, tiny_model):
    """x264 tuned for zero latency: every frame leaves the encoder as it comes (no B-frames, decode order is
    display order), unlike a file's output at the same preset."""
    def reordered(path: Path) -> int:
        with av.open(str(path)) as container:
            return sum(p.pts != p.dts for p in container.demux(video=0) if p.pts is not None)

    deblur_video("lavfi:testsrc2=size=96x64:rate=25", tmp_path / "live.mp4", model=tiny_model, frames=30)
    make_video(tmp_path / "file.mp4", frames=30, size=(64, 96))
    deblur_video(tmp_path / "file.mp4", tmp_path / "out.mp4", model=tiny_model)
    assert reordered(tmp_path / "live.mp4") == 0 < reordered(tmp_path / "out.mp4")
