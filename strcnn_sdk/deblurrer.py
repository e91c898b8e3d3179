"""`Deblurrer`: the state of one video stream (or of N same-size streams stepped together) over a `Model`."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .frames import DTYPES, check_color, check_frames, from_planar, to_planar
from .model import Model


@dataclass(frozen=True)
class StreamState:
    """Everything a stream needs to go on in another `Deblurrer` (or after a restart): the recurrent state
    (F, h~), the frames buffered by ``push`` but not yet restored, and the stream's frame size and dtype.

    Read it from ``Deblurrer.state``, assign it to another Deblurrer of the same model, or ``save`` it to an
    .npz file and ``load`` it back; the continued stream gives the same frames, bit for bit.
    """

    F: np.ndarray  # float32 [N, width/2, H'/2, W'/2], H' and W' the padded frame size
    h: np.ndarray  # float32 [N, width, H'/2, W'/2]
    frames: np.ndarray  # float32 [N, 3k, H', W']: the k frames buffered by push (planar RGB, oldest first)
    height: int
    width: int
    batched: bool  # frames came with a leading N axis
    dtype: str  # "uint8" or "float32": the stream's frame type

    def save(self, path: str | Path) -> None:
        """Write the state to an .npz file, atomically (a crash never leaves a truncated state behind)."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, F=self.F, h=self.h, frames=self.frames, height=self.height, width=self.width,
                         batched=self.batched, dtype=self.dtype)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | Path) -> StreamState:
        """Read a state written by `save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(F=data["F"], h=data["h"], frames=data["frames"], height=int(data["height"]),
                           width=int(data["width"]), batched=bool(data["batched"]), dtype=str(data["dtype"]))
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"{path}: not a stream state written by StreamState.save ({e})") from None


class Deblurrer:
    """Deblur a video frame by frame, carrying the recurrent state of the network between frames.

    Feed it in one of two ways, never mixed within a stream:

    - ``push(frame)`` each frame as it arrives; it returns the sharp frame m frames behind (None while the
      first m are buffered), and ``flush()`` returns the rest at the end of the stream;
    - ``stream(frames)`` for a whole clip at hand, which does just that;
    - ``step(window)`` with explicit windows of 2m+1 frames, oldest first, returning the sharp centre frame.

    A frame is HxWx3, uint8 (out as uint8) or float32 in [0, 1] (out as float32), in ``color`` order. An array
    with one more leading dimension is N streams stepped together in one call (e.g. [N, H, W, 3] for push).
    Any H and W: frames are padded by reflection to what the model needs and cropped back. The first frame
    fixes the stream's size and dtype; a frame that differs raises ValueError until ``reset()``. A call that
    raises (a bad frame, a failed run, Ctrl-C) leaves the stream as it was before the call.

    Args:
        model: a `Model`, a path to an .onnx (with its .json sidecar), or None for the shipped model.
        color: "rgb", or "bgr" for OpenCV's channel order.
    """

    def __init__(self, model: Model | str | Path | None = None, color: str = "rgb") -> None:
        self.model = model if isinstance(model, Model) else Model(model)
        self.color = check_color(color)
        self.reset()

    def reset(self) -> None:
        """Start a new stream: zero state, empty buffer, any frame size."""
        self._state = None
        self._shape: tuple[int, int, int] | None = None  # streams, height, width
        self._batched = False
        self._dtype: np.dtype | None = None
        # The model's input [N, 3(2m+1), H', W'] and its twin to slide into: allocated once per stream, since
        # fresh buffers this large cost page faults on every step.
        self._window: np.ndarray | None = None
        self._spare: np.ndarray | None = None
        self._sharp: np.ndarray | None = None  # the model's output, likewise reused
        self._filled = 0  # frames of the window holding data (push/flush)

    @property
    def state(self) -> StreamState | None:
        """The stream's `StreamState` (None before its first frame): assign it to another Deblurrer of the same
        model to continue the stream there, buffered frames included."""
        if self._state is None:
            return None
        n, height, width = self._shape
        f, h = (v.numpy().copy() for v in self._state)
        return StreamState(f, h, self._window[:, :3 * self._filled].copy(), height, width, self._batched,
                           self._dtype.name)

    @state.setter
    def state(self, value: StreamState | None) -> None:
        if value is None:
            self.reset()
            return
        if not isinstance(value, StreamState):
            raise TypeError(f"state must be a StreamState (from Deblurrer.state or StreamState.load), got "
                            f"{type(value).__name__}")
        f, h, frames = (np.asarray(a, np.float32) for a in (value.F, value.h, value.frames))
        cf, ch = self.model.state_channels
        n = f.shape[0] if f.ndim == 4 else -1
        padded = self.model.padded_size(value.height, value.width)
        half = (padded[0] // 2, padded[1] // 2)
        if f.shape != (n, cf, *half) or h.shape != (n, ch, *half):
            raise ValueError(f"state must hold F [N, {cf}, {half[0]}, {half[1]}] and h [N, {ch}, {half[0]}, "
                             f"{half[1]}] for {value.height}x{value.width} frames with this model, got shapes "
                             f"{f.shape} and {h.shape}")
        if frames.ndim != 4 or frames.shape[0] != n or frames.shape[1] % 3 or frames.shape[1] >= 3 * self.model.window \
                or frames.shape[2:] != padded:
            raise ValueError(f"state's buffered frames must be [{n}, 3k, {padded[0]}, {padded[1]}] with k < "
                             f"{self.model.window}, got {frames.shape}")
        if np.dtype(value.dtype) not in DTYPES or (n != 1 and not value.batched):
            raise ValueError(f"state's dtype {value.dtype!r} or batching ({n} streams, batched={value.batched}) "
                             f"is not one a Deblurrer makes")
        if not (np.isfinite(f).all() and np.isfinite(h).all() and np.isfinite(frames).all()):
            raise ValueError("state contains NaN or infinite values")
        state = self.model.state_from_numpy(f, h)
        self.reset()
        self._shape, self._batched, self._dtype = (n, value.height, value.width), value.batched, np.dtype(value.dtype)
        self._state = state
        self._window = np.empty((n, 3 * self.model.window, *padded), np.float32)
        self._window[:, :frames.shape[1]] = frames
        self._filled = frames.shape[1] // 3

    @contextmanager
    def _unchanged_on_error(self) -> Iterator[None]:
        """Undo whatever a call did to the stream if it raises. The window buffer needs no copy: a step writes
        only slots past the filled ones, and slides into the spare buffer once its run has succeeded."""
        saved = (self._state, self._shape, self._batched, self._dtype, self._window, self._spare, self._filled)
        try:
            yield
        except BaseException:
            (self._state, self._shape, self._batched, self._dtype, self._window, self._spare,
             self._filled) = saved
            raise

    def step(self, frames) -> np.ndarray:
        """Restore the centre frame of one window of 2m+1 frames (oldest first) and advance the state.

        `frames` is a sequence of HxWx3 arrays or one [2m+1, H, W, 3] array; [N, 2m+1, H, W, 3] steps N
        streams at once. Returns HxWx3 (or [N, H, W, 3]) in the input's dtype and colour order.
        """
        if isinstance(frames, (list, tuple)):
            if not frames:
                raise ValueError(f"empty window: step needs {self.model.window} frames")
            if not all(isinstance(f, np.ndarray) for f in frames):
                raise TypeError("a window's frames must be numpy arrays")
            kinds = {(f.shape, f.dtype) for f in frames}
            if len(kinds) > 1:
                raise ValueError(f"frames of one window differ in shape or dtype: {sorted(map(str, kinds))}")
            frames = np.stack(frames)  # checked as one window below
        batched = isinstance(frames, np.ndarray) and frames.ndim == 5
        window = check_frames(frames, 5 if batched else 4, "window")
        if not batched:
            window = window[None]
        if window.shape[1] != self.model.window:
            raise ValueError(f"a window must hold 2m+1 = {self.model.window} frames, got {window.shape[1]}")
        if self._filled:
            raise ValueError("step() cannot continue a stream fed by push(); call flush() or reset() first")
        with self._unchanged_on_error():
            self._begin(window.shape[0], *window.shape[2:4], batched, window.dtype)
            for k in range(self.model.window):
                self._slot(k)[...] = self._planar(window[:, k])
            return self._run(window.dtype)

    def push(self, frame: np.ndarray) -> np.ndarray | None:
        """Feed the next frame (HxWx3, or [N, H, W, 3] for N streams); returns the sharp frame m frames
        behind, or None while the first m frames are buffered."""
        batched = isinstance(frame, np.ndarray) and frame.ndim == 4
        frame = check_frames(frame, 4 if batched else 3, "frame")
        frames = frame if batched else frame[None]
        with self._unchanged_on_error():
            self._begin(frames.shape[0], *frames.shape[1:3], batched, frames.dtype)
            planar = self._planar(frames)
            if self._filled == 0:  # the first frame stands in for the m frames before the start
                for k in range(self.model.m):
                    self._slot(k)[...] = planar
                self._filled = self.model.m
            return self._append(planar)

    def flush(self) -> list[np.ndarray]:
        """End the stream: return the frames still owed (the last frame stands in for those after the end),
        then reset, so every pushed frame has exactly one output."""
        out = []
        with self._unchanged_on_error():
            if self._filled:
                last = self._slot(self._filled - 1).copy()
                for _ in range(self.model.m):
                    sharp = self._append(last)
                    if sharp is not None:
                        out.append(sharp)
        self.reset()
        return out

    def stream(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Deblur a whole clip: push every frame, then flush; yields exactly one sharp frame per input frame."""
        for frame in frames:
            sharp = self.push(frame)
            if sharp is not None:
                yield sharp
        yield from self.flush()

    def _slot(self, k: int) -> np.ndarray:
        """Frame k (oldest first) of the window, a view [N, 3, H', W']."""
        return self._window[:, 3 * k:3 * k + 3]

    def _append(self, planar: np.ndarray) -> np.ndarray | None:
        """Put the next frame in the window; once the window is full, run a step and slide by one frame."""
        self._slot(self._filled)[...] = planar
        self._filled += 1
        if self._filled < self.model.window:
            return None
        sharp = self._run(self._dtype)
        if self._spare is None:
            self._spare = np.empty_like(self._window)
        self._spare[:, :-3] = self._window[:, 3:]
        self._window, self._spare = self._spare, self._window
        self._filled -= 1
        return sharp

    def _begin(self, n: int, height: int, width: int, batched: bool, dtype: np.dtype) -> None:
        """Fix the stream's shape and dtype on its first frame; later frames must match until reset()."""
        shape = (n, height, width)
        if self._shape is None:
            self._shape, self._batched, self._dtype = shape, batched, dtype
            padded = self.model.padded_size(height, width)
            self._state = self.model.zero_state(n, *padded)
            self._window = np.empty((n, 3 * self.model.window, *padded), np.float32)
        elif shape != self._shape or batched != self._batched:
            raise ValueError(f"frame size changed mid-stream from {self._describe(self._shape, self._batched)} "
                             f"to {self._describe(shape, batched)}; call reset() to start a new stream")
        elif dtype != self._dtype:
            raise ValueError(f"frame dtype changed mid-stream from {self._dtype} to {dtype}; convert frames to "
                             f"one dtype, or call reset() to start a new stream")

    @staticmethod
    def _describe(shape: tuple[int, int, int], batched: bool) -> str:
        n, height, width = shape
        return f"{n} streams of {height}x{width}" if batched else f"{height}x{width}"

    def _planar(self, frames: np.ndarray) -> np.ndarray:
        return to_planar(frames, self.color, self.model.pad_multiple)

    def _run(self, dtype: np.dtype) -> np.ndarray:
        if self._sharp is None:
            self._sharp = np.empty((self._window.shape[0], 3, *self._window.shape[2:]), np.float32)
        sharp, state = self.model.run(self._window, self._state, self._sharp)
        self._state = state
        _, height, width = self._shape
        out = from_planar(sharp, height, width, self.color, dtype)
        return out if self._batched else out[0]
