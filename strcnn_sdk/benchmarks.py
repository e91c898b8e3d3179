"""What `strcnn bench` measures and prints: frames per second of the bare session and of the Deblurrer per model,
precision, provider and size, memory over a long stream, the video pipeline against its encoder, tiling's cost
in quality and memory, deblur-many's videos per hour, and live latency; and `strcnn info`'s first look at the
shipped models' speed."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import typer

from . import openvino_session as openvino
from .console import fail, load_model
from .deblurrer import Deblurrer
from .model import (Model, QualityWarning, UntrainedModelWarning, planned_model, shipped_default, shipped_model_path,
                    shipped_models)
from .providers import PROVIDER_NAMES, cuda_usable
from .system import median_seconds, rss_mib
from .video import Encoding, MediaError, Reader


def shipped_speeds(provider: str, threads: int | None, precision: str, opened: Model,
                   size: tuple[int, int] = (640, 480)) -> None:
    """A line per shipped model: the file that runs here with `provider` and `precision`, its frames per second
    at `size` on this machine (a warm-up and two runs: a first look; `strcnn bench` measures), its test-set gain
    and do-no-harm verdict, and its card. `opened`, the model `info` loaded, serves where it is that file, and is
    closed with the others."""
    width, height = size
    typer.echo(f"shipped models (--model NAME), frames a second at {width}x{height} on this machine:")
    for name, entry in shipped_models().items():
        same = opened.path == planned_model(name, provider, precision)[0]
        loaded = opened if same else load_model(name, provider, threads, precision, warn=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QualityWarning)  # timed, not used: its verdict is on this line
            fps = model_fps(loaded, height, width, 2)
        test = (loaded.meta.get("quality") or {}).get("test")
        quality = "quality not measured" if not test else (
            f"test set {test['gain_db']:+.3f} dB, do-no-harm {'holds' if test['no_harm'] else 'FAILS'}")
        roles = ", ".join(role for role, realtime in (("the default", False), ("--realtime on the CPU", True))
                          if shipped_default(realtime) == name)
        typer.echo(f"  {name}{f' ({roles})' if roles else ''}: {loaded.path.name}, width {loaded.meta['width']}, "
                   f"{fps:.2f} fps; {quality}; {entry['card']}")
        loaded.close()
    opened.close()


def _moving_clip(frames: int, width: int, height: int, seed: int = 1):
    """A synthetic clip of smooth random detail panning sideways, frame by frame (uint8 RGB)."""
    import cv2

    base = cv2.resize(np.random.default_rng(seed).integers(0, 256, (height // 8, width // 8, 3), np.uint8),
                      (width, height), interpolation=cv2.INTER_CUBIC)
    return (np.roll(base, 4 * i, axis=1) for i in range(frames))


def _synthetic_video(path: Path, frames: int, width: int, height: int, seed: int = 1) -> Path:
    """Write a `_moving_clip` as a 25 fps H.264 video (fast preset) for a benchmark; returns its path."""
    from .video import Colour, Source, open_atomic

    info = Source(path, width, height, frames, Fraction(25), Fraction(1, 25), Colour.default(height))
    with open_atomic(path, info, Encoding(preset="ultrafast"), width) as writer:
        for i, rgb in enumerate(_moving_clip(frames, width, height, seed)):
            writer.write(rgb, i)
    return path


def many(model: str | None, threads: int | None, videos: int, frames: int) -> None:
    """Videos per hour of `deblur-many` over the same short clips, on this machine and on a local Ray instance."""
    from .many import deblur_many

    width, height = 320, 240
    with tempfile.TemporaryDirectory() as tmp:
        clips = Path(tmp) / "clips"
        clips.mkdir()
        for i in range(videos):
            _synthetic_video(clips / f"clip{i}.mp4", frames, width, height, seed=i)
        arms = [("this machine, one video after another", None)]
        try:
            from .cluster import connect

            start = time.perf_counter()
            connect("local")
            typer.echo(f"Ray {__import__('ray').__version__}: local instance started in "
                       f"{time.perf_counter() - start:.1f} s (not counted below)")
            arms.append(("Ray local, one worker per core", "local"))
        except (ImportError, MediaError) as e:
            typer.echo(f"Ray local: not measured ({e})")
        rates = []
        for name, ray in arms:
            start = time.perf_counter()
            results = deblur_many([clips], Path(tmp) / f"out-{len(rates)}", model=model, threads=threads, ray=ray)
            seconds = time.perf_counter() - start
            done = sum(result.status == "done" for result in results)
            rates.append(done / seconds * 3600)
            typer.echo(f"deblur-many {videos} clips of {frames} frames at {width}x{height}, {name}: {done} done in "
                       f"{seconds:.1f} s = {rates[-1]:.0f} videos/hour")
        if len(rates) == 2:
            typer.echo(f"Ray local / this machine: {rates[1] / rates[0]:.2f}x")


def live(models: list[str], threads: int | None, sizes: list[tuple[int, int]], rate: float, frames: int,
         preset: str) -> None:
    """Live deblurring of FFmpeg's test source into a file, per provider, model and size: the sustainable frame
    rate (the source unpaced), then the latency of each frame with the source paced at `rate`, without and with
    --realtime. A frame's latency runs from when the paced source releases it to when its deblurred frame goes
    to the encoder, so it includes the model's one frame of look-ahead."""
    typer.echo(f"live: lavfi testsrc2, {frames} frames a figure, libx264 {preset} tuned for zero latency")
    for provider in ("cpu", "openvino", "cuda"):
        if provider == "cuda" and not cuda_usable():
            typer.echo("cuda: not measured (needs onnxruntime-gpu and an NVIDIA GPU with its driver; not usable here)")
            continue
        if provider == "openvino" and not openvino.installed():
            typer.echo(f"openvino: not measured (not installed: {openvino.EXTRA})")
            continue
        for model in models:
            loaded = load_model(model, provider, threads, "auto")
            _live_model(loaded, provider, sizes, rate, frames, preset)
            loaded.close()


def _live_model(loaded: Model, provider: str, sizes: list[tuple[int, int]], rate: float, frames: int,
                preset: str) -> None:
    """`live`'s figures of one model on one provider."""
    from .pipeline import deblur_video

    if loaded.provider != PROVIDER_NAMES[provider]:
        typer.echo(f"{provider}: not measured (ONNX Runtime fell back to {loaded.provider})")
        return
    for width, height in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            def run(count: int, paced: bool, realtime: bool = False) -> tuple[list[float], int]:
                """When each frame went to the encoder, in seconds from the start, and the frames passed
                through."""
                source = f"lavfi:testsrc2=size={width}x{height}:rate={rate}{',realtime' if paced else ''}"
                written, passed = [], [0]

                def progress(done: int, total: int | None, through: int = 0) -> None:
                    written.append(time.perf_counter() - start)
                    passed[0] = through

                start = time.perf_counter()
                deblur_video(source, Path(tmp) / "live.mkv", model=loaded, preset=preset, frames=count,
                             realtime=realtime, progress=progress, overwrite=True)
                return written, passed[0]

            run(3, paced=False)  # warm-up: the session's first runs are slower
            unpaced, _ = run(frames, paced=False)
            sustainable = (frames - 1) / (unpaced[-1] - unpaced[0])
            figures = []
            for realtime in (False, True):
                written, passed = run(frames, paced=True, realtime=realtime)
                latency = [t - i / rate for i, t in enumerate(written)]  # frame i is released at i / rate
                figures.append(f"{'with' if realtime else 'without'} --realtime latency median "
                               f"{1000 * float(np.median(latency)):.0f} ms, p99 "
                               f"{1000 * float(np.percentile(latency, 99)):.0f} ms"
                               + (f", {passed} of {frames} frames passed through" if realtime else ""))
            typer.echo(f"{loaded.path.name} on {loaded.provider} {width}x{height}: sustainable "
                       f"{sustainable:.2f} fps; source at {rate:g} fps: {'; '.join(figures)}")


def tiling(model: Model, frames: int) -> None:
    """PSNR between the tiled and the untiled output of one 1280x720 stream, frame by frame."""
    from .deblurrer import TILE

    untiled, tiled = Deblurrer(model, tile=None), Deblurrer(model, tile=TILE)
    errors, start = [], time.perf_counter()

    def compare(a: np.ndarray | None, b: np.ndarray | None) -> None:
        if a is not None:
            errors.append(np.mean((a.astype(np.float32) - b) ** 2))

    for frame in _moving_clip(frames, 1280, 720):
        compare(untiled.push(frame), tiled.push(frame))
    for a, b in zip(untiled.flush(), tiled.flush()):
        compare(a, b)
    psnr = [10 * np.log10(255 ** 2 / max(e, 1e-10)) for e in errors]
    typer.echo(f"tiling ({TILE} px tiles) against untiled, {model.path.name} ({model.meta['precision']}, "
               f"{'trained' if model.trained else 'random weights'}), {len(errors)} frames of 1280x720: PSNR "
               f"{10 * np.log10(255 ** 2 / max(np.mean(errors), 1e-10)):.2f} dB over the stream, worst frame "
               f"{min(psnr):.2f} dB, last frame {psnr[-1]:.2f} dB ({time.perf_counter() - start:.0f} s)")


def tiled_memory(model: str | None, threads: int | None) -> None:
    """Peak resident memory of a fresh process deblurring 3840x2160 frames with tiles, the fp32 model."""
    import subprocess

    code = ("import resource, sys, warnings; import numpy as np; from strcnn_sdk import Deblurrer, Model\n"
            "warnings.simplefilter('ignore')\n"
            "path, threads = sys.argv[1] or None, int(sys.argv[2]) or None\n"
            "d = Deblurrer(Model(path, providers='cpu', threads=threads, precision='fp32'))\n"
            "frame = np.random.default_rng(0).integers(0, 256, (2160, 3840, 3), np.uint8)\n"
            "[d.push(frame) for _ in range(4)]\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, len(d._tiling))")
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code, str(model or ""), str(threads or 0)], capture_output=True,
                         text=True)
    if run.returncode:
        raise fail(f"the 3840x2160 memory check failed: {run.stderr.strip().splitlines()[-1]}")
    peak, tiles = run.stdout.split()
    typer.echo(f"3840x2160 fp32, tiled automatically ({tiles} tiles), 4 frames: peak rss {float(peak):.0f} MiB "
               f"({(time.perf_counter() - start) / 4:.1f} s a frame)")


def rows(models: list[str], threads: int | None, providers: list[str], precisions: list[str],
         sizes: list[tuple[int, int]], runs: int, quiet: bool = False) -> tuple[str, str, str]:
    """One row per model, configuration and size: the bare session's and the Deblurrer's frames per second. A
    configuration that loads what an earlier one loaded (auto is int8 on such a CPU) is measured once; each
    session is released when its rows are done, so that the peak memory is about one session's. Says which row
    runs and, after each, about how long the rest will take (time grows with pixels); then, with several models,
    how each compares with the first in the same precision, provider and size, and how OpenVINO compares with
    ONNX Runtime on the CPU for the same model, precision and size. Returns the first (model, provider,
    precision), which the later checks use."""
    rng = np.random.default_rng(0)
    configs, measured = [], {}
    for model, provider, precision in ((m, p, q) for m in models for p in providers for q in precisions):
        try:
            key = planned_model(model, provider, precision)
        except (ValueError, TypeError) as e:
            raise fail(str(e)) from None
        said = f"{model} in {precision} on {provider}"
        if key in measured:
            typer.echo(f"{said} is {measured[key]} here (the same model file on the same provider): measured once, "
                       f"as {measured[key]}")
        else:
            measured[key] = said
            configs.append((model, provider, precision))
    total, row, start, done_pixels = len(configs) * len(sizes), 0, time.perf_counter(), 0
    all_pixels = len(configs) * sum(w * h for w, h in sizes)
    rates = {}  # (model, provider, loaded precision, size) -> (model fps, Deblurrer fps)
    for model, provider, precision in configs:
        loaded = load_model(model, provider, threads, precision)
        what = f"{loaded.path.name} ({precision}) on {loaded.provider}"
        for width, height in sizes:
            row += 1
            if not quiet:
                typer.echo(f"row {row}/{total}: {what} {width}x{height}")
            bare = 1 / model_fps(loaded, height, width, runs)
            frame = rng.integers(0, 256, (height, width, 3), np.uint8)
            deblurrer = Deblurrer(loaded)
            streamed = median_seconds(lambda: deblurrer.push(frame), runs)
            rates[model, loaded.provider, loaded.meta["precision"], (width, height)] = (1 / bare, 1 / streamed)
            done_pixels += width * height
            left = all_pixels - done_pixels
            per_pixel = (time.perf_counter() - start) / done_pixels
            overhead = 100 * (streamed / bare - 1)  # below 1% (or negative) the two medians differ by noise alone
            cost = f"overhead {overhead:.1f}% of the bare session's time" if overhead >= 1 else \
                "overhead under 1% of the bare session's time, within the timing noise"
            typer.echo(f"{what} {width}x{height}: model {1 / bare:.2f} fps, Deblurrer.push {1 / streamed:.2f} fps "
                       f"({cost}), rss {rss_mib():.0f} MiB"
                       + (f"; about {per_pixel * left:.0f} s left" if left and not quiet else ""))
        loaded.close()
    for (model, provider, precision, (width, height)), (bare, streamed) in rates.items():
        reference = rates.get((models[0], provider, precision, (width, height)))
        if model != models[0] and reference:
            typer.echo(f"{model} against {models[0]}, {precision} on {provider} at {width}x{height}: "
                       f"{bare / reference[0]:.2f}x the frames a second (model), {streamed / reference[1]:.2f}x "
                       "(Deblurrer.push)")
        onnxruntime = rates.get((model, "CPUExecutionProvider", precision, (width, height)))
        if provider == openvino.OPENVINO and onnxruntime:
            typer.echo(f"OpenVINO against ONNX Runtime on the CPU, {model} in {precision} at {width}x{height}: "
                       f"{bare / onnxruntime[0]:.2f}x the frames a second (model), {streamed / onnxruntime[1]:.2f}x "
                       "(Deblurrer.push)")
    return configs[0]


def model_fps(model: Model, height: int, width: int, runs: int) -> float:
    """Frames per second of the bare session (Model.run) at a frame size, median of `runs` after a warm-up; its
    outputs written into buffers kept from step to step, as a stream runs it (fresh ones every step would time
    the allocator too)."""
    planar = np.random.default_rng(0).random((1, 3 * model.window, *model.padded_size(height, width)), np.float32)
    state, after = (model.zero_state(1, *planar.shape[2:]) for _ in range(2))
    sharp = np.empty((1, 3, *planar.shape[2:]), np.float32)
    return 1 / median_seconds(lambda: model.run(planar, state, sharp, after), runs)


def memory(model: Model, size: tuple[int, int], steps: int) -> None:
    """Resident memory over a long stream: after warm-up, at the start and at the end."""
    width, height = size
    frames = np.random.default_rng(2).integers(0, 256, (8, height, width, 3), np.uint8)
    deblurrer = Deblurrer(model)
    for frame in frames:
        deblurrer.push(frame)
    start = rss_mib()
    for i in range(steps):
        deblurrer.push(frames[i % len(frames)])
    typer.echo(f"stream of {steps} steps at {width}x{height} ({model.meta['precision']}): rss {start:.1f} MiB after "
               f"warm-up, {rss_mib():.1f} MiB at the end ({rss_mib() - start:+.1f} MiB)")


def pipeline(source: Path | None, frames: int, preset: str, model: Model, model_frames: int) -> None:
    """The pipeline with an identity model against the encoder alone on the same frames (a video file's, or a
    synthetic 1280x720 clip's), and the pipeline with the real model against the model alone."""
    import av

    from .pipeline import deblur_video
    from .video import Frame, Source, open_atomic

    encoding = Encoding(preset=preset)

    def encode(path: Path, info: Source, frames: list[Frame], settings: Encoding) -> float:
        """Write frames as a video; returns frames per second."""
        start = time.perf_counter()
        with open_atomic(path, info, settings, info.width) as writer:
            for frame in frames:
                writer.write(frame.rgb, frame.pts)
        return len(frames) / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as tmp:
        if source is None:
            source = _synthetic_video(Path(tmp) / "source.mp4", frames, 1280, 720)
        with Reader(source) as reader:
            clip = [item for item in reader if isinstance(item, Frame)]
            info = dataclasses.replace(reader.source, copy_streams=[])  # video only, as the encoder alone
        encoder = encode(Path(tmp) / "encoder.mp4", info, clip, encoding)

        def through(path: Path, model: Model) -> float:
            start = time.perf_counter()
            count = deblur_video(path, Path(tmp) / "out.mp4", model=model, preset=preset)
            (Path(tmp) / "out.mp4").unlink()
            return count / (time.perf_counter() - start)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedModelWarning)
            identity = Model(shipped_model_path().with_name("identity.onnx"), providers="cpu")
        whole = through(source, identity)
        size = f"{info.width}x{info.height}"
        typer.echo(f"pipeline {size} {source.name if source.parent != Path(tmp) else 'synthetic'}, libx264 {preset} "
                   f"(PyAV {av.__version__}): encoder alone {encoder:.1f} fps, decode + identity model + encode "
                   f"{whole:.1f} fps ({100 * whole / encoder:.0f}% of the encoder)")
        if model_frames:
            short = Path(tmp) / "short.mp4"
            encode(short, info, clip[:model_frames], Encoding(preset="ultrafast"))
            alone = model_fps(model, info.height, info.width, 3)
            real = through(short, model)
            typer.echo(f"pipeline {size} with the model ({model.meta['precision']}): model alone {alone:.3f} fps, "
                       f"decode + model + encode {real:.3f} fps ({100 * real / alone:.0f}% of the model alone)")
