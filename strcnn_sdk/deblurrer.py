"""`Deblurrer`: the state of one video stream (or of N same-size streams stepped together) over a `Model`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .frames import check_color, check_frames, from_planar, to_planar
from .model import Model


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
    fixes the stream's size and dtype; a frame that differs raises ValueError until ``reset()``.

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
    def state(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The recurrent state (F, h~) as float32 numpy arrays [N, C, H'/2, W'/2], or None before the first
        step. Assign a state read from another Deblurrer (same model, same frame size) to continue its stream."""
        if self._state is None:
            return None
        return tuple(v.numpy().copy() for v in self._state)

    @state.setter
    def state(self, value: tuple[np.ndarray, np.ndarray] | None) -> None:
        if value is None:
            self.reset()
            return
        f, h = (np.asarray(v) for v in value)
        cf, ch = self.model.state_channels
        if f.ndim != 4 or h.ndim != 4 or f.shape[1] != cf or h.shape[1] != ch \
                or f.shape[0] != h.shape[0] or f.shape[2:] != h.shape[2:]:
            raise ValueError(f"state must be (F [N, {cf}, H/2, W/2], h [N, {ch}, H/2, W/2]), got shapes "
                             f"{f.shape} and {h.shape}")
        if not (np.isfinite(f).all() and np.isfinite(h).all()):
            raise ValueError("state contains NaN or infinite values")
        state = self.model.state_from_numpy(f, h)
        self.reset()  # a new stream from this state: its next frame fixes the size and is checked against it
        self._state = state

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
            if self._state is None:
                self._state = self.model.zero_state(n, *padded)
            self._check_state()
            self._window = np.empty((n, 3 * self.model.window, *padded), np.float32)
        elif shape != self._shape or batched != self._batched:
            raise ValueError(f"frame size changed mid-stream from {self._describe(self._shape, self._batched)} "
                             f"to {self._describe(shape, batched)}; call reset() to start a new stream")
        elif dtype != self._dtype:
            raise ValueError(f"frame dtype changed mid-stream from {self._dtype} to {dtype}; convert frames to "
                             f"one dtype, or call reset() to start a new stream")

    def _check_state(self) -> None:
        """A state assigned before the first frame must fit the stream's padded size."""
        n, height, width = self._shape
        padded = self.model.padded_size(height, width)
        expected = (n, padded[0] // 2, padded[1] // 2)
        got = self._state[0].shape()
        if (got[0], got[2], got[3]) != expected:
            described = self._describe(self._shape, self._batched)
            self.reset()
            raise ValueError(f"the assigned state [{got[0]}, ., {got[2]}, {got[3]}] does not fit "
                             f"{described} frames (needs [{expected[0]}, ., {expected[1]}, "
                             f"{expected[2]}])")

    @staticmethod
    def _describe(shape: tuple[int, int, int], batched: bool) -> str:
        n, height, width = shape
        return f"{n} streams of {height}x{width}" if batched else f"{height}x{width}"

    def _planar(self, frames: np.ndarray) -> np.ndarray:
        return to_planar(frames, self.color, self.model.pad_multiple)

    def _run(self, dtype: np.dtype) -> np.ndarray:
        if self._sharp is None:
            self._sharp = np.empty((self._window.shape[0], 3, *self._window.shape[2:]), np.float32)
        sharp, self._state = self.model.run(self._window, self._state, self._sharp)
        _, height, width = self._shape
        out = from_planar(sharp, height, width, self.color, dtype)
        return out if self._batched else out[0]
