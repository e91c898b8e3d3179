"""Deblur a whole video or image sequence: decoding, inference and encoding run as overlapping stages.

A reader thread decodes (and converts colour) ahead, the calling thread runs the model, and a writer thread
converts and encodes behind it; bounded queues between them keep memory flat.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from pathlib import Path
from typing import Callable, Iterable

import av
import numpy as np

from .deblurrer import Deblurrer
from .video import Encoding, Frame, Reader, open_atomic

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


def deblur_file(source: Path, output: Path, deblurrer: Deblurrer, encoding: Encoding = Encoding(),
                side_by_side: bool = False, progress: Callable[[int, int | None], None] | None = None,
                depth: int = 8) -> int:
    """Deblur `source` (a video, an image folder or a glob) into `output` (a video or an image folder), written
    atomically. `progress` is called with (frames done, total or None). Returns the number of frames written."""
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
                rgb = np.concatenate([frame.rgb, sharp], axis=1) if side_by_side else sharp
                _put(restored, (rgb, frame.pts, frame.name), stop, [writing])
                done += 1
                if progress is not None:
                    progress(done, info.frames)

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
