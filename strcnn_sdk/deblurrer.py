"""`Deblurrer`: the state of one video stream (or of N same-size streams stepped together) over a `Model`."""

from __future__ import annotations

import io
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .frames import DTYPES, check_color, check_frames, check_strength, from_planar, to_planar
from .model import Model
from .system import write_atomic


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
    tile: int = 0  # tile side of a tiled stream, whose F and h hold every tile's state: [tiles * N, ...]; 0: none

    def save(self, path: str | Path) -> None:
        """Write the state to an .npz file, atomically (a crash never leaves a truncated state behind)."""
        buffer = io.BytesIO()
        np.savez(buffer, F=self.F, h=self.h, frames=self.frames, height=self.height, width=self.width,
                 batched=self.batched, dtype=self.dtype, tile=self.tile)
        write_atomic(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> StreamState:
        """Read a state written by `save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(F=data["F"], h=data["h"], frames=data["frames"], height=int(data["height"]),
                           width=int(data["width"]), batched=bool(data["batched"]), dtype=str(data["dtype"]),
                           tile=int(data["tile"]))
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"{path}: not a stream state written by StreamState.save ({e})") from None


TILE = 512  # tile side when tiling switches on by itself
OVERLAP = 64  # pixels shared by neighbouring tiles, blended with linear ramps
# Frames above this many (padded) pixels are tiled when tile="auto": untiled, the CPU session needs about
# 2.6 KB a pixel (2.6 GB at 1280x720), so this keeps a stream under about 4 GB.
AUTO_TILE_PIXELS = 1_500_000


class _Tiling:
    """Same-size overlapping tiles covering a padded frame, each run as its own stream, and the weights that
    blend their outputs: linear ramps across every overlap, normalised to sum to one at each pixel."""

    def __init__(self, padded: tuple[int, int], tile: int, multiple: int) -> None:
        self.tile = tile
        size = self.size = (min(tile, padded[0]), min(tile, padded[1]))
        overlap = min(OVERLAP, tile // 4) // multiple * multiple or multiple
        ramps = [{start: self._ramp(length, start, side, overlap) for start in self._starts(length, side, overlap)}
                 for length, side in zip(padded, size)]
        self.boxes = [(y, x) for y in ramps[0] for x in ramps[1]]
        self.weights = [ramps[0][y][:, None] * ramps[1][x][None, :] for y, x in self.boxes]
        total = np.zeros(padded, np.float32)
        for (y, x), weight in zip(self.boxes, self.weights):
            total[y:y + size[0], x:x + size[1]] += weight
        self.inverse = 1 / total

    @staticmethod
    def _starts(length: int, side: int, overlap: int) -> list[int]:
        return [*range(0, length - side, side - overlap), length - side] if length > side else [0]

    @staticmethod
    def _ramp(length: int, start: int, side: int, overlap: int) -> np.ndarray:
        ramp = np.ones(side, np.float32)
        rising = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if start > 0:
            ramp[:overlap] = rising
        if start + side < length:
            ramp[side - overlap:] = rising[::-1]
        return ramp

    def __len__(self) -> int:
        return len(self.boxes)


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

    Large frames run in overlapping tiles of ``tile`` pixels, each tile a stream with its own state, blended
    where they overlap: memory then grows with the tile, not the frame (3840x2160 fits in 4 GiB), and the
    output stays far below codec noise from the untiled one (75-80 dB PSNR, `docs/BENCHMARKS.md`).

    Args:
        model: a `Model`, a shipped model's name ("full", the default, or "fast": `shipped_models`), a path to an
            .onnx (with its .json sidecar), or None for the full model.
        color: "rgb", or "bgr" for OpenCV's channel order.
        tile: tile side in pixels; "auto" tiles (with 512) only frames above 1.5 megapixels, which would need
            more than about 4 GB untiled; None never tiles.
        strength: how much of the model's correction to apply, from 0 (the input frame, unchanged) to 1 (the
            model's output): each output is ``input + strength * (model output - input)``. It may change between
            frames; the recurrent state is the model's either way.
    """

    def __init__(self, model: Model | str | Path | None = None, color: str = "rgb",
                 tile: int | str | None = "auto", strength: float = 1.0) -> None:
        self.model = model if isinstance(model, Model) else Model(model)
        self.color = check_color(color)
        if not (tile is None or tile == "auto" or self._tile_fits(tile)):
            raise ValueError(f"tile must be 'auto', None or a side of at least {self.model.min_tile} "
                             f"pixels, got {tile!r}")
        self.tile = tile
        self.strength = strength
        self.reset()

    @property
    def strength(self) -> float:
        """The share of the model's correction applied, 0 to 1 (the class docstring)."""
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        self._strength = check_strength(value)

    def _tile_fits(self, tile: object) -> bool:
        return isinstance(tile, int) and tile >= self.model.min_tile

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
        self._tiling: _Tiling | None = None  # with tiles, _state is a list of states, one per tile
        # Where the next state is written: the buffers of the state before, so that a long stream reuses two sets
        # (on a GPU, ONNX Runtime's allocator does this on the device)
        self._spare_state = None

    @property
    def state(self) -> StreamState | None:
        """The stream's `StreamState` (None before its first frame): assign it to another Deblurrer of the same
        model to continue the stream there, buffered frames included."""
        if self._state is None:
            return None
        n, height, width = self._shape
        states = self._state if self._tiling else [self._state]
        f, h = (np.concatenate([state[k].numpy() for state in states]) for k in (0, 1))
        return StreamState(f, h, self._window[:, :3 * self._filled].copy(), height, width, self._batched,
                           self._dtype.name, self._tiling.tile if self._tiling else 0)

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
        padded = self.model.padded_size(value.height, value.width)
        if value.tile and not self._tile_fits(value.tile):
            raise ValueError(f"state's tile side {value.tile} is below this model's smallest, "
                             f"{self.model.min_tile}")
        tiling = _Tiling(padded, value.tile, self.model.pad_multiple) if value.tile else None
        tiles = len(tiling) if tiling else 1
        n = f.shape[0] // tiles if f.ndim == 4 else -1
        half = tuple(side // 2 for side in (tiling.size if tiling else padded))
        if f.shape != (tiles * n, cf, *half) or h.shape != (tiles * n, ch, *half) or n < 1:
            raise ValueError(f"state must hold F [{tiles} x N, {cf}, {half[0]}, {half[1]}] and h [{tiles} x N, {ch}, "
                             f"{half[0]}, {half[1]}] for {value.height}x{value.width} frames with this model"
                             f"{f' in {tiles} tiles' if tiling else ''}, got shapes {f.shape} and {h.shape}")
        if frames.ndim != 4 or frames.shape[0] != n or frames.shape[1] % 3 or frames.shape[1] >= 3 * self.model.window \
                or frames.shape[2:] != padded:
            raise ValueError(f"state's buffered frames must be [{n}, 3k, {padded[0]}, {padded[1]}] with k < "
                             f"{self.model.window}, got {frames.shape}")
        if np.dtype(value.dtype) not in DTYPES or (n != 1 and not value.batched):
            raise ValueError(f"state's dtype {value.dtype!r} or batching ({n} streams, batched={value.batched}) "
                             f"is not one a Deblurrer makes")
        if not (np.isfinite(f).all() and np.isfinite(h).all() and np.isfinite(frames).all()):
            raise ValueError("state contains NaN or infinite values")
        states = [self.model.state_from_numpy(f[i * n:(i + 1) * n], h[i * n:(i + 1) * n]) for i in range(tiles)]
        self.reset()
        self._shape, self._batched, self._dtype = (n, value.height, value.width), value.batched, np.dtype(value.dtype)
        self._tiling = tiling
        self._state = states if tiling else states[0]
        self._window = np.empty((n, 3 * self.model.window, *padded), np.float32)
        self._window[:, :frames.shape[1]] = frames
        self._filled = frames.shape[1] // 3

    @contextmanager
    def _unchanged_on_error(self) -> Iterator[None]:
        """Undo whatever a call did to the stream if it raises. The window buffer needs no copy: a step writes
        only slots past the filled ones, and slides into the spare buffer once its run has succeeded."""
        saved = (self._state, self._shape, self._batched, self._dtype, self._window, self._spare, self._filled,
                 self._tiling, self._spare_state)
        try:
            yield
        except BaseException:
            (self._state, self._shape, self._batched, self._dtype, self._window, self._spare, self._filled,
             self._tiling, self._spare_state) = saved
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
            tile = TILE if self.tile == "auto" and padded[0] * padded[1] > AUTO_TILE_PIXELS else self.tile
            if isinstance(tile, int) and (padded[0] > tile or padded[1] > tile):
                self._tiling = _Tiling(padded, tile, self.model.pad_multiple)
                self._state = [self.model.zero_state(n, *self._tiling.size) for _ in self._tiling.boxes]
            else:
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

    def _run_tiles(self) -> tuple[np.ndarray, list]:
        """One step of every tile, each with its own state, blended into the whole frame."""
        tiling, sharp = self._tiling, self._sharp
        th, tw = tiling.size
        sharp.fill(0)
        out = np.empty((sharp.shape[0], 3, th, tw), np.float32)
        states, spares = [], self._spare_state or [None] * len(tiling)
        for (y, x), weight, state, spare in zip(tiling.boxes, tiling.weights, self._state, spares):
            crop = np.ascontiguousarray(self._window[:, :, y:y + th, x:x + tw])
            _, new = self.model.run(crop, state, out, spare)
            sharp[:, :, y:y + th, x:x + tw] += out * weight
            states.append(new)
        sharp *= tiling.inverse
        return sharp, states

    def _run(self, dtype: np.dtype) -> np.ndarray:
        if self._sharp is None:
            self._sharp = np.empty((self._window.shape[0], 3, *self._window.shape[2:]), np.float32)
        if self.model.device == "cpu" and self._spare_state is None:
            n, height, width = self._shape
            size = self._tiling.size if self._tiling else self.model.padded_size(height, width)
            spares = [self.model.zero_state(n, *size) for _ in (self._tiling.boxes if self._tiling else [0])]
            self._spare_state = spares if self._tiling else spares[0]
        if self._tiling is None:
            sharp, state = self.model.run(self._window, self._state, self._sharp, self._spare_state)
        else:
            sharp, state = self._run_tiles()
        self._state, self._spare_state = state, (self._state if self.model.device == "cpu" else None)
        if self._strength != 1.0:  # in place, in float: strength 0 gives back the centre frame bit for bit
            centre = self._slot(self.model.m)
            sharp -= centre
            sharp *= self._strength
            sharp += centre
        _, height, width = self._shape
        out = from_planar(sharp, height, width, self.color, dtype)
        return out if self._batched else out[0]
