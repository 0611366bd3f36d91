"""Head-resolved edges: which attention heads carried each edge.

In the frozen model every path from a source to a target is linear, so the part of an edge that
runs through head (layer, head) is `<g, dz>`: `g` the gradient of the target at that head's
output `z` (from a backward pass, batched over targets like the graph itself) and `dz` the
change of `z` when the source is removed (from a replay, batched over sources). A path through
several heads counts for each of them; what no head carries stays on the residual stream (or a
skip path), so for an edge between different positions the head shares say who moved it.
"""

from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.attribution.attribute import Injections, removal_scales
from circuits.attribution.graph import Graph
from circuits.attribution.replacement import Hook, ReplacementModel, Trace

Z_HOOK = "blocks.{layer}.attn.o.hook_in"
"""Per-head attention outputs before the output projection: [batch, pos, n_heads, d_head]."""


def resolve_heads(
    model: ReplacementModel,
    graph: Graph,
    edges: Int[Tensor, " n"] | None = None,
    *,
    batch_size: int = 64,
) -> Float[Tensor, "n n_layers n_heads"]:
    """For each edge of `graph` listed in `edges` (indices into its edge list; default all),
    the part of its weight carried through each attention head."""
    edges = torch.arange(len(graph.edge_rows)) if edges is None else edges
    trace = model.trace(graph.index.tokens)
    rows = graph.edge_rows[edges] - graph.index.feature_start
    cols = graph.edge_cols[edges]
    unique_rows, row_of = rows.unique(return_inverse=True)
    unique_cols, col_of = cols.unique(return_inverse=True)
    grads = _gradients_at_heads(model, trace, graph, unique_rows, batch_size)
    deltas = _head_changes(model, trace, graph, unique_cols, batch_size)
    # [n, n_layers, n_heads]: sum over positions and d_head of g[row] * dz[col]
    return torch.einsum("nlphd,nlphd->nlh", grads[row_of], deltas[col_of])


def _z_hooks(
    model: ReplacementModel, captured: list[Tensor], probes: list[Tensor] | None
) -> list[Hook]:
    hooks: list[Hook] = []
    for layer in range(model.n_layers):

        def hook(z: Tensor, hook: Any, layer: int = layer) -> Tensor:
            out = z if probes is None else z + probes[layer]
            captured.append(out)
            return out

        hooks.append((Z_HOOK.format(layer=layer), hook))
    return hooks


def _gradients_at_heads(
    model: ReplacementModel, trace: Trace, graph: Graph, rows: Tensor, batch_size: int
) -> Float[Tensor, "n_rows n_layers n_pos n_heads d_head"]:
    shape = _z_shape(model, trace)
    probes = [
        torch.zeros(1, *shape, dtype=model.dtype, requires_grad=True) for _ in range(model.n_layers)
    ]
    captured: list[Tensor] = []
    with torch.enable_grad():
        replay = model.replay(trace, extra_hooks=_z_hooks(model, captured, probes), lean=True)
    injections = Injections(model, trace, graph.targets)
    out = []
    for lo in range(0, len(rows), batch_size):
        chunk = rows[lo : lo + batch_size].tolist()
        grads = injections.gradients(replay, probes, chunk)
        zeros = probes[0].new_zeros(len(chunk), *shape)
        out.append(torch.stack([zeros if g is None else g for g in grads], 1))
    return torch.cat(out)


def _head_changes(
    model: ReplacementModel, trace: Trace, graph: Graph, cols: Tensor, batch_size: int
) -> Float[Tensor, "n_cols n_layers n_pos n_heads d_head"]:
    """z on the recorded prompt minus z with each source removed."""
    index = graph.index
    clean: list[Tensor] = []
    with torch.no_grad():
        model.replay(trace, extra_hooks=_z_hooks(model, clean, None))
    out = []
    for lo in range(0, len(cols), batch_size):
        chunk = cols[lo : lo + batch_size].tolist()
        scales = removal_scales(trace, index, chunk)
        ablated: list[Tensor] = []
        with torch.no_grad():
            model.replay(trace, scales, extra_hooks=_z_hooks(model, ablated, None))
        out.append(torch.stack([c - a for c, a in zip(clean, ablated, strict=True)], 1))
    return torch.cat(out)


def _z_shape(model: ReplacementModel, trace: Trace) -> tuple[int, int, int]:
    cfg = model.bridge.cfg
    return trace.n_pos, cfg.n_heads, cfg.d_head
