"""The guard: scale the network's correction down where the input is already sharp, from the input alone.

The network over-sharpens frames with little blur. The guard measures, per frame, how blurred the centre frame
is with the no-reference measure of Crété-Roffet, Dolmiere, Ladret and Nicolas, "The Blur Effect: Perception
and Estimation with a New No-Reference Perceptual Blur Metric" (SPIE Electronic Imaging, 2007): re-blur the
grey frame (at half resolution, where it costs a quarter) with a box of `taps` pixels along each axis and see
how much of its neighbouring-pixel variation survives. A sharp frame loses much of it (measure near 0), a blurred one little (near 1). The correction
(output minus centre frame) is multiplied by a ramp of that measure, 0 at ``low`` and below, 1 at ``high``
and above:

    sharp = centre + clamp((blur - low) / (high - low), 0, 1) * (network output - centre)

It is part of the model (`STRCNN(guard=...)`), so the exported ONNX graph carries it and every runtime behaves
the same. ``low`` and ``high`` are fitted on rendered training clips (``python -m export.guard``), never on the
validation or test sets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

LUMA = (0.299, 0.587, 0.114)  # BT.601 weights: the grey frame the measure reads
EPSILON = 1e-6  # a flat frame (no variation) measures as sharp


@dataclass(frozen=True)
class GuardConfig:
    """The guard's parameters: the ramp's ends on the blur measure and the re-blur's length in pixels."""

    low: float
    high: float
    taps: int = 9

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < self.high <= 1.0 or self.taps < 3 or self.taps % 2 == 0:
            raise ValueError(f"a guard needs 0 <= low < high <= 1 and an odd taps >= 3, got {self}")

    def describe(self) -> dict:
        """The guard as the sidecar states it."""
        return {"measure": "Crete-Roffet et al. 2007 no-reference blur of the centre frame's luma, per frame",
                **asdict(self), "factor": "clamp((blur - low) / (high - low), 0, 1) scales sharp - centre"}


def _step(x: Tensor, dim: int) -> Tensor:
    """|x[i] - x[i - 1]| along `dim` (2: rows, 3: columns)."""
    return (x.narrow(dim, 1, x.shape[dim] - 1) - x.narrow(dim, 0, x.shape[dim] - 1)).abs()


def blur_measure(rgb: Tensor, taps: int = 9) -> Tensor:
    """Crété-Roffet et al.'s blur measure of each frame of `rgb` [N, 3, H, W] in [0, 1] (H, W even), read on its
    luma at half resolution (2x2 means): a tensor [N] in [0, 1], higher for more blur (the larger of the vertical
    and horizontal figures). `taps` is odd, in half-resolution pixels."""
    grey = F.avg_pool2d(sum(w * rgb[:, c:c + 1] for c, w in enumerate(LUMA)), 2)  # half resolution: a quarter of the cost
    measures = []
    for kernel, dim in (((taps, 1), 2), ((1, taps), 3)):
        blurred = F.avg_pool2d(grey, kernel, stride=1, padding=[k // 2 for k in kernel], count_include_pad=False)
        d_frame, d_blurred = _step(grey, dim), _step(blurred, dim)
        kept = (d_frame - d_blurred).clamp(min=0.0)
        s_frame, s_kept = d_frame.sum((1, 2, 3)), kept.sum((1, 2, 3))
        measures.append((s_frame - s_kept) / (s_frame + EPSILON))
    return torch.maximum(*measures)


class Guard(nn.Module):
    """Scales the correction per frame by the ramp of the centre frame's blur measure (module docstring)."""

    def __init__(self, config: GuardConfig) -> None:
        super().__init__()
        self.config = config

    def factor(self, centre: Tensor) -> Tensor:
        """The correction's factor for each frame [N] of `centre` [N, 3, H, W]."""
        c = self.config
        return ((blur_measure(centre.float(), c.taps) - c.low) / (c.high - c.low)).clamp(0.0, 1.0)

    def forward(self, centre: Tensor, correction: Tensor) -> Tensor:
        """The guarded output: `centre` plus the scaled `correction` (the network's output minus `centre`)."""
        return centre + self.factor(centre).to(correction.dtype)[:, None, None, None] * correction
