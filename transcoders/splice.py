"""Run a model with some MLPs replaced: by their transcoders, or zero-ablated.

A spliced layer's `hook_out` returns the transcoder's output on the same pass's `hook_in` (or
zeros) at every position from 1 on; position 0 keeps the MLP's own output by default, as the
transcoders never saw the end-of-text position in training (see `harvest`).
"""

from collections.abc import Callable, Iterable
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from transcoders.transcoder_set import TranscoderSet

Observer = Callable[
    [int, Float[Tensor, "batch pos d_model"], Float[Tensor, "batch pos d_model"]], None
]
"""Called per layer with (layer, MLP input, true MLP output) at the replaced positions, before
the replacement."""

REPLACEMENTS = ("transcoder", "zero")


def splice_hooks(
    tset: TranscoderSet,
    layers: Iterable[int] | None = None,
    *,
    replacement: str = "transcoder",
    include_bos: bool = False,
    observe: Observer | None = None,
) -> list[tuple[str, Callable]]:
    """Forward hooks for `bridge.run_with_hooks` that replace the MLP output of `layers` (default:
    all) by `replacement` (`transcoder` or `zero`) from position `0 if include_bos else 1` on."""
    if replacement not in REPLACEMENTS:
        raise ValueError(f"replacement must be one of {REPLACEMENTS}, got {replacement!r}")
    first = 0 if include_bos else 1
    hooks: list[tuple[str, Callable]] = []
    for layer in range(tset.n_layers) if layers is None else layers:
        names = tset.hooks[layer]
        inputs: dict[str, Tensor] = {}

        def read(tensor: Tensor, hook: Any, inputs: dict[str, Tensor] = inputs) -> Tensor:
            inputs["x"] = tensor
            return tensor

        def write(
            tensor: Tensor,
            hook: Any,
            inputs: dict[str, Tensor] = inputs,
            layer: int = layer,
        ) -> Tensor:
            x = inputs.pop("x")
            if observe is not None:
                observe(layer, x[:, first:], tensor[:, first:])
            if replacement == "zero":
                new = torch.zeros_like(tensor)
            else:
                new = tset[layer](x).to(tensor.dtype)
            return torch.cat([tensor[:, :first], new[:, first:]], dim=1)

        hooks += [(names.hook_in, read), (names.hook_out, write)]
    return hooks


def observe_hooks(
    tset: TranscoderSet, observe: Observer, *, include_bos: bool = False
) -> list[tuple[str, Callable]]:
    """Hooks that only show each layer's (MLP input, MLP output) to `observe`, from position
    `0 if include_bos else 1` on; nothing changes."""
    first = 0 if include_bos else 1
    hooks: list[tuple[str, Callable]] = []
    for layer, names in enumerate(tset.hooks):
        inputs: dict[str, Tensor] = {}

        def read(tensor: Tensor, hook: Any, inputs: dict[str, Tensor] = inputs) -> Tensor:
            inputs["x"] = tensor
            return tensor

        def write(
            tensor: Tensor, hook: Any, inputs: dict[str, Tensor] = inputs, layer: int = layer
        ) -> Tensor:
            observe(layer, inputs.pop("x")[:, first:], tensor[:, first:])
            return tensor

        hooks += [(names.hook_in, read), (names.hook_out, write)]
    return hooks


def spliced_logits(
    bridge: Any,
    tset: TranscoderSet,
    ids: Int[Tensor, "batch pos"],
    layers: Iterable[int] | None = None,
    *,
    replacement: str = "transcoder",
) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits of `bridge` with the MLPs of `layers` (default: all) replaced."""
    with torch.no_grad():
        return bridge.run_with_hooks(
            ids, fwd_hooks=splice_hooks(tset, layers, replacement=replacement)
        )
