"""The `strcnn` command line: its commands and their options. Deblur videos and image sequences, and inspect,
benchmark (`benchmarks`) and evaluate models; what the commands share at the terminal is in `console`."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import onnxruntime as ort
import typer

from . import __version__, benchmarks, openvino_session as openvino
from .console import ProgressBar, catch_signals, fail, job_summary, load_model, warnings_as_lines, write_report
from .deblurrer import Deblurrer
from .jobs import STATUSES
from .metrics import describe_quality
from .model import Model, default_model, shipped_default, shipped_models, shipped_name, show_onnxruntime_log
from .providers import nvidia_driver_present
from .settings import Settings
from .system import cpu_flags, rss_mib
from .video import MediaError, OutputClosed, is_video_path

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Online video deblurring (STRCNN+DTB) over ONNX Runtime.")

ModelOption = Annotated[Optional[str], typer.Option("--model", "-m", metavar="NAME|FILE",
                                                    help="a shipped model, fast (width 32) or full (width 64), "
                                                         "or an .onnx with its .json sidecar (default: the one "
                                                         "weights/models.json names, `strcnn info` says which)")]
ProviderOption = Annotated[str, typer.Option(metavar="NAME", help="auto (CUDA where usable, else OpenVINO on Intel "
                                                                 "CPUs with VNNI or AMX where installed, else CPU), "
                                                                 "cuda, openvino or cpu")]
ThreadsOption = Annotated[Optional[int], typer.Option(metavar="N", help="ONNX Runtime threads (default: one per core)")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="also show ONNX Runtime's own log (e.g. why "
                                                                   "CUDA libraries did not load)")]
PrecisionOption = Annotated[str, typer.Option(metavar="NAME",
                                              help="shipped variant: auto (int8 on CPUs with VNNI/AMX, fp16 on "
                                                    "CUDA, else fp32), fp32, int8 or fp16")]


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
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="no progress, and no warning that the model does "
                                                                 "not meet its quality rule")]


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
    from .pipeline import check_run

    show_onnxruntime_log(verbose)
    stopped, passed = catch_signals(), [0]
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
        plan = check_run(source, output, settings)  # before the model loads
        if model is None and realtime:
            model = _realtime_model(provider, quiet)
        loaded = load_model(model, provider, threads, precision)
        _tile(tile, loaded)
        with warnings_as_lines(quiet), ProgressBar(quiet) as bar:
            def progress(done: int, total: int | None, through: int | None = None) -> None:
                passed[0] = through or 0
                bar(done, total, "" if through is None else f"{through} passed through")

            count = plan.run(loaded, progress)
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
    from .many import check_job

    show_onnxruntime_log(verbose)
    catch_signals()
    settings = Settings(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, audio=audio, side_by_side=side_by_side,
                        tile=_tile(tile), strength=strength)
    try:
        job = check_job(inputs, out, suffix=suffix, ext=ext, jobs=jobs, ray=ray, workers=workers,
                        gpus_per_worker=gpus_per_worker, settings=settings)  # before the model loads
        with warnings_as_lines(quiet), ProgressBar(quiet) as bar:
            loaded = model if ray else load_model(model, provider, threads, precision)
            if not ray:
                _tile(tile, loaded)

            def progress(job) -> None:
                bar(job.frames_done, job.frames or None, f"{job.videos_done}/{job.videos} videos",
                    estimate=not job.frames_exact)

            start = time.perf_counter()
            results = job.run(loaded, provider, threads, precision, force, progress)
    except MediaError as e:
        raise fail(str(e)) from None
    for result in results:
        for warning in result.warnings:
            typer.echo(f"strcnn: warning: {result.source}: {warning}", err=True)
    counts = {status: sum(result.status == status for result in results) for status in STATUSES}
    job_summary(results, counts, time.perf_counter() - start)
    if report is not None:
        write_report(report, results, counts)
    if any(result.status == "cancelled" for result in results):
        raise fail("interrupted; the videos done are kept, run the same command again to go on", 130)
    if any(result.status == "failed" for result in results):
        raise typer.Exit(1)


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
               f"NVIDIA driver: {'yes' if nvidia_driver_present() else 'no'}; {openvino.describe()}")
    typer.echo(f"provider in use: {loaded.provider}; threads: {threads or 'the runtime default (one per core)'}")
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
    benchmarks.shipped_speeds(provider, threads, precision, loaded)


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
    providers: Annotated[str, typer.Option(metavar="NAME,...", help="comma-separated providers; auto,cpu puts the "
                                                                    "default path beside ONNX Runtime on the CPU")
                         ] = "auto",
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
                                            "of live deblurring at --sizes, on the CPU, on OpenVINO and on CUDA "
                                            "where usable")
                    ] = False,
    live_rate: Annotated[float, typer.Option(metavar="FPS", min=1,
                                             help="frame rate of the live source of --live")] = 25.0,
    live_frames: Annotated[int, typer.Option(metavar="N", min=5, help="frames of each --live measurement")] = 50,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Frames per second of the model alone and through the Deblurrer, and of the video pipeline."""
    show_onnxruntime_log(verbose)
    typer.echo(f"cpu: {cpu_flags()}; onnxruntime {ort.__version__}; rss {rss_mib():.0f} MiB")
    models = model or list(shipped_models())
    with warnings_as_lines(quiet):  # a model's QualityWarning, when it first runs, as one line
        if tiling:
            first_precision = precisions.split(",")[0]
            benchmarks.tiling(load_model(models[0], providers.split(",")[0], threads, first_precision), tiling_frames)
            benchmarks.tiled_memory(models[0], threads)
            return
        if many:
            benchmarks.many(models[0], threads, many, many_frames)
            return
        if live:
            benchmarks.live(models, threads, [_parse_size(size) for size in sizes.split(",")], live_rate, live_frames,
                            preset)
            return
        sizes_wh = [_parse_size(size) for size in sizes.split(",")]
        first_model, provider, precision = benchmarks.rows(models, threads, providers.split(","),
                                                           precisions.split(","), sizes_wh, runs, quiet)
        if not (stream_steps or pipeline):
            return
        first = load_model(first_model, provider, threads, precision, warn=False)  # its warnings were printed above
        if stream_steps:
            benchmarks.memory(first, _parse_size(stream_size), stream_steps)
        if pipeline:
            benchmarks.pipeline(pipeline_source, pipeline_frames, preset, first, model_frames)


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
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """PSNR (and SSIM) of the model's output and of the blurry input against the sharp frames."""
    show_onnxruntime_log(verbose)
    from .evaluation import evaluate_folder
    from .metrics import SHARP_PSNR_DB, describe, summarize

    loaded = load_model(model, provider, threads, precision)
    try:
        with warnings_as_lines(quiet):
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
