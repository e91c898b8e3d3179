"""Deblur a whole video or image sequence: decoding, inference and encoding run as overlapping stages.

A reader thread decodes (and converts colour) ahead, the calling thread runs the model, and a writer thread
converts and encodes behind it; bounded queues between them keep memory flat.
"""

from __future__ import annotations

import dataclasses
import inspect
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
from .model import Model
from .video import (AUDIO_MODES, Encoding, Frame, MediaError, Reader, check_codec, codec_for, is_video_path,
                    open_atomic)

# Called with (frames done, total frames or None) after each frame; returning False cancels the run.
ProgressCallback = Callable[[int, "int | None"], "bool | None"]


class Cancelled(Exception):
    """The progress callback stopped `deblur_video`; no output was written."""

_END = object()


class _Stage(threading.Thread):
    """A thread that consumes or produces queue items and keeps its exception for the caller."""

    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self._target_fn, self.error = target, None
        # set when run() returns; unlike is_alive(), not fooled by a join() that a Ctrl-C interrupted (Python
        # 3.11 then marks the thread stopped while it still runs)
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            self._target_fn()
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


def deblur_video(source: str | os.PathLike, output: str | os.PathLike, *,
                 model: Model | str | os.PathLike | None = None, providers: str | Sequence = "auto",
                 threads: int | None = None, precision: str = "auto", codec: str | None = None,
                 crf: int | None = 18, preset: str | None = "medium", pix_fmt: str = "yuv420p",
                 fps: Fraction | int | float | str = 25, audio: str = "copy", side_by_side: bool = False,
                 tile: int | str | None = "auto", overwrite: bool = False,
                 progress: ProgressCallback | None = None) -> int:
    """Deblur a video file (or a folder or quoted glob of images) into a video file or a folder of PNGs, as
    ``strcnn deblur`` does: timing, colour, rotation and other streams kept, the output written atomically.

    Each call is a new stream. `model` is a `Model` (shared, e.g. across calls), a path to an .onnx, or None for
    the shipped one, opened with `providers`, `threads` and `precision`. `codec` (None: H.264, VP9 for .webm),
    `crf`, `preset` and `pix_fmt` set the encoder; `fps` is the rate of an image-sequence input; `audio` is
    "copy" (where the output can hold it, else encoded anew), "encode" or "none". `side_by_side` writes the input
    and the output side by side, labelled. `tile` is the `Deblurrer`'s (large frames in tiles, to bound
    memory). `progress(done, total)` is called after every frame; returning False cancels (raising `Cancelled`,
    with nothing written). A video output's metadata records the model and the options that shaped it
    (`output_record`). Returns the number of frames written; raises `MediaError` for an input, output or option
    that cannot be used, naming it.
    """
    source, output = os.fspath(source), os.fspath(output)
    if os.path.exists(output):
        if os.path.exists(source) and os.path.samefile(source, output):
            raise MediaError(f"{output}: the output would overwrite the input; choose another name")
        if not overwrite:
            raise MediaError(f"{output} exists; pass --force to overwrite it (overwrite=True in Python)")
        if os.path.isdir(output) == is_video_path(Path(output)):
            raise MediaError(f"{output} exists and is a {'folder' if os.path.isdir(output) else 'file'}; "
                             f"choose another name")
    if not isinstance(model, Model):
        model = Model(model, providers=providers, threads=threads, precision=precision)
    encoding = _encoding(output, model, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, fps=fps, audio=audio,
                         side_by_side=side_by_side, tile=tile)
    try:
        deblurrer = Deblurrer(model, tile=tile)
    except ValueError as e:  # options are reported like the other options of a run
        raise MediaError(str(e)) from None
    return _deblur(Path(source), Path(output), deblurrer, encoding, side_by_side, progress)


# the options of `deblur_video` that shape its output, and so go into the record it writes
_SHAPING = ("codec", "crf", "preset", "pix_fmt", "fps", "audio", "side_by_side", "tile")


def _encoding(output: str, model: Model, *, codec: str | None, crf: int | None, preset: str | None, pix_fmt: str,
              fps: Fraction | int | float | str, audio: str, side_by_side: bool,
              tile: int | str | None) -> Encoding:
    """The checked encoding of an output, with the record of what makes it (model and options) for its metadata."""
    from . import __version__

    if audio not in AUDIO_MODES:
        raise MediaError(f"audio must be one of {', '.join(AUDIO_MODES)}, got {audio!r}")
    encoding = Encoding(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, fps=_rate(fps), audio=audio)
    encoder = codec_for(Path(output), encoding)
    if is_video_path(Path(output)):
        check_codec(encoder)
    record = {"strcnn_sdk": __version__, "model": model.path.name, "model_sha256": model.sha256,
              "codec": encoder, "crf": crf, "preset": preset, "pix_fmt": pix_fmt,
              "fps": str(encoding.fps), "audio": audio, "side_by_side": side_by_side, "tile": tile}
    return dataclasses.replace(encoding, record=record)


def output_record(output: str | os.PathLike, model: Model, **options) -> dict:
    """The record that ``deblur_video(source, output, model=model, **options)`` writes into its output's metadata
    (read back by `read_record`): the package version, the model's file name and SHA-256, and every option that
    shapes the output. Two outputs of one input whose records agree, version aside, are the same video."""
    unknown = set(options) - set(_SHAPING)
    if unknown:
        raise TypeError(f"not options of a video's output: {', '.join(sorted(unknown))}")
    defaults = {name: parameter.default for name, parameter in inspect.signature(deblur_video).parameters.items()
                if name in _SHAPING}
    return _encoding(os.fspath(output), model, **{**defaults, **options}).record


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


def _side_by_side(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    pair = np.concatenate([before, after], axis=1)
    _label(pair[:, :before.shape[1]], "input")
    _label(pair[:, before.shape[1]:], "deblurred")
    return pair


def _deblur(source: Path, output: Path, deblurrer: Deblurrer, encoding: Encoding, side_by_side: bool,
            progress: ProgressCallback | None, depth: int = 8) -> int:
    """The pipeline of `deblur_video`: a reader thread, the model here, a writer thread."""
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(depth)
    restored: queue.Queue = queue.Queue(depth)
    with Reader(source) as reader:
        info = reader.source
        width = info.width * (2 if side_by_side else 1)
        with open_atomic(output, info, encoding, width) as writer:
            def read() -> None:
                for item in reader:
                    _put(decoded, item, stop)
                    if stop.is_set():
                        return
                _put(decoded, _END, stop)

            def write() -> None:
                for item in _items(restored, [], stop):
                    if isinstance(item, av.Packet):
                        writer.copy(item)
                    else:
                        writer.write(*item)

            reading, writing = _Stage(read), _Stage(write)
            pending: deque[Frame] = deque()
            done = 0

            def emit(sharp: np.ndarray) -> None:
                nonlocal done
                frame = pending.popleft()
                rgb = _side_by_side(frame.rgb, sharp) if side_by_side else sharp
                _put(restored, (rgb, frame.pts, frame.name), stop, [writing])
                done += 1
                if progress is not None and progress(done, info.frames) is False:
                    raise Cancelled(f"cancelled after {done} frames; nothing written")

            try:
                reading.start()  # inside the try: an interruption right after a start still stops the stage
                writing.start()
                for item in _items(decoded, [reading, writing], stop):
                    if not isinstance(item, Frame):
                        _put(restored, item, stop, [writing])
                        continue
                    pending.append(item)
                    sharp = deblurrer.push(item.rgb)
                    if sharp is not None:
                        emit(sharp)
                for sharp in deblurrer.flush():
                    emit(sharp)
                _put(restored, _END, stop, [writing])
                writing.join()
                if writing.error is not None:
                    raise writing.error
            finally:
                stop.set()
                _join(reading, writing)
    return done


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
