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

from circuits.hooks import Hook
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
) -> list[Hook]:
    """Forward hooks for `bridge.run_with_hooks` that replace the MLP output of `layers` (default:
    all) by `replacement` (`transcoder` or `zero`) from position `0 if include_bos else 1` on."""
    if replacement not in REPLACEMENTS:
        raise ValueError(f"replacement must be one of {REPLACEMENTS}, got {replacement!r}")
    first = 0 if include_bos else 1
    hooks: list[Hook] = []
    for layer in range(tset.n_layers) if layers is None else layers:

        def spliced(x: Tensor, out: Tensor, layer: int = layer) -> Tensor:
            if observe is not None:
                observe(layer, x[:, first:], out[:, first:])
            new = torch.zeros_like(out) if replacement == "zero" else tset[layer](x).to(out.dtype)
            return torch.cat([out[:, :first], new[:, first:]], dim=1)

        hooks += tset.hooks[layer].rewriting(spliced)
    return hooks


def observe_hooks(
    tset: TranscoderSet, observe: Observer, *, include_bos: bool = False
) -> list[Hook]:
    """Hooks that only show each layer's (MLP input, MLP output) to `observe`, from position
    `0 if include_bos else 1` on; nothing changes."""
    first = 0 if include_bos else 1
    hooks: list[Hook] = []
    for layer, names in enumerate(tset.hooks):

        def shown(x: Tensor, out: Tensor, layer: int = layer) -> Tensor:
            observe(layer, x[:, first:], out[:, first:])
            return out

        hooks += names.rewriting(shown)
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
