"""The `strcnn` command line: deblur videos and image sequences, and inspect, benchmark and evaluate models."""

from __future__ import annotations

import dataclasses
import json
import platform
import signal
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Iterator, Optional

import numpy as np
import onnxruntime as ort
import typer

from . import __version__
from .deblurrer import Deblurrer
from .model import (_PROVIDER_NAMES, Model, QualityWarning, UntrainedModelWarning, cuda_usable, default_model,
                    nvidia_driver_present, planned_model, shipped_default, shipped_model_path, shipped_models,
                    shipped_name, show_onnxruntime_log)
from .jobs import STATUSES
from .metrics import describe_quality
from .settings import Settings
from .system import cpu_flags, median_seconds, rss_mib, write_atomic
from .video import Encoding, MediaError, MediaWarning, OutputClosed, Reader, is_video_path

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Online video deblurring (STRCNN+DTB) over ONNX Runtime.")

ModelOption = Annotated[Optional[str], typer.Option("--model", "-m", metavar="NAME|FILE",
                                                    help="a shipped model, fast (width 32) or full (width 64), "
                                                         "or an .onnx with its .json sidecar (default: the one "
                                                         "weights/models.json names, `strcnn info` says which)")]
ProviderOption = Annotated[str, typer.Option(metavar="NAME", help="auto (CUDA where usable, else CPU), cuda or cpu")]
ThreadsOption = Annotated[Optional[int], typer.Option(metavar="N", help="ONNX Runtime threads (default: one per core)")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="also show ONNX Runtime's own log (e.g. why "
                                                                   "CUDA libraries did not load)")]
PrecisionOption = Annotated[str, typer.Option(metavar="NAME",
                                              help="shipped variant: auto (int8 on CPUs with VNNI/AMX, fp16 on "
                                                    "CUDA, else fp32), fp32, int8 or fp16")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    typer.echo(f"strcnn: error: {message}", err=True)
    return typer.Exit(code)


def load_model(model: str | None, provider: str, threads: int | None, precision: str, warn: bool = True) -> Model:
    """Load a model for a command, turning a bad file or option into a one-line error, and printing the load's
    warnings (unless `warn` is False: a model loaded again). fp16 is a GPU format: the shipped fp16 variant on the
    CPU provider is refused (it runs slower than fp32 there); an fp16 file given with --model still runs."""
    def fp16_on_cpu() -> typer.Exit:
        return fail("--precision fp16 is for GPUs: on the CPU it runs slower than fp32; use --precision auto or fp32")

    shipped = shipped_name(model) is not None
    if shipped and precision == "fp16":
        try:
            first = planned_model(model, provider, precision)[1]
        except (ValueError, TypeError) as e:
            raise fail(str(e)) from None
        if first == "CPUExecutionProvider":
            raise fp16_on_cpu()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = Model(model, providers=provider, threads=threads, precision=precision)
        except (FileNotFoundError, ValueError, TypeError) as e:
            raise fail(str(e)) from None
    for w in caught if warn else ():
        typer.echo(f"strcnn: warning: {w.message}", err=True)
    if shipped and precision == "fp16" and loaded.provider == "CPUExecutionProvider":  # CUDA fell back
        raise fp16_on_cpu()
    return loaded


CodecOption = Annotated[Optional[str], typer.Option(metavar="NAME",
                                                    help="video encoder (default: libx264; libvpx-vp9 for .webm)")]
CrfOption = Annotated[int, typer.Option(metavar="N", help="quality: lower is better and larger")]
PresetOption = Annotated[str, typer.Option(metavar="NAME",
                                           help="encoder speed preset (x264's names; SVT-AV1 also takes 0-13)")]
PixFmtOption = Annotated[str, typer.Option(metavar="FORMAT", help="pixel format; yuv420p plays everywhere")]
AudioOption = Annotated[str, typer.Option(metavar="MODE",
                                          help="copy (where the output holds the codec, else encode), encode or none")]
SideBySideOption = Annotated[bool, typer.Option("--side-by-side", help="write input and output side by side, labelled")]
TileOption = Annotated[str, typer.Option(metavar="PIXELS",
                                         help="tile side in pixels, to bound memory; auto: tiles of 512 above 1.5 "
                                              "megapixels; off")]
StrengthOption = Annotated[float, typer.Option(metavar="S", min=0.0, max=1.0,
                                               help="how much of the model's correction to apply: 0 leaves the "
                                                    "input as it is, 1 is the model's output")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="no progress")]


def _tile(tile: str, model: Model | None = None) -> int | str | None:
    """--tile as the Deblurrer takes it, checked in the CLI's words (against `model`'s smallest tile when given)."""
    try:
        side = None if tile == "off" else "auto" if tile == "auto" else int(tile)
    except ValueError:
        raise fail(f"--tile must be auto, off or a side in pixels, got {tile!r}") from None
    if model is not None and isinstance(side, int) and side < model.min_tile:
        raise fail(f"--tile must be auto, off or a side of at least {model.min_tile} pixels, got {tile!r}")
    return side


@app.command(short_help="Deblur a video, a live stream or an image sequence.")
def deblur(
    source: Annotated[str, typer.Argument(metavar="SOURCE",
                                          help="a video file, - (standard input), a URL (http, rtsp, rtmp, srt, udp), "
                                               "a device as FORMAT:SPEC (v4l2:/dev/video0, lavfi:testsrc2), a folder "
                                               "of images, or a quoted glob")],
    output: Annotated[str, typer.Argument(metavar="OUTPUT",
                                          help="a video file (.mp4, .mkv, .webm, ...), a folder for PNGs, or - "
                                               "(standard output)")],
    model: ModelOption = None,
    provider: ProviderOption = "auto",
    threads: ThreadsOption = None,
    precision: PrecisionOption = "auto",
    codec: CodecOption = None,
    crf: CrfOption = 18,
    preset: PresetOption = "medium",
    pix_fmt: PixFmtOption = "yuv420p",
    fps: Annotated[str, typer.Option(metavar="RATE",
                                     help="frame rate of an image-sequence input, e.g. 25 or 30000/1001")] = "25",
    audio: AudioOption = "copy",
    side_by_side: SideBySideOption = False,
    tile: TileOption = "auto",
    strength: StrengthOption = 1.0,
    input_format: Annotated[Optional[str], typer.Option(metavar="NAME",
                                                        help="the input's FFmpeg format where it cannot be guessed, "
                                                             "e.g. mpegts or yuv4mpegpipe on a pipe")] = None,
    input_option: Annotated[Optional[list[str]], typer.Option(metavar="KEY=VALUE",
                                                              help="KEY=VALUE for the input's demuxer, e.g. "
                                                                   "rtsp_transport=tcp or video_size=1280x720; "
                                                                   "repeatable")] = None,
    format: Annotated[Optional[str], typer.Option("--format", metavar="NAME",
                                                  help="the output's container (default: from the file's name; "
                                                       "matroska on standard output, where mp4 is fragmented MP4)")
                      ] = None,
    frames: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="stop after this many frames")] = None,
    duration: Annotated[Optional[float], typer.Option(metavar="SECONDS", min=0,
                                                      help="stop after this many seconds of input")] = None,
    realtime: Annotated[bool, typer.Option("--realtime", help="keep up with a live input: frames that arrive while "
                                                "the model is busy are passed through untouched (counted); on a "
                                                "CPU the fast model runs unless --model names one")] = False,
    reconnect: Annotated[float, typer.Option(metavar="SECONDS", min=0,
                                             help="seconds to keep reopening a network input that drops "
                                                  "(0: give up at once)")] = 30.0,
    force: Annotated[bool, typer.Option("--force", "-f", help="overwrite an existing output")] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Deblur a video, a live stream or an image sequence into a video, a stream or a folder of PNGs.

    A live input stopped with Ctrl-C keeps what was deblurred until then; an interrupted file leaves nothing."""
    from .pipeline import check_run, deblur_video

    show_onnxruntime_log(verbose)
    stopped, passed = _catch_signals(), [0]
    tiles, options = _tile(tile), _key_values(input_option or [])
    if source == "-" and sys.stdin.isatty():
        raise fail("standard input (-) is a terminal; pipe a video into it, e.g. ffmpeg -i in.mp4 -f matroska - | "
                   "strcnn deblur - out.mp4")
    if output == "-" and sys.stdout.isatty():
        raise fail("standard output (-) is a terminal; pipe it into a player or a file, e.g. | ffplay -")
    settings = Settings(input_format=input_format, input_options=options, frames=frames, duration=duration,
                        realtime=realtime, reconnect=reconnect, fps=fps, tile=tiles, strength=strength, codec=codec,
                        crf=crf, preset=preset, pix_fmt=pix_fmt, audio=audio, side_by_side=side_by_side,
                        format=format, overwrite=force)
    try:
        check_run(source, output, settings)  # before the model loads
        if model is None and realtime:
            model = _realtime_model(provider, quiet)
        loaded = load_model(model, provider, threads, precision)
        _tile(tile, loaded)
        with _warnings_as_lines(quiet), _progress(quiet) as bar:
            def progress(done: int, total: int | None, through: int | None = None) -> None:
                passed[0] = through or 0
                bar(done, total, "" if through is None else f"{through} passed through")

            count = deblur_video(source, output, model=loaded, settings=settings, progress=progress)
    except OutputClosed as e:  # e.g. the player at the end of a pipe was quit: an ending, not a failure
        typer.echo(f"strcnn: {e}; stopped", err=True)
        return
    except MediaError as e:
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        raise fail("interrupted; no output written", 130) from None
    if not quiet:
        untouched = f", {passed[0]} passed through untouched" if realtime else ""
        frames_written = f"{count} frame{'s' if count != 1 else ''}"
        where = ("to standard output" if output == "-" else f"to {output}" if is_video_path(Path(output)) else
                 f"as PNG images into the folder {output}")
        typer.echo(f"{'stopped; ' if stopped else ''}wrote {frames_written}{untouched} {where} ({loaded.path.name} "
                   f"on {loaded.provider}, {loaded.precision_reason})", err=True)


def _realtime_model(provider: str, quiet: bool) -> str:
    """The shipped model for --realtime when none is named (`default_model`), saying so when it is not the
    default."""
    try:
        model = default_model(provider, realtime=True)
    except (ValueError, TypeError) as e:
        raise fail(str(e)) from None
    default = shipped_default()
    if model != default and not quiet:
        typer.echo(f"strcnn: running the {model} model: --realtime on the CPU, where the {default} model keeps up "
                   f"with a fraction of a camera's frames (--model {default} runs it anyway)", err=True)
    return model


def _key_values(pairs: list[str]) -> dict[str, str]:
    """KEY=VALUE options as a dict, refusing anything else."""
    for pair in pairs:
        if "=" not in pair or pair.startswith("="):
            raise fail(f"--input-option must look like KEY=VALUE (e.g. rtsp_transport=tcp), got {pair!r}")
    return dict(pair.split("=", 1) for pair in pairs)


def _catch_signals() -> list[int]:
    """Make Ctrl-C and a kill (SIGTERM) raise KeyboardInterrupt, so that both clean up alike (a background job
    started with Ctrl-C ignored keeps ignoring it); returns the list that the signals received are added to."""
    received: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, interrupt)
    return received


@contextmanager
def _warnings_as_lines(quiet: bool = False) -> Iterator[None]:
    """Show warnings (a stream left out, a re-encoded track, HDR input, the model's QualityWarning when it first
    runs) as one `strcnn: warning:` line each; `quiet` (-q) silences the QualityWarning, as Python's warning
    filters (PYTHONWARNINGS) do."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        typer.echo(f"strcnn: warning: {message}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", MediaWarning)
        if quiet:
            warnings.simplefilter("ignore", QualityWarning)
        warnings.showwarning = show
        yield


class _progress:
    """Progress on stderr: a bar with frames, fps and ETA on a terminal, else a line every few seconds (for logs
    and pipes); nothing when quiet."""

    EVERY_S = 5.0

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        console = Console(stderr=True)
        self.lines = not quiet and not console.is_terminal
        self.bar = Progress(TextColumn("deblurring"), BarColumn(), TextColumn("{task.fields[count]} frames"),
                            TextColumn("{task.fields[fps]} fps"), TextColumn("{task.fields[note]}"),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                            disable=quiet or self.lines)
        self.task = self.bar.add_task("deblur", total=None, fps="-", note="", count="0")
        self.start = self.last_line = time.perf_counter()

    def __enter__(self):
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def __call__(self, done: int, total: int | None, note: str = "", estimate: bool = False) -> None:
        """`done` of `total` frames (None: unknown; `estimate`: shown as ~total) written; `note` is shown beside,
        e.g. the videos done."""
        now = time.perf_counter()
        fps = done / max(now - self.start, 1e-9)
        count = f"{done}/{'~' if estimate else ''}{total}" if total else f"{done}"
        self.bar.update(self.task, completed=done, total=total, fps=f"{fps:.1f}", note=note, count=count)
        if self.lines and now - self.last_line >= self.EVERY_S:
            self.last_line = now
            eta = f", ETA {'~' if estimate else ''}{(total - done) / fps:.0f} s" if total and fps > 0 else ""
            typer.echo(f"deblurring: {count} frames, {fps:.2f} fps{eta}{f', {note}' if note else ''}", err=True)


@app.command("deblur-many", short_help="Deblur many videos into one folder, as a job that resumes.", help=(
    "Deblur many videos into one folder: keeps going past a damaged file, and skips the outputs already made with "
    "the same model and options, so an interrupted job can simply be run again.\n\n"
    "Unlike `strcnn deblur`, where a folder is one image sequence, a folder here holds many videos: each one found "
    "below it keeps its path below --out. A file given directly goes to --out/NAME. The exit status is 0 only if "
    "no video failed."))
def deblur_many(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...",
                                                help="video files, folders (searched recursively for videos), quoted "
                                                     "globs, or manifests (.txt: one path a line)",
                                                show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FOLDER",
                                      help="the folder for the outputs (made if missing)",
                                      show_default=False)],
    suffix: Annotated[str, typer.Option(metavar="TEXT",
                                        help="added to each output's name: clip.mp4 -> clip_sharp.mp4 with _sharp")
                      ] = "",
    ext: Annotated[Optional[str], typer.Option(metavar="EXT",
                                               help="the outputs' container, e.g. mkv (default: the input's for mp4, "
                                                    "mov, mkv, webm and avi, else mkv)")] = None,
    model: ModelOption = None,
    provider: ProviderOption = "auto",
    threads: Annotated[Optional[int], typer.Option(metavar="N",
                                                   help="ONNX Runtime threads (default: one per core; on Ray, 1 "
                                                        "per worker, and each worker takes as many CPUs)")] = None,
    precision: PrecisionOption = "auto",
    codec: CodecOption = None,
    crf: CrfOption = 18,
    preset: PresetOption = "medium",
    pix_fmt: PixFmtOption = "yuv420p",
    audio: AudioOption = "copy",
    side_by_side: SideBySideOption = False,
    tile: TileOption = "auto",
    strength: StrengthOption = 1.0,
    jobs: Annotated[int, typer.Option(metavar="N", min=1,
                                      help="videos deblurred side by side on this machine, sharing one "
                                           "model")] = 1,
    ray: Annotated[Optional[str], typer.Option(metavar="ADDRESS",
                                               help="run on Ray Data: local (an instance on this machine), auto "
                                                    "(the cluster this machine is in) or a cluster's address")
                   ] = None,
    workers: Annotated[Optional[int], typer.Option(metavar="N", min=1,
                                                   help="Ray workers, each with its own model (default: "
                                                        "as many as the cluster's CPUs or GPUs hold)")] = None,
    gpus_per_worker: Annotated[float, typer.Option(metavar="GPUS", min=0,
                                                   help="GPUs each Ray worker takes (0.5: two per GPU)")
                               ] = 0.0,
    force: Annotated[bool, typer.Option("--force", "-f", help="deblur every video again, replacing its output")
                     ] = False,
    report: Annotated[Optional[Path], typer.Option(metavar="FILE",
                                                   help="also write the summary as JSON to this file")] = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    from .many import check_job, deblur_many as run

    show_onnxruntime_log(verbose)
    _catch_signals()
    settings = Settings(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, audio=audio, side_by_side=side_by_side,
                        tile=_tile(tile), strength=strength)
    try:
        check_job(inputs, out, suffix=suffix, ext=ext, jobs=jobs, ray=ray, workers=workers,
                  gpus_per_worker=gpus_per_worker, settings=settings)  # before the model loads
        with _warnings_as_lines(quiet), _progress(quiet) as bar:
            loaded = model if ray else load_model(model, provider, threads, precision)
            if not ray:
                _tile(tile, loaded)

            def progress(job) -> None:
                bar(job.frames_done, job.frames or None, f"{job.videos_done}/{job.videos} videos",
                    estimate=not job.frames_exact)

            start = time.perf_counter()
            results = run(inputs, out, model=loaded, providers=provider, threads=threads, precision=precision,
                          suffix=suffix, ext=ext, force=force, jobs=jobs, ray=ray, workers=workers,
                          gpus_per_worker=gpus_per_worker, progress=progress, settings=settings)
    except MediaError as e:
        raise fail(str(e)) from None
    for result in results:
        for warning in result.warnings:
            typer.echo(f"strcnn: warning: {result.source}: {warning}", err=True)
    counts = {status: sum(result.status == status for result in results) for status in STATUSES}
    _summary(results, counts, time.perf_counter() - start)
    if report is not None:
        _write_report(report, results, counts)
    if any(result.status == "cancelled" for result in results):
        raise fail("interrupted; the videos done are kept, run the same command again to go on", 130)
    if any(result.status == "failed" for result in results):
        raise typer.Exit(1)


def _summary(results: list, counts: dict[str, int], seconds: float) -> None:
    """The job's table on standard output: each video's end, frames, time and speed, and the totals over the job's
    `seconds`."""
    from rich.console import Console
    from rich.table import Table

    table = Table("input", "result", "frames", "seconds", "fps", "note", box=None, pad_edge=False)
    for result in results:
        table.add_row(result.source, result.status, "-" if result.frames is None else str(result.frames),
                      f"{result.seconds:.1f}", "-" if result.fps is None else f"{result.fps:.2f}", result.note)
    Console(width=max(Console().width, 160), soft_wrap=True).print(table)
    frames = sum(result.frames or 0 for result in results)
    typer.echo(", ".join(f"{n} {status}" for status, n in counts.items() if n) +
               f"; {frames} frames deblurred in {seconds:.1f} s ({frames / max(seconds, 1e-9):.2f} fps)")


def _write_report(path: Path, results: list, counts: dict[str, int]) -> None:
    """The summary as JSON, written atomically: one entry per video and the counts of each end."""
    videos = [dict(dataclasses.asdict(result), fps=result.fps) for result in results]
    try:
        write_atomic(path, (json.dumps({"videos": videos, "counts": counts}, indent=2) + "\n").encode())
    except OSError as e:
        raise fail(f"{path}: the report could not be written ({e.strerror or e})") from None


@app.command(short_help="Versions, CPU, providers, the model's facts and the shipped models.")
def info(model: ModelOption = None, provider: ProviderOption = "auto", threads: ThreadsOption = None,
         precision: PrecisionOption = "auto", verbose: VerboseOption = False) -> None:
    """Print versions, the CPU, the providers, the model's facts, and the shipped models side by side: the file
    each runs here, its speed on this machine and its quality."""
    show_onnxruntime_log(verbose)
    loaded = load_model(model, provider, threads, precision)
    meta = loaded.meta
    typer.echo(f"strcnn-sdk {__version__}, onnxruntime {ort.__version__}, Python {platform.python_version()}")
    typer.echo(f"cpu: {cpu_flags()}")
    typer.echo(f"providers available: {', '.join(ort.get_available_providers())}; "
               f"NVIDIA driver: {'yes' if nvidia_driver_present() else 'no'}")
    typer.echo(f"provider in use: {loaded.provider}; threads: {threads or 'ONNX Runtime default (one per core)'}")
    typer.echo(f"precision in use: {loaded.precision_reason}")
    typer.echo(f"model: {loaded.path}")
    typer.echo(f"  {meta.get('name')}: variant {meta.get('variant')}, m {meta['m']}, width {meta['width']}, "
               f"precision {meta.get('precision')}, opset {meta.get('opset')}")
    if loaded.trained:
        training, quality = meta.get("training") or {}, meta.get("quality") or {}
        card = f" (see {shipped_models()[name]['card']})" if (name := shipped_name(model)) else ""
        typer.echo(f"  trained: {training.get('steps', '?')} steps, {training.get('hours', '?')} h on "
                   f"{training.get('hardware', '?')}")
        typer.echo(f"  PSNR gain over the blurry input, measured in {meta['precision']} (the precision that runs): "
                   f"{describe_quality(quality)}{card}")
    else:
        typer.echo("  trained: NO (random weights: runs, but does not deblur)")
    if "quality_vs_fp32" in meta:
        vs = meta["quality_vs_fp32"]
        typer.echo(f"  {meta['precision']} against fp32: test gain {vs['test_gain_db']:+.3f} dB against "
                   f"{vs['fp32_test_gain_db']:+.3f} dB")
    _shipped_models(provider, threads, precision, loaded)


def _shipped_models(provider: str, threads: int | None, precision: str, opened: Model,
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
            fps = _model_fps(loaded, height, width, 2)
        test = (loaded.meta.get("quality") or {}).get("test")
        quality = "quality not measured" if not test else (
            f"test set {test['gain_db']:+.3f} dB, do-no-harm {'holds' if test['no_harm'] else 'FAILS'}")
        roles = ", ".join(role for role, realtime in (("the default", False), ("--realtime on the CPU", True))
                          if shipped_default(realtime) == name)
        typer.echo(f"  {name}{f' ({roles})' if roles else ''}: {loaded.path.name}, width {loaded.meta['width']}, "
                   f"{fps:.2f} fps; {quality}; {entry['card']}")
        loaded.close()
    opened.close()


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
        if width < 1 or height < 1:
            raise ValueError
    except ValueError:
        raise fail(f"size must look like 640x480, got {text!r}") from None
    return width, height


@app.command(short_help="Frames per second: the model, the Deblurrer, the video pipeline.")
def bench(
    sizes: Annotated[str, typer.Option(metavar="WxH,...", help="comma-separated WxH")] = "640x480,1280x720",
    providers: Annotated[str, typer.Option(metavar="NAME,...", help="comma-separated providers")] = "auto",
    precisions: Annotated[str, typer.Option(metavar="NAME,...",
                                            help="comma-separated shipped precisions")] = "auto,fp32,int8",
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", metavar="NAME|FILE",
                                                       help="a model to measure: full, fast or an .onnx with its "
                                                            ".json sidecar; repeatable (default: every shipped "
                                                            "model, side by side)")] = None,
    threads: ThreadsOption = None,
    runs: Annotated[int, typer.Option(metavar="N", min=1, help="timed runs per figure (median reported)")] = 5,
    stream_steps: Annotated[int, typer.Option(metavar="N", min=0,
                                              help="steps of the memory check at --stream-size")] = 1000,
    stream_size: Annotated[str, typer.Option(metavar="WxH", help="frame size of the memory check")] = "160x120",
    pipeline: Annotated[bool, typer.Option(help="also measure the video pipeline with an identity model")] = True,
    pipeline_frames: Annotated[int, typer.Option(metavar="N", min=10, help="frames of the pipeline test clip")] = 120,
    model_frames: Annotated[int, typer.Option(metavar="N", min=0,
                                              help="frames of the pipeline test with the real model")] = 6,
    preset: Annotated[str, typer.Option(metavar="NAME", help="encoder preset of the pipeline test")] = "medium",
    pipeline_source: Annotated[Optional[Path], typer.Option(metavar="FILE",
                                                            help="a video for the pipeline test (default: a "
                                                                 "synthetic 1280x720 clip)")] = None,
    tiling: Annotated[bool, typer.Option("--tiling", help="instead: tiled against untiled output over a 1280x720 "
                                              "stream, and the peak memory of a tiled 3840x2160 stream")] = False,
    tiling_frames: Annotated[int, typer.Option(metavar="N", min=3, help="frames of the tiling comparison")] = 300,
    many: Annotated[int, typer.Option(metavar="N", min=0,
                                      help="instead: videos per hour of deblur-many over this many short 320x240 "
                                           "clips, one after another and on a local Ray instance")] = 0,
    many_frames: Annotated[int, typer.Option(metavar="N", min=3, help="frames of each clip of --many")] = 20,
    live: Annotated[bool, typer.Option("--live", help="instead: the end-to-end latency and the sustainable frame rate "
                                            "of live deblurring at --sizes, on the CPU and on CUDA where usable")
                    ] = False,
    live_rate: Annotated[float, typer.Option(metavar="FPS", min=1,
                                             help="frame rate of the live source of --live")] = 25.0,
    live_frames: Annotated[int, typer.Option(metavar="N", min=5, help="frames of each --live measurement")] = 50,
    verbose: VerboseOption = False,
) -> None:
    """Frames per second of the model alone and through the Deblurrer, and of the video pipeline."""
    show_onnxruntime_log(verbose)
    typer.echo(f"cpu: {cpu_flags()}; onnxruntime {ort.__version__}; rss {rss_mib():.0f} MiB")
    models = model or list(shipped_models())
    with _warnings_as_lines():  # a model's QualityWarning, when it first runs, as one line
        if tiling:
            first_precision = precisions.split(",")[0]
            _bench_tiling(load_model(models[0], providers.split(",")[0], threads, first_precision), tiling_frames)
            _bench_tiled_memory(models[0], threads)
            return
        if many:
            _bench_many(models[0], threads, many, many_frames)
            return
        if live:
            _bench_live(models, threads, [_parse_size(size) for size in sizes.split(",")], live_rate, live_frames,
                        preset)
            return
        first_model, provider, precision = _bench_rows(models, threads, providers.split(","), precisions.split(","),
                                                       [_parse_size(size) for size in sizes.split(",")], runs)
        if not (stream_steps or pipeline):
            return
        first = load_model(first_model, provider, threads, precision, warn=False)  # its warnings were printed above
        if stream_steps:
            _bench_memory(first, _parse_size(stream_size), stream_steps)
        if pipeline:
            _bench_pipeline(pipeline_source, pipeline_frames, preset, first, model_frames)


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


def _bench_many(model: str | None, threads: int | None, videos: int, frames: int) -> None:
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


def _bench_live(models: list[str], threads: int | None, sizes: list[tuple[int, int]], rate: float, frames: int,
                preset: str) -> None:
    """Live deblurring of FFmpeg's test source into a file, per provider, model and size: the sustainable frame
    rate (the source unpaced), then the latency of each frame with the source paced at `rate`, without and with
    --realtime. A frame's latency runs from when the paced source releases it to when its deblurred frame goes
    to the encoder, so it includes the model's one frame of look-ahead."""
    typer.echo(f"live: lavfi testsrc2, {frames} frames a figure, libx264 {preset} tuned for zero latency")
    for provider in ("cpu", "cuda"):
        if provider == "cuda" and not cuda_usable():
            typer.echo("cuda: not measured (needs onnxruntime-gpu and an NVIDIA GPU with its driver; not usable here)")
            continue
        for model in models:
            loaded = load_model(model, provider, threads, "auto")
            _bench_live_model(loaded, provider, sizes, rate, frames, preset)
            loaded.close()


def _bench_live_model(loaded: Model, provider: str, sizes: list[tuple[int, int]], rate: float, frames: int,
                      preset: str) -> None:
    """`_bench_live`'s figures of one model on one provider."""
    from .pipeline import deblur_video

    if loaded.provider != _PROVIDER_NAMES[provider]:
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


def _bench_tiling(model: Model, frames: int) -> None:
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


def _bench_tiled_memory(model: str | None, threads: int | None) -> None:
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


def _bench_rows(models: list[str], threads: int | None, providers: list[str], precisions: list[str],
                sizes: list[tuple[int, int]], runs: int) -> tuple[str, str, str]:
    """One row per model, configuration and size: the bare session's and the Deblurrer's frames per second. A
    configuration that loads what an earlier one loaded (auto is int8 on such a CPU) is measured once; each
    session is released when its rows are done, so that the peak memory is about one session's. Says which row
    runs and, after each, about how long the rest will take (time grows with pixels); then, with several models,
    how each compares with the first in the same precision, provider and size. Returns the first (model,
    provider, precision), which the later checks use."""
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
            typer.echo(f"row {row}/{total}: {what} {width}x{height}")
            bare = 1 / _model_fps(loaded, height, width, runs)
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
                       + (f"; about {per_pixel * left:.0f} s left" if left else ""))
        loaded.close()
    for (model, provider, precision, (width, height)), (bare, streamed) in rates.items():
        reference = rates.get((models[0], provider, precision, (width, height)))
        if model != models[0] and reference:
            typer.echo(f"{model} against {models[0]}, {precision} on {provider} at {width}x{height}: "
                       f"{bare / reference[0]:.2f}x the frames a second (model), {streamed / reference[1]:.2f}x "
                       "(Deblurrer.push)")
    return configs[0]


def _model_fps(model: Model, height: int, width: int, runs: int) -> float:
    """Frames per second of the bare session (Model.run) at a frame size, median of `runs` after a warm-up."""
    planar = np.random.default_rng(0).random((1, 3 * model.window, *model.padded_size(height, width)), np.float32)
    state = model.zero_state(1, *planar.shape[2:])
    return 1 / median_seconds(lambda: model.run(planar, state), runs)


def _bench_memory(model: Model, size: tuple[int, int], steps: int) -> None:
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


def _bench_pipeline(source: Path | None, frames: int, preset: str, model: Model, model_frames: int) -> None:
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
            alone = _model_fps(model, info.height, info.width, 3)
            real = through(short, model)
            typer.echo(f"pipeline {size} with the model ({model.meta['precision']}): model alone {alone:.3f} fps, "
                       f"decode + model + encode {real:.3f} fps ({100 * real / alone:.0f}% of the model alone)")


@app.command("eval", short_help="PSNR and SSIM of the model's output against the blurry input.")
def evaluate(
    data: Annotated[Path, typer.Argument(metavar="FOLDER",
                                         help="a GoPro-layout folder (SEQ/blur, SEQ/sharp) or a folder of "
                                        "NAME_blur1.png / NAME_sharp1.png pairs")],
    model: ModelOption = None,
    provider: ProviderOption = "auto",
    threads: ThreadsOption = None,
    precision: PrecisionOption = "auto",
    ssim: Annotated[bool, typer.Option(help="also SSIM (needs scikit-image)")] = True,
    verbose: VerboseOption = False,
) -> None:
    """PSNR (and SSIM) of the model's output and of the blurry input against the sharp frames."""
    show_onnxruntime_log(verbose)
    from .evaluation import evaluate_folder
    from .metrics import SHARP_PSNR_DB, describe, summarize

    loaded = load_model(model, provider, threads, precision)
    try:
        with _warnings_as_lines():
            rows = evaluate_folder(data, Deblurrer(loaded), ssim=ssim)
    except (MediaError, ValueError, ImportError) as e:
        raise fail(str(e)) from None
    summary = summarize(rows)
    typer.echo(f"model: {loaded.path} ({'trained' if loaded.trained else 'UNTRAINED'}); data: {data}")
    header = f"{'clip':<32} {'frames':>6} {'blurry dB':>10} {'model dB':>10} {'gain dB':>8}"
    typer.echo(header + (f" {'blurry SSIM':>11} {'model SSIM':>10}" if ssim else ""))
    mean = {"clip": "mean", "frames": summary["blurred_frames"], **summary["mean"]}
    for row in rows + ([mean] if summary["mean"] else []):
        line = (f"{row['clip']:<32} {row['frames']:>6} {row['psnr_blurry']:>10.3f} {row['psnr_model']:>10.3f} "
                f"{row['psnr_model'] - row['psnr_blurry']:>+8.3f}")
        typer.echo(line + (f" {row['ssim_blurry']:>11.4f} {row['ssim_model']:>10.4f}" if ssim else ""))
    if summary["sharp_clips"]:
        typer.echo(f"({summary['sharp_clips']} near-sharp clips, input {SHARP_PSNR_DB:.0f} dB or more, are left out "
                   f"of the mean; each output must stay at {SHARP_PSNR_DB:.0f} dB or more)")
    typer.echo(describe(summary))


def main() -> None:
    app(prog_name="strcnn")


if __name__ == "__main__":
    sys.exit(main())
