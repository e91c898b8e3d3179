"""STRCNN+DTB: the online video deblurring network of Kim et al., ICCV 2017, with its ablation variants.

One time step maps 2m+1 blurry frames and the recurrent state (F, h~) to one sharp frame and the next state:

    frames [N, 3(2m+1), H, W], F [N, width/2, H/2, W/2], h [N, width, H/2, W/2]
        -> sharp [N, 3, H, W], F', h'

The variants are the paper's Table 1 ablation and share every layer except DTB's one convolution:

- ``"cnn"``: no recurrence; the state is passed through unused (zeros stand in for F).
- ``"strcnn"``: F from the previous step joins the input features (Section 4.1); h~ is passed through unused.
- ``"dtb"``: STRCNN plus dynamic temporal blending of h (Section 4.2, Eq. 2-3).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .guard import Guard, GuardConfig

VARIANTS = ("cnn", "strcnn", "dtb")


class ResBlock(nn.Module):
    """conv3x3-ReLU-conv3x3 plus the identity skip, no activation after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class DynamicTemporalBlending(nn.Module):
    """Eq. 2-3: w = min(1, |tanh(A h~_{n-1} + B h_n)| + beta); h~_n = w h_n + (1 - w) h~_{n-1}.

    A and B are one bias-free 5x5 convolution over the concatenation [h~_{n-1}, h_n] (same padding, so the
    border is blended like the interior). beta is a single scalar kept in [0, 1] as the sigmoid of a free
    parameter, so it receives a gradient everywhere, unlike a clamp.
    """

    def __init__(self, channels: int, beta: float = 0.5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, channels, 5, padding=2, bias=False)
        self.beta_logit = nn.Parameter(torch.logit(torch.tensor(beta)))

    @property
    def beta(self) -> Tensor:
        return torch.sigmoid(self.beta_logit)

    def forward(self, h: Tensor, h_prev: Tensor) -> Tensor:
        w = torch.clamp(torch.tanh(self.conv(torch.cat([h_prev, h], 1))).abs() + self.beta, max=1.0)
        return w * h + (1 - w) * h_prev


class STRCNN(nn.Module):
    """STRCNN+DTB and its ablations (see the module docstring); all choices are constructor arguments.

    Args:
        variant: ``"cnn"``, ``"strcnn"`` or ``"dtb"``.
        m: temporal radius; each step sees 2m+1 frames, the centre one being restored.
        width: channels of the residual trunk (64 in the paper); F has width/2 channels, h has width.
        residual: add the centre blurry frame to the decoded output (the paper leaves this open).
        guard: `GuardConfig` fields (``low``, ``high``) to scale the correction down where the input shows no
            motion to be blurred by (`export.guard`); None (the default, and always in training) leaves it.
    """

    def __init__(self, variant: str = "dtb", m: int = 1, width: int = 64, residual: bool = True,
                 guard: dict | None = None) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if m < 0 or width < 2 or width % 2:
            raise ValueError(f"need m >= 0 and an even width >= 2, got m={m}, width={width}")
        self.variant, self.m, self.width, self.residual = variant, m, width, residual
        self.f_channels, self.h_channels = width // 2, width
        self.in_conv = nn.Conv2d(3 * (2 * m + 1), width, 5, padding=2)
        self.down = nn.Conv2d(width, self.f_channels, 3, stride=2, padding=1)
        self.encoder = nn.Sequential(*(ResBlock(width) for _ in range(4)))
        self.dtb = DynamicTemporalBlending(width) if variant == "dtb" else None
        self.decoder = nn.Sequential(*(ResBlock(width) for _ in range(4)))
        self.f_head = nn.Conv2d(width, self.f_channels, 3, padding=1)
        self.up = nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)
        self.out_conv = nn.Conv2d(width, 3, 3, padding=1)
        self.guard = Guard(GuardConfig(**guard), m) if guard is not None else None

    def config(self) -> dict:
        """The constructor arguments, enough to rebuild this model around a state dict."""
        config = {"variant": self.variant, "m": self.m, "width": self.width, "residual": self.residual}
        if self.guard is not None:
            config["guard"] = dataclasses.asdict(self.guard.config)
        return config

    def init_state(self, n: int, height: int, width: int, *, device=None, dtype=None) -> tuple[Tensor, Tensor]:
        """Zero state (F, h~) for the first step of n streams of height x width frames (both even)."""
        if height % 2 or width % 2:
            raise ValueError(f"frame size must be even, got {height}x{width}")
        size = (height // 2, width // 2)
        return (torch.zeros(n, self.f_channels, *size, device=device, dtype=dtype),
                torch.zeros(n, self.h_channels, *size, device=device, dtype=dtype))

    def forward(self, frames: Tensor, f_prev: Tensor, h_prev: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step: (frames, F_{n-1}, h~_{n-1}) -> (L_n unclipped, F_n, h~_n)."""
        x = F.relu(self.down(F.relu(self.in_conv(frames))))
        recurrent = self.variant != "cnn"
        h = self.encoder(torch.cat([x, f_prev if recurrent else torch.zeros_like(f_prev)], 1))
        h_state = h_prev
        if self.dtb is not None:
            h = h_state = self.dtb(h, h_prev)  # h~_n: decoded now and carried to the next step
        y = self.decoder(h)
        sharp = self.out_conv(F.relu(self.up(y)))
        centre = frames[:, 3 * self.m:3 * self.m + 3]
        if self.guard is not None:  # the residual output is the correction itself: one full-resolution pass less
            sharp = self.guard(frames, sharp if self.residual else sharp - centre)
        elif self.residual:
            sharp = sharp + centre
        if not recurrent:
            return sharp, f_prev, h_prev
        return sharp, F.relu(self.f_head(y)), h_state

    def run(self, clip: Tensor, state: tuple[Tensor, Tensor] | None = None
            ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Restore every window of a clip [N, T, 3, H, W], T >= 2m+1, carrying the state through.

        Returns the T-2m sharp frames [N, T-2m, 3, H, W] (unclipped) and the final state.
        """
        n, t, _, height, width = clip.shape
        window = 2 * self.m + 1
        if t < window:
            raise ValueError(f"clip has {t} frames, a step needs {window}")
        f, h = state if state is not None else self.init_state(n, height, width, device=clip.device,
                                                                  dtype=clip.dtype)
        outputs = []
        for i in range(t - window + 1):
            sharp, f, h = self(clip[:, i:i + window].flatten(1, 2), f, h)
            outputs.append(sharp)
        return torch.stack(outputs, 1), (f, h)
