"""What the commands share at the terminal: one-line errors, a model loaded with its warnings printed, warnings as
one line each, the progress display, Ctrl-C and kill handled alike, and a deblur-many job's summary."""

from __future__ import annotations

import dataclasses
import json
import signal
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import typer

from .model import Model, QualityWarning, planned_model, shipped_name
from .providers import CPU_BACKENDS
from .system import write_atomic
from .video import MediaWarning


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
        if first in CPU_BACKENDS:
            raise fp16_on_cpu()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = Model(model, providers=provider, threads=threads, precision=precision)
        except (FileNotFoundError, ValueError, TypeError) as e:
            raise fail(str(e)) from None
    for w in caught if warn else ():
        typer.echo(f"strcnn: warning: {w.message}", err=True)
    if shipped and precision == "fp16" and loaded.provider in CPU_BACKENDS:  # CUDA fell back
        raise fp16_on_cpu()
    return loaded


def catch_signals() -> list[int]:
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
def warnings_as_lines(quiet: bool = False) -> Iterator[None]:
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


class ProgressBar:
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


def job_summary(results: list, counts: dict[str, int], seconds: float) -> None:
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


def write_report(path: Path, results: list, counts: dict[str, int]) -> None:
    """The summary as JSON, written atomically: one entry per video and the counts of each end."""
    videos = [dict(dataclasses.asdict(result), fps=result.fps) for result in results]
    try:
        write_atomic(path, (json.dumps({"videos": videos, "counts": counts}, indent=2) + "\n").encode())
    except OSError as e:
        raise fail(f"{path}: the report could not be written ({e.strerror or e})") from None
