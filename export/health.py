"""The network's health: dead and silent ReLU channels and vanishing weights, which a falling loss does not show.

A channel of a convolution followed by a ReLU is *dead* when all its weights and its bias are below `DEAD` in
magnitude: its ReLU can never fire again and no gradient reaches it. It is *silent* when its ReLU never fires on
the clips seen (a live channel can be silent for a while and recover; a dead one cannot). Weights below `TINY`
make fp32 arithmetic denormal, which slows inference on CPUs by an order of magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .model import STRCNN

DEAD = 1e-6
TINY = 1e-12
WARN_SHARE = 0.10  # a share of dead or silent channels above this is a HEALTH WARNING


def relu_layers(model: STRCNN) -> dict[str, tuple[nn.Module, int]]:
    """Every convolution whose output goes through a ReLU, by name, with its output-channel dimension: in_conv,
    down, each ResBlock's conv1, f_head (recurrent variants only: cnn never runs it) and up (a ConvTranspose,
    whose output channels are dimension 1 of its weight)."""
    layers = {"in_conv": (model.in_conv, 0), "down": (model.down, 0)}
    for trunk in ("encoder", "decoder"):
        for i, block in enumerate(getattr(model, trunk)):
            layers[f"{trunk}.{i}.conv1"] = (block.conv1, 0)
    if model.variant != "cnn":
        layers["f_head"] = (model.f_head, 0)
    layers["up"] = (model.up, 1)
    return layers


def dead_channels(model: STRCNN) -> dict[str, tuple[int, int]]:
    """(dead, total) output channels of each ReLU layer."""
    counts = {}
    for name, (layer, dim) in relu_layers(model).items():
        weight = layer.weight.detach().abs().transpose(0, dim).flatten(1).amax(1)
        alive = weight >= DEAD
        if layer.bias is not None:
            alive |= layer.bias.detach().abs() >= DEAD
        counts[name] = (int((~alive).sum()), alive.numel())
    return counts


class Firing:
    """Context manager that records, for each ReLU layer, which output channels fire (are positive somewhere) on
    the forward passes run inside it."""

    def __init__(self, model: STRCNN) -> None:
        self.layers = relu_layers(model)
        self.fired: dict[str, torch.Tensor] = {}
        self._hooks: list = []

    def _hook(self, name: str):
        def record(module, inputs, output):
            fired = output.detach().amax(dim=(0, 2, 3)).float().cpu() > 0
            self.fired[name] = fired | self.fired[name] if name in self.fired else fired
        return record

    def __enter__(self) -> Firing:
        self._hooks = [layer.register_forward_hook(self._hook(name)) for name, (layer, _) in self.layers.items()]
        return self

    def __exit__(self, *exc) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def silent(self) -> dict[str, tuple[int, int]]:
        """(silent, total) output channels of each ReLU layer over the passes seen."""
        return {name: (int((~fired).sum()), fired.numel()) for name, fired in self.fired.items()}


@dataclass(frozen=True)
class Health:
    dead: float  # share of the ReLU layers' output channels that are dead
    silent: float | None  # share that never fired on the clips seen (None: no clips seen)
    tiny: float  # share of all parameters below TINY in magnitude

    @property
    def warning(self) -> bool:
        return self.dead > WARN_SHARE or (self.silent or 0.0) > WARN_SHARE

    def describe(self) -> str:
        silent = f"{100 * self.silent:.1f}%" if self.silent is not None else "not measured"
        return (f"health: dead channels {100 * self.dead:.1f}%, silent {silent}, weights below 1e-12 "
                f"{100 * self.tiny:.2f}%{' HEALTH WARNING' if self.warning else ''}")


def _share(counts: dict[str, tuple[int, int]]) -> float:
    return sum(c for c, _ in counts.values()) / sum(n for _, n in counts.values())


def census(model: STRCNN, firing: Firing | None = None) -> Health:
    """The model's health now; silent channels from `firing` when given."""
    parameters = torch.cat([p.detach().flatten().float() for p in model.parameters()])
    return Health(dead=_share(dead_channels(model)),
                  silent=_share(firing.silent()) if firing is not None and firing.fired else None,
                  tiny=float((parameters.abs() < TINY).float().mean()))
