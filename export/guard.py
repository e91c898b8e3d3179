"""The guard: scale the network's correction down where the input has no motion to be blurred by.

The network over-sharpens frames with little blur. Motion blur needs motion, and the model sees it: the frames
before and after the one it restores. The guard measures, per frame, how much the picture changes between them
against how much detail it holds, a classical normal-flow estimate (Horn and Schunck, 1981: the temporal
derivative over the spatial gradient) on the luma at half resolution:

    motion = sum |next - previous| / 2  /  sum (|d/dx centre| + |d/dy centre|)

about the motion in pixels per frame at half resolution for small motions (0 for a still camera on a still
scene), larger where the camera shakes. The correction (output minus centre frame) is multiplied by a ramp of it,
0 at ``low`` and below, 1 at ``high`` and above:

    sharp = centre + clamp((motion - low) / (high - low), 0, 1) * (network output - centre)

It is part of the model (`STRCNN(guard=...)`), so the exported ONNX graph carries it and every runtime behaves the
same. ``low`` and ``high`` are fitted on rendered training clips (``python -m export.fit_guard``), never on the
validation or test sets. A classical single-frame blur measure (Crété-Roffet et al., 2007) was the first arm and
lost: the picture's content moves it more than the blur does (docs/TRAINING.md, "The guard").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

LUMA = (0.299, 0.587, 0.114)  # BT.601 weights: the grey frames the measure reads
EPSILON = 1e-6  # a flat frame (no detail) measures its change against this


@dataclass(frozen=True)
class GuardConfig:
    """The guard's parameters: the ramp's ends on the motion measure."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < self.high:
            raise ValueError(f"a guard needs 0 <= low < high, got {self}")

    def describe(self) -> dict:
        """The guard as the sidecar states it."""
        return {"measure": "sum|next - previous| / 2 over sum(|dx| + |dy|) of the luma at half resolution, per frame",
                **asdict(self), "factor": "clamp((motion - low) / (high - low), 0, 1) scales sharp - centre"}


def luma_kernel(m: int) -> Tensor:
    """The weight [3, 3(2m+1), 2, 2] of one convolution of stride 2 that takes a window of 2m+1 RGB frames to
    the luma of frames m-1, m and m+1 at half resolution (2x2 means): one pass over the window, no copies."""
    kernel = torch.zeros(3, 3 * (2 * m + 1), 2, 2)
    for k in range(3):
        for c, weight in enumerate(LUMA):
            kernel[k, 3 * (m - 1 + k) + c] = weight / 4
    return kernel


def motion_measure(frames: Tensor, kernel: Tensor) -> Tensor:
    """The motion measure (module docstring) [N] of the centre frame of each window `frames` [N, 3(2m+1), H, W]
    in [0, 1] (H, W even), between the frames next to it; `kernel` is `luma_kernel(m)`."""
    previous, centre, following = F.conv2d(frames, kernel, stride=2).split(1, 1)
    change = (following - previous).abs().sum((1, 2, 3)) / 2
    detail = ((centre[:, :, :, 1:] - centre[:, :, :, :-1]).abs().sum((1, 2, 3))
              + (centre[:, :, 1:] - centre[:, :, :-1]).abs().sum((1, 2, 3)))
    return change / (detail + EPSILON)


class Guard(nn.Module):
    """Scales the correction per frame by the ramp of the motion measure (module docstring), for windows of 2m+1
    frames, m >= 1."""

    def __init__(self, config: GuardConfig, m: int) -> None:
        super().__init__()
        if m < 1:
            raise ValueError("a guard needs m >= 1: it measures the motion between the frames around the centre one")
        self.config, self.m = config, m
        self.register_buffer("kernel", luma_kernel(m), persistent=False)  # not a weight: no checkpoint holds it

    def factor(self, frames: Tensor) -> Tensor:
        """The correction's factor [N] for each window `frames` [N, 3(2m+1), H, W]."""
        c = self.config
        motion = motion_measure(frames.float(), self.kernel.float())  # in float32 also in a half-precision model
        return ((motion - c.low) / (c.high - c.low)).clamp(0.0, 1.0)

    def forward(self, frames: Tensor, correction: Tensor) -> Tensor:
        """The guarded output from the window `frames` [N, 3(2m+1), H, W] and the network's `correction` (its
        output minus the centre frame): the centre frame plus the scaled correction."""
        centre = frames[:, 3 * self.m:3 * self.m + 3]
        return centre + self.factor(frames).to(correction.dtype)[:, None, None, None] * correction
