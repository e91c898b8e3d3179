"""One video of a deblur-many job, wherever it runs: what it is (`Task`), how it ended (`Result`), running it
(`run_one`, never raising for a bad video), and the job's progress over its videos (`Tally`). Both the job on this
machine (`many.py`) and the one on Ray (`cluster.py`) build on it.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import av

from .model import Model
from .pipeline import Cancelled, Plan
from .video import TEXT_FILE, MediaError, MediaWarning, NotAVideo, is_source_code, read_record

STATUSES = ("done", "skipped", "failed", "cancelled")


@dataclass(frozen=True)
class Task:
    """One video of a job: where it is read from and where its result goes, whether a folder or glob search
    found it (then source code under a video's extension is skipped, not failed: nobody named it), and its run as
    checked before the job starts (`check_job`)."""

    source: str
    output: str
    searched: bool = field(default=False, compare=False)
    plan: Plan | None = field(default=None, compare=False)


@dataclass
class Result:
    """How one video of a job ended: "done" (written; `note` says why when an older output was replaced),
    "skipped" (its output was already made with the same model and options, or a search found a file that is not
    a video; `note` says which), "failed" (`note` is the reason, nothing written) or "cancelled" (the job was
    stopped first)."""

    source: str
    output: str
    status: str
    note: str = ""
    frames: int | None = None
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()

    @property
    def fps(self) -> float | None:
        return self.frames / self.seconds if self.frames and self.seconds > 0 else None


@dataclass
class JobProgress:
    """Where a job stands, for a progress display: videos ended of all, frames written of those expected (read
    from the videos' headers; those skipped or failed leave it). `frames_exact` says whether that total is exact:
    every video yet to end stores its frame count, rather than a count estimated from its duration."""

    videos_done: int
    videos: int
    frames_done: int
    frames: int
    frames_exact: bool = True


# Called after every frame (on this machine) or video (on Ray); returning False stops the job.
JobProgressCallback = Callable[[JobProgress], "bool | None"]


def frame_count(source: str) -> tuple[int, bool]:
    """The frames a video has, from its header without decoding, and whether that is exact: as stored (exact), else
    estimated from its duration and rate (Matroska stores no count); (0, False) where unknown or unreadable."""
    try:
        with av.open(source, "r") as container:
            stream = container.streams.video[0]
            if stream.frames:
                return stream.frames, True
            seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else \
                (container.duration or 0) / av.time_base
            return round(seconds * float(stream.guessed_rate or 0)), False
    except (av.FFmpegError, OSError, IndexError, ValueError, TypeError):
        return 0, False


# the warnings of the video being deblurred; the pipeline's reader and writer threads run in a copy of the
# context of the thread that started them, so that theirs are collected with the video's too
_current: ContextVar[list[str] | None] = ContextVar("strcnn_video_warnings", default=None)


@contextmanager
def warnings_per_video() -> Iterator[None]:
    """Collect the `MediaWarning`s raised while `run_one` runs into its `Result` (so that each names its video);
    warnings raised elsewhere are shown as usual."""
    show = warnings.showwarning

    def collect(message, category, filename, lineno, file=None, line=None) -> None:
        notes = _current.get()
        if notes is None or not issubclass(category, MediaWarning):  # e.g. the model's QualityWarning: the job's
            show(message, category, filename, lineno, file, line)
        else:
            notes.append(str(message))

    with warnings.catch_warnings():
        warnings.simplefilter("always", MediaWarning)
        warnings.showwarning = collect
        yield


def run_one(task: Task, model: Model, force: bool = False,
            progress: Callable[[int, int | None], bool | None] | None = None) -> Result:
    """Run one video's checked plan (`Task.plan`), or skip it, never raising for a bad video: every end, a damaged
    input included, is a `Result`."""
    start = time.perf_counter()
    notes = _current.set([])
    note = ""

    def result(status: str, note: str, frames: int | None = None) -> Result:
        return Result(task.source, task.output, status, note, frames, time.perf_counter() - start,
                      tuple(_current.get()))

    try:
        if task.searched and is_source_code(task.source):  # passed over before its output's folder is made
            raise NotAVideo(f"{task.source}: {TEXT_FILE}")
        if os.path.exists(task.output) and not force:
            before, now = read_record(task.output), task.plan.record(model)
            if before is None:
                return result("failed", f"{task.output} exists and was not written by strcnn-sdk; pass --force to "
                                        f"replace it")
            changed = [key for key in now if key != "strcnn_sdk" and before.get(key) != now[key]]
            if not changed:
                return result("skipped", "made before with the same model and options")
            note = f"replaced an output made with another {', '.join(changed)}"
        Path(task.output).parent.mkdir(parents=True, exist_ok=True)
        frames = task.plan.run(model, progress)
        return result("done", note, frames)
    except Cancelled:
        return result("cancelled", "stopped before it ended; nothing written")
    except NotAVideo as e:
        return result("skipped" if task.searched else "failed",
                      f"{'not a video, passed over: ' if task.searched else ''}{str(e).splitlines()[0]}")
    except (MediaError, OSError) as e:
        return result("failed", str(e).splitlines()[0])
    except Exception as e:  # one bad video must not end the job: its reason goes into its row
        return result("failed", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no message'}")
    finally:
        _current.reset(notes)


class Tally:
    """Counts a job's progress as videos run and end, and passes it to a `JobProgressCallback` (thread-safe)."""

    def __init__(self, tasks: Sequence[Task], callback: JobProgressCallback | None) -> None:
        self.callback, self.lock = callback, threading.Lock()
        counts = {task: frame_count(task.source) for task in tasks} if callback else {}
        self.expected = {task: count for task, (count, _) in counts.items()}
        self.exact = {task: exact for task, (_, exact) in counts.items()}
        self.written = dict.fromkeys(tasks, 0)
        self.ended = 0
        self.stopped = False

    def frame(self, task: Task, done: int) -> bool:
        """A video has written `done` frames; False once the job is to stop."""
        with self.lock:
            self.written[task] = done
            return self._report()

    def end(self, result: Result) -> bool:
        """A video has ended; False once the job is to stop."""
        with self.lock:
            task = Task(result.source, result.output)
            self.ended += 1
            self.written[task] = result.frames or 0
            if self.callback:
                self.expected[task] = (result.frames or 0) if result.status == "done" else 0
                self.exact[task] = True
            return self._report()

    def _report(self) -> bool:
        if self.callback is not None and not self.stopped:
            self.stopped = self.callback(JobProgress(self.ended, len(self.written), sum(self.written.values()),
                                                     sum(self.expected.values()), all(self.exact.values()))) is False
        return not self.stopped
