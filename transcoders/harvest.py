"""Stream (MLP input, MLP output) activations of every layer of a model, shuffled, in batches.

Activations are harvested through the TransformerBridge hooks `blocks.L.mlp.hook_in` (after
ln2; it fires without `set_use_hook_mlp_in`, which gates only the `blocks.L.hook_mlp_in` alias)
and `blocks.L.mlp.hook_out` (`blocks.L.hook_mlp_out` is its alias), from windows of a token
array that open at document starts, as the zoo models were trained. Position 0 of each window
(the end-of-text token) is left out: its activations are outliers no prompt needs explained.

The stream is cut into chunks of `buffer_tokens` rows. Chunk c is a function of (seed, c) only:
its windows are drawn from a generator seeded with (seed, c), harvested, and shuffled together.
So a run resumed at any batch rebuilds the same chunk and skips what it had consumed; the memory
in use is one chunk (`buffer_tokens x n_layers x 2 x d_model` float32), never the corpus.
"""

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.zoo.train import document_starts
from transcoders.config import HarvestConfig
from transcoders.errors import TranscoderError
from transcoders.transcoder_set import LayerHooks, mlp_hooks

log = logging.getLogger(__name__)


class Activations(NamedTuple):
    """MLP inputs and outputs of every layer for a batch of token positions."""

    mlp_in: Float[Tensor, "batch n_layers d_model"]
    mlp_out: Float[Tensor, "batch n_layers d_model"]


class _Harvested(Exception):
    """Raised by the last hook to skip the rest of the forward pass (final norm, unembedding)."""


def canonical_mlp_hooks(bridge: Any) -> list[LayerHooks]:
    """The MLP hooks of every layer under their canonical names (aliases resolved, so that no
    activation is read twice)."""
    hooks = []
    for layer in mlp_hooks(bridge.cfg.n_layers):
        names = []
        for name in (layer.hook_in, layer.hook_out):
            if name not in bridge.hook_dict:
                raise TranscoderError(f"the model has no hook {name}; it cannot host transcoders")
            names.append(bridge.hook_dict[name].name)
        hooks.append(LayerHooks(layer=layer.layer, hook_in=names[0], hook_out=names[1]))
    return hooks


def harvest(
    bridge: Any, ids: Int[Tensor, "batch pos"], *, include_bos: bool = False
) -> Activations:
    """MLP inputs and outputs of every layer at every position of `ids` (position 0 only with
    `include_bos`), rows ordered by (window, position)."""
    hooks = canonical_mlp_hooks(bridge)
    order = [name for h in hooks for name in (h.hook_in, h.hook_out)]
    seen: dict[str, Tensor] = {}

    def keep(tensor: Tensor, hook: Any) -> Tensor:
        seen[hook.name] = tensor
        if hook.name == order[-1]:
            raise _Harvested
        return tensor

    with torch.no_grad(), contextlib.suppress(_Harvested):
        bridge.run_with_hooks(ids, fwd_hooks=[(name, keep) for name in order])
    if missing := [name for name in order if name not in seen]:
        raise TranscoderError(f"hooks {missing} did not fire in a forward pass of the model")
    first = 0 if include_bos else 1

    def stack(names: list[str]) -> Tensor:
        # [batch, pos, d_model] per layer -> [batch * pos, n_layers, d_model]
        out = torch.stack([seen[n][:, first:] for n in names], dim=2)
        return out.reshape(-1, len(names), out.shape[-1]).float()

    return Activations(
        mlp_in=stack([h.hook_in for h in hooks]), mlp_out=stack([h.hook_out for h in hooks])
    )


def draw_windows(
    tokens: np.ndarray, starts: np.ndarray, n: int, seq_len: int, rng: np.random.Generator
) -> Int[Tensor, "n seq_len"]:
    """`n` windows of `seq_len` tokens, each opening with the end-of-text token before a
    document start drawn from `starts`."""
    chosen = starts[rng.integers(0, len(starts), size=n)]
    windows = np.stack([tokens[s - 1 : s - 1 + seq_len] for s in chosen]).astype(np.int64)
    return torch.from_numpy(windows)


def harvest_chunk(
    bridge: Any, tokens: np.ndarray, starts: np.ndarray, config: HarvestConfig, chunk: int
) -> Activations:
    """Chunk `chunk` of the stream: `buffer_tokens` rows, shuffled, a function of (seed, chunk)."""
    rng = np.random.default_rng([config.seed, chunk])
    windows = draw_windows(tokens, starts, config.windows_per_chunk, config.seq_len, rng)
    n_layers, d_model = bridge.cfg.n_layers, bridge.cfg.d_model
    n_rows = len(windows) * config.rows_per_window
    mlp_in = torch.empty(n_rows, n_layers, d_model)
    mlp_out = torch.empty(n_rows, n_layers, d_model)
    row = 0
    for ids in windows.split(config.windows_per_forward):
        acts = harvest(bridge, ids, include_bos=config.include_bos)
        mlp_in[row : row + len(acts.mlp_in)] = acts.mlp_in
        mlp_out[row : row + len(acts.mlp_out)] = acts.mlp_out
        row += len(acts.mlp_in)
    assert row == n_rows
    order = torch.from_numpy(rng.permutation(n_rows)[: config.buffer_tokens])
    return Activations(mlp_in=mlp_in[order], mlp_out=mlp_out[order])


def activation_batches(
    bridge: Any,
    tokens: np.ndarray,
    config: HarvestConfig,
    *,
    batch_size: int,
    eot: int,
    start: int = 0,
) -> Iterator[Activations]:
    """Shuffled batches of `batch_size` rows, without end; the first is batch number `start`
    (so a resumed run continues the stream where it stopped). `eot` separates documents."""
    if batch_size > config.buffer_tokens:
        raise ValueError(
            f"batch_size {batch_size} exceeds the shuffle buffer ({config.buffer_tokens} rows)"
        )
    starts = document_starts(tokens, eot, config.seq_len)
    per_chunk = config.buffer_tokens // batch_size
    chunk, offset = divmod(start, per_chunk)
    while True:
        log.debug("harvesting chunk %d", chunk)
        acts = harvest_chunk(bridge, tokens, starts, config, chunk)
        for i in range(offset, per_chunk):
            rows = slice(i * batch_size, (i + 1) * batch_size)
            yield Activations(mlp_in=acts.mlp_in[rows], mlp_out=acts.mlp_out[rows])
        chunk, offset = chunk + 1, 0
