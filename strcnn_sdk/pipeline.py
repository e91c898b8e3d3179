"""Deblur a whole video or image sequence: decoding, inference and encoding run as overlapping stages.

A reader thread decodes (and converts colour) ahead, the calling thread runs the model, and a writer thread
converts and encodes behind it; bounded queues between them keep memory flat.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import queue
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Sequence

import av
import cv2
import numpy as np

from .deblurrer import Deblurrer
from .frames import check_strength
from .model import Model, default_model
from .settings import Settings
from .video import (AUDIO_MODES, Encoding, Frame, Location, MediaError, Reader, check_encoding, codec_for,
                    is_video_path, locate, open_output)

# Called with (frames done, total frames or None) after each frame (with realtime, also the frames passed through
# untouched); returning False cancels the run.
ProgressCallback = Callable[[int, "int | None"], "bool | None"]


class Cancelled(Exception):
    """The progress callback stopped `deblur_video` on a file; no output was written."""

_END = object()


class _Stage(threading.Thread):
    """A thread that consumes or produces queue items and keeps its exception for the caller."""

    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self._target_fn, self.error = target, None
        self._context = contextvars.copy_context()  # the starting thread's (where a job collects its warnings)
        # set when run() returns; unlike is_alive(), not fooled by a join() that a Ctrl-C interrupted (Python
        # 3.11 then marks the thread stopped while it still runs)
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            self._context.run(self._target_fn)
        except BaseException as e:  # handed to the calling thread, which re-raises it
            self.error = e
        finally:
            self.finished.set()


def _raise_failed(stages: Iterable[_Stage]) -> None:
    for stage in stages:
        if stage.error is not None:
            raise stage.error


def _put(q: queue.Queue, item, stop: threading.Event, stages: Iterable[_Stage] = ()) -> None:
    """Put an item, waiting for room until `stop` is set, raising what a stage raised if it dies meanwhile
    (its queue would never drain)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            _raise_failed(stages)


def _items(q: queue.Queue, stages: Iterable[_Stage], stop: threading.Event):
    """Items from a queue until _END (or until `stop` is set), raising what a stage raised as soon as it does."""
    while True:
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return
            _raise_failed(stages)
            continue
        if item is _END:
            return
        yield item


@dataclasses.dataclass(frozen=True)
class Plan:
    """A run as checked before a model loads (`check_run`): its input and output, each located once, the output's
    encoding and the settings. `run` runs it with a model, checking nothing again."""

    source: Location
    output: Location
    encoding: Encoding  # the output's, its record without the model yet
    settings: Settings

    def record(self, model: Model) -> dict:
        """The record this run writes into its output's metadata with `model` (read back by `read_record`): the
        package version, the model's file name and SHA-256, and every setting that shapes the output. Two outputs
        of one input whose records agree, version aside, are the same video."""
        return {**self.encoding.record, "model": model.path.name, "model_sha256": model.sha256}

    def run(self, model: Model, progress: ProgressCallback | None = None) -> int:
        """Deblur with a loaded model, as `deblur_video` does once its checks are made; returns the frames
        written."""
        live = self.source.live or self.output.kind == "pipe"  # low-latency encoding
        encoding = dataclasses.replace(self.encoding, record=self.record(model), live=live)
        try:
            deblurrer = Deblurrer(model, tile=self.settings.tile, strength=self.settings.strength)
        except ValueError as e:  # options are reported like the other options of a run
            raise MediaError(str(e)) from None
        return _deblur(self.source, self.output.text, deblurrer, encoding, self.settings, progress)


def deblur_video(source: str | os.PathLike, output: str | os.PathLike, *,
                 model: Model | str | os.PathLike | None = None, providers: str | Sequence = "auto",
                 threads: int | None = None, precision: str = "auto", settings: Settings | None = None,
                 progress: ProgressCallback | None = None, **options) -> int:
    """Deblur a video (a file, `-` for standard input, a URL, an FFmpeg device as `FORMAT:SPEC`, or a folder or
    quoted glob of images) into a video file, a folder of PNGs or `-` for standard output, as ``strcnn deblur``
    does: timing, colour, rotation and other streams kept, a file output written atomically.

    Each call is a new stream. `model` is a `Model` (shared, e.g. across calls), a shipped model's name ("full" or
    "fast"), a path to an .onnx, or None: the full model, or the fast one for `realtime` on the CPU
    (`default_model`); opened with `providers`, `threads` and `precision`. `settings` (a `Settings`) says how to
    read, run and write; keyword `options`, named like its fields (codec=, crf=, pix_fmt=, side_by_side=,
    overwrite=, frames=, realtime= ...), set or replace its fields. `progress(done, total)` is called after every
    frame; returning False cancels (raising `Cancelled`, with nothing written). A video output's metadata records
    the model and the settings that shaped it (`Plan.record`). Returns the number of frames written; raises
    `MediaError` for an input, output or option that cannot be used, naming it, and `TypeError` for an option
    that is none. A file input that ends before the frames its header promises warns (`MediaWarning`) and keeps
    what was read.

    Live use: a live input (standard input, a URL, a device) stopped by Ctrl-C or by `progress` returning False
    ends like a finished one: the output is completed and kept. A URL that drops is reopened for up to
    `reconnect` seconds; a live input that fails for good (`StreamLost`, a device gone) also ends the run with its
    output completed, and then the error is raised. With `realtime`, a frame that arrives while the model is
    still busy with an earlier one is written untouched instead of waiting, so that the output keeps up with the
    input; the model's window and state go on from the next frame it takes, and `progress` gets a third
    argument, the frames passed through so far.
    """
    settings = Settings.of(settings, options)
    plan = check_run(source, output, settings)
    if not isinstance(model, Model):
        model = Model(default_model(providers, settings.realtime) if model is None else model, providers=providers,
                      threads=threads, precision=precision)
    return plan.run(model, progress)


def check_run(source: str | os.PathLike, output: str | os.PathLike, settings: Settings = Settings()) -> Plan:
    """The checks of a run that cost nothing, made before a model loads: an output that would replace the input or
    an existing file (unless `settings.overwrite`), settings that do not fit the input, and the output's
    settings (encoder, pixel format, quality scale, rate, audio, a container that holds the encoder). Returns the
    `Plan`, which runs without checking again; raises `MediaError` naming what is wrong."""
    source, output = os.fspath(source), os.fspath(output)
    into = locate(output, writing=True)
    if into.kind == "path" and os.path.exists(output):
        if os.path.exists(source) and os.path.samefile(source, output):
            raise MediaError(f"{output}: the output would overwrite the input; choose another name")
        if not settings.overwrite:
            raise MediaError(f"{output} exists; pass --force to overwrite it (overwrite=True in Python)")
        if os.path.isdir(output) == is_video_path(Path(output)):
            raise MediaError(f"{output} exists and is a {'folder' if os.path.isdir(output) else 'file'}; "
                             f"choose another name")
    if settings.reconnect < 0:
        raise MediaError(f"--reconnect must be 0 or more seconds, got {settings.reconnect}")
    where = locate(source)
    if settings.realtime and not where.live:
        raise MediaError(f"{source}: --realtime is for live inputs (standard input, a URL, a device); a file is "
                         f"read as fast as the model goes, so nothing needs to be passed through")
    return Plan(where, into, _encoding(output, settings), settings)


def _encoding(output: str, settings: Settings) -> Encoding:
    """The checked encoding of an output, with the record of the settings that make it for its metadata (the
    model is added by `Plan.record`)."""
    from . import __version__

    if settings.audio not in AUDIO_MODES:
        raise MediaError(f"audio must be one of {', '.join(AUDIO_MODES)}, got {settings.audio!r}")
    try:
        check_strength(settings.strength)
    except ValueError as e:
        raise MediaError(str(e)) from None
    encoding = Encoding(codec=settings.codec, crf=settings.crf, preset=settings.preset, pix_fmt=settings.pix_fmt,
                        fps=_rate(settings.fps), audio=settings.audio, format=settings.format)
    video = output == "-" or is_video_path(Path(output))
    encoder = check_encoding(output, encoding) if video else codec_for(output, encoding)
    record = {"strcnn_sdk": __version__, "model": None, "model_sha256": None,
              **settings.recorded(), "codec": encoder, "fps": str(encoding.fps)}
    return dataclasses.replace(encoding, record=record)


def _rate(fps: Fraction | int | float | str) -> Fraction:
    try:
        rate = Fraction(fps)
        if rate > 0:
            return rate
    except (ValueError, ZeroDivisionError, TypeError):
        pass
    raise MediaError(f"the frame rate (--fps) must be a positive number or fraction (25, 30000/1001), got {fps!r}")


def _label(rgb: np.ndarray, text: str) -> None:
    """Write a small label in the top-left corner, white on a dark outline, readable on any picture."""
    scale, white = max(rgb.shape[0] / 540, 0.4), 255 if rgb.dtype == np.uint8 else 1.0
    origin = (int(8 * scale) + 2, int(28 * scale) + 6)
    for colour, thickness in (((0, 0, 0), 4), ((white,) * 3, 1)):
        cv2.putText(rgb, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, max(1, round(thickness * scale)),
                    cv2.LINE_AA)


def _side_by_side(before: np.ndarray, after: np.ndarray, what: str) -> np.ndarray:
    pair = np.concatenate([before, after], axis=1)
    _label(pair[:, :before.shape[1]], "input")
    _label(pair[:, before.shape[1]:], what)
    return pair


def _deblur(source: Location, output: str, deblurrer: Deblurrer, encoding: Encoding, settings: Settings,
            progress: ProgressCallback | None) -> int:
    """The pipeline of `deblur_video`: a reader thread, the model here, a writer thread."""
    with Reader(source, **settings.reading()) as reader:
        run = _Run(reader, deblurrer, settings.side_by_side, progress, settings.realtime)
        readers = _Stage(run.read)
        try:
            readers.start()  # inside the try: an interruption right after a start still stops the stage
            width = reader.source.width * (2 if settings.side_by_side else 1)
            with open_output(output, reader.source, encoding, width) as writer:
                run.restore(writer, readers)
        finally:
            run.ending.set()
            run.stop.set()
            reader.stop()
            _join(readers)
    if run.lost is not None:
        where = "standard output" if output == "-" else output
        raise type(run.lost)(f"{run.lost}; the {run.done} frames before are written to {where}")
    return run.done


class _Run:
    """One pass of the pipeline: `read` (in a thread) fills the `decoded` queue from the reader, `restore` runs
    the model over it and hands the frames, in order, to a writer thread through `restored`. Both queues are
    bounded, so memory stays flat however long the stream."""

    def __init__(self, reader: Reader, deblurrer: Deblurrer, side_by_side: bool, progress: ProgressCallback | None,
                 realtime: bool, depth: int = 8) -> None:
        self.reader, self.deblurrer, self.side_by_side = reader, deblurrer, side_by_side
        model = deblurrer.model  # the output's half of a side-by-side is labelled with the model that made it
        self.label = model.path.stem + ("" if model.trained else " (untrained)")
        self.progress, self.realtime, self.live = progress, realtime, reader.location.live
        self.stop = threading.Event()  # everything stops: an error, or a file's conversion cancelled
        self.ending = threading.Event()  # the reader stops; what was read is finished and kept (live input stopped)
        # with realtime, the frames that come during one model step wait here to be passed through
        self.decoded: queue.Queue = queue.Queue(depth * (8 if realtime else 1))
        self.restored: queue.Queue = queue.Queue(depth)
        self.arrived = 0  # frames the reader has taken from the input
        self.done = self.passed = 0  # frames written; of them, passed through untouched
        self.lost: MediaError | None = None  # what ended a live input early, raised once its output is complete
        self.pending: deque[tuple[Frame, bool]] = deque()  # frames not yet written, in order; True: passed through
        self.writing: _Stage | None = None

    def read(self) -> None:
        """The reader thread: decoded frames and other streams' packets into `decoded`, then _END."""
        try:
            for item in self.reader:
                self.arrived += isinstance(item, Frame)
                _put(self.decoded, item, self.ending)
                if self.ending.is_set():
                    return
        except MediaError as e:
            if not self.live:
                raise
            self.lost = e  # a live input that fails (a camera unplugged, a stream lost) ends the recording
        _put(self.decoded, _END, self.ending)

    def restore(self, writer, reading: _Stage) -> None:
        """Run the model over `decoded` while a writer thread writes `restored`; a live input stopped by Ctrl-C
        or by the progress callback is finished like one that ended."""
        def write() -> None:
            for item in _items(self.restored, [], self.stop):
                if isinstance(item, av.Packet):
                    writer.copy(item)
                else:
                    writer.write(*item)

        self.writing = _Stage(write)
        taken = 0
        try:
            self.writing.start()
            try:
                for item in _items(self.decoded, [reading, self.writing], self.stop):
                    if not isinstance(item, Frame):
                        _put(self.restored, item, self.stop, [self.writing])
                        continue
                    taken += 1
                    if self.realtime and self.arrived > taken:  # a newer frame waits: this one is not worth the wait
                        self.passed += 1
                        self.pending.append((item, True))
                        self._drain()
                        continue
                    self.pending.append((item, False))
                    try:
                        sharp = self.deblurrer.push(item.rgb)
                    except BaseException:
                        self.pending.pop()
                        raise
                    if sharp is not None:
                        self._emit(sharp)
            except (KeyboardInterrupt, Cancelled):
                if not self.live:  # an unfinished file conversion leaves nothing
                    raise
            self.ending.set()  # a live input stopped by the user ends like one that finished
            for sharp in self.deblurrer.flush():
                self._emit(sharp)
            _put(self.restored, _END, self.stop, [self.writing])
            self.writing.join()
            if self.writing.error is not None:
                raise self.writing.error
        finally:
            self.stop.set()
            _join(self.writing)

    def _emit(self, sharp: np.ndarray) -> None:
        """Write the model's output for the oldest frame it took, then the frames passed through behind it."""
        self._out(self.pending.popleft()[0], sharp)
        self._drain()

    def _drain(self) -> None:
        """Write the frames passed through that are next in line."""
        while self.pending and self.pending[0][1]:
            frame = self.pending.popleft()[0]
            self._out(frame, frame.rgb, "passed through")

    def _out(self, frame: Frame, rgb: np.ndarray, what: str | None = None) -> None:
        pair = _side_by_side(frame.rgb, rgb, what or self.label) if self.side_by_side else rgb
        _put(self.restored, (pair, frame.pts, frame.name), self.stop, [self.writing])
        self.done += 1
        total = self.reader.source.frames
        report = (self.done, total, self.passed) if self.realtime else (self.done, total)
        if self.progress is not None and self.progress(*report) is False and not self.ending.is_set():
            raise Cancelled(f"cancelled after {self.done} frames; nothing written")


def _join(*stages: _Stage) -> None:
    """Wait for the stages to end (soon once `stop` is set), also through another Ctrl-C meanwhile, so that no
    container is closed under a thread still using it; that Ctrl-C is raised once they have ended."""
    interrupted = False
    for stage in stages:
        while stage.ident is not None and not stage.finished.is_set():  # started and still running
            try:
                stage.finished.wait()
            except KeyboardInterrupt:
                interrupted = True
    if interrupted:
        raise KeyboardInterrupt
