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


def _grey(rgb: Tensor) -> Tensor:
    """Luma [N, 1, H/2, W/2] of RGB frames [N, 3, H, W] (H, W even), as 2x2 means: a quarter of the pixels."""
    return F.avg_pool2d(sum(w * rgb[:, c:c + 1] for c, w in enumerate(LUMA)), 2)


def motion_measure(previous: Tensor, centre: Tensor, following: Tensor) -> Tensor:
    """The motion measure (module docstring) of each frame [N] of `centre` [N, 3, H, W] in [0, 1] between
    `previous` and `following`, shaped like it."""
    grey = _grey(centre)
    change = (_grey(following) - _grey(previous)).abs().sum((1, 2, 3)) / 2
    detail = ((grey[:, :, :, 1:] - grey[:, :, :, :-1]).abs().sum((1, 2, 3))
              + (grey[:, :, 1:] - grey[:, :, :-1]).abs().sum((1, 2, 3)))
    return change / (detail + EPSILON)


class Guard(nn.Module):
    """Scales the correction per frame by the ramp of the motion measure (module docstring)."""

    def __init__(self, config: GuardConfig) -> None:
        super().__init__()
        self.config = config

    def factor(self, previous: Tensor, centre: Tensor, following: Tensor) -> Tensor:
        """The correction's factor for each frame [N] of `centre` [N, 3, H, W]."""
        c = self.config
        motion = motion_measure(previous.float(), centre.float(), following.float())
        return ((motion - c.low) / (c.high - c.low)).clamp(0.0, 1.0)

    def forward(self, frames: Tensor, correction: Tensor) -> Tensor:
        """The guarded output from the window `frames` [N, 3(2m+1), H, W], m >= 1, and the network's `correction`
        (its output minus the centre frame): the centre frame plus the scaled correction. The measure reads the
        frames next to the centre one."""
        m = frames.shape[1] // 6
        previous, centre, following = (frames[:, 3 * k:3 * k + 3] for k in (m - 1, m, m + 1))
        factor = self.factor(previous, centre, following).to(correction.dtype)[:, None, None, None]
        return centre + factor * correction
