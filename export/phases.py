"""The network rewritten to work at half resolution only, for export: the same function, a faster graph.

Three layers of STRCNN work at full resolution: the first convolution (5x5 over the 2m+1 frames), the
transposed convolution that brings the decoder back up, and the last convolution (3x3 to RGB). ONNX Runtime runs
them far below its speed on the half-resolution trunk: its transposed convolution has no int8 kernel and a slow
float one, and convolutions with few channels at many pixels spend their time rearranging data. Each is an exact
rewrite on the 2x2 phases of its full-resolution image (the four pixels of each 2x2 block as channels
``c * 4 + 2 * row + column``, PyTorch's pixel (un)shuffle order):

- the first convolution: a 6x6 convolution of stride 2 over the frames, giving its output's four phases;
- the stride-2 convolution after it: a 3x3 convolution over those phases (phase (0, 0) of a stride-1 one);
- the transposed convolution (4x4, stride 2): a 3x3 convolution giving its output's four phases;
- the last convolution: a 3x3 convolution from those phases to the output's, then one pixel shuffle; it gives
  16 channels, the last 4 zero and dropped after the shuffle, as ONNX Runtime's int8 convolution runs 12
  output channels at about a quarter of the speed of 16.

Everything between is unchanged, so `STRCNN.forward` runs the rewritten layers as it runs the originals. More
multiply-adds (about 1.1x), all in convolutions that quantize to int8 and fill the CPU's kernels.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .model import STRCNN


def _conv(weight: Tensor, bias: Tensor, stride: int = 1, padding: int = 1) -> nn.Conv2d:
    """A convolution holding these weights, in their dtype."""
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], stride=stride, padding=padding,
                     dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


def _phase_taps(k: int):
    """For a stride-1 'same' convolution of odd size k read on 2x2 phases: every (output phase p, kernel tap t)
    with the input phase r and the offset d in {-1, 0, 1} of the half-resolution pixel it reads (p + t = 2d + r)."""
    half = k // 2
    for p in (0, 1):
        for t in range(-half, half + 1):
            d, r = divmod(p + t, 2)
            yield p, t + half, r, d + 1


def phase_weight(weight: Tensor) -> Tensor:
    """A stride-1 'same' convolution's weight [C_out, C_in, k, k] (k = 3 or 5) as the 3x3 convolution's weight
    [4 C_out, 4 C_in, 3, 3] that maps the phases of its input to the phases of its output."""
    c_out, c_in, k, _ = weight.shape
    out = weight.new_zeros(c_out, 2, 2, c_in, 2, 2, 3, 3)
    for py, ty, ry, dy in _phase_taps(k):
        for px, tx, rx, dx in _phase_taps(k):
            out[:, py, px, :, ry, rx, dy, dx] += weight[:, :, ty, tx]
    return out.reshape(4 * c_out, 4 * c_in, 3, 3)


def first_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A 5x5 'same' convolution as a 6x6 convolution of stride 2 giving its output's phases: output phase p
    reads input pixels 2a + p - 2 ... 2a + p + 2, which are taps p ... p + 4 of a window from 2a - 2."""
    w = conv.weight.detach()
    c_out, c_in, k, _ = w.shape
    out = w.new_zeros(c_out, 2, 2, c_in, k + 1, k + 1)
    for py in (0, 1):
        for px in (0, 1):
            out[:, py, px, :, py:py + k, px:px + k] = w
    return _conv(out.reshape(4 * c_out, c_in, k + 1, k + 1), conv.bias.detach().repeat_interleave(4), stride=2,
                 padding=k // 2)


def strided_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A 3x3 convolution of stride 2 (padding 1) as a 3x3 convolution over its input's phases: the stride-2
    output is phase (0, 0) of the stride-1 convolution."""
    w = conv.weight.detach()
    return _conv(phase_weight(w).reshape(w.shape[0], 4, 4 * w.shape[1], 3, 3)[:, 0], conv.bias.detach())


def transposed_conv(up: nn.ConvTranspose2d) -> nn.Conv2d:
    """A transposed convolution of kernel 4, stride 2, padding 1 as a 3x3 convolution giving its output's phases:
    output row 2a + r takes input rows a (tap 1) and a - 1 (tap 3) for r = 0, a + 1 (tap 0) and a (tap 2) for
    r = 1."""
    w = up.weight.detach()  # [C_in, C_out, 4, 4]
    c_in, c_out = w.shape[:2]
    taps = {0: {0: 3, 1: 1}, 1: {1: 2, 2: 0}}  # phase -> {3x3 position of the input pixel: kernel tap}
    out = w.new_zeros(c_out, 2, 2, c_in, 3, 3)
    for ry in (0, 1):
        for rx in (0, 1):
            for dy, ty in taps[ry].items():
                for dx, tx in taps[rx].items():
                    out[:, ry, rx, :, dy, dx] = w[:, :, ty, tx].t()
    return _conv(out.reshape(4 * c_out, c_in, 3, 3), up.bias.detach().repeat_interleave(4))


class FirstChannels(nn.Module):
    """The first `count` channels of a tensor [N, C, H, W]."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :self.count]


def half_resolution(model: STRCNN) -> STRCNN:
    """A copy of `model` computing the same function with every convolution at half resolution (module
    docstring); only the output's pixel shuffle touches full resolution."""
    if (model.up.kernel_size, model.up.stride, model.up.padding) != ((4, 4), (2, 2), (1, 1)):
        raise ValueError("half_resolution needs the upsampling of STRCNN: kernel 4, stride 2, padding 1")
    out = copy.deepcopy(model)
    out.in_conv = first_conv(model.in_conv)
    out.down = strided_conv(model.down)
    out.up = transposed_conv(model.up)
    weight, bias = phase_weight(model.out_conv.weight.detach()), model.out_conv.bias.detach().repeat_interleave(4)
    padded = _conv(torch.cat([weight, weight.new_zeros(4, *weight.shape[1:])]), torch.cat([bias, bias.new_zeros(4)]))
    out.out_conv = nn.Sequential(padded, nn.PixelShuffle(2), FirstChannels(3))
    return out.eval()
