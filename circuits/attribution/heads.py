"""Attention heads in the frozen model: which heads carried each edge, and what each head's
own moved attention does.

In the frozen model every path from a source to a target is linear, so the part of an edge that
runs through head (layer, head) is `<g, dz>`: `g` the gradient of the target at that head's
output `z` (from a backward pass, batched over targets like the graph itself) and `dz` the
change of `z` when the source is removed (from a replay, batched over sources). A path through
several heads counts for each of them; what no head carries stays on the residual stream (or a
skip path), so for an edge between different positions the head shares say who moved it.

The graph cannot say what a head's attention moving does (a name mover that looks elsewhere on
the corrupted prompt): `moved_patterns` swaps each layer's corrupted-prompt pattern into the
frozen model and reads the change of every head's output against the target's total gradient.
"""

from dataclasses import replace
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.attribution.attribute import Injections, removal_scales
from circuits.attribution.graph import Graph
from circuits.attribution.influence import total_effects
from circuits.attribution.replacement import ReplacementModel, Replay, Trace
from circuits.hooks import PATTERN_HOOK, Z_HOOK, Hook


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
    replay, probes, _ = _probed_replay(model, trace)
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


def _probed_replay(
    model: ReplacementModel, trace: Trace
) -> tuple[Replay, list[Tensor], list[Tensor]]:
    """A replay (with autograd) whose head outputs each carry a zero probe to differentiate at;
    its probes; and the head outputs z it recorded, one [n_pos, n_heads, d_head] per layer."""
    probes = [
        torch.zeros(1, *_z_shape(model, trace), dtype=model.dtype, requires_grad=True)
        for _ in range(model.n_layers)
    ]
    captured: list[Tensor] = []
    with torch.enable_grad():
        replay = model.replay(trace, extra_hooks=_z_hooks(model, captured, probes), lean=True)
    return replay, probes, [z[0].detach() for z in captured]


def _z_shape(model: ReplacementModel, trace: Trace) -> tuple[int, int, int]:
    cfg = model.bridge.cfg
    return trace.n_pos, cfg.n_heads, cfg.d_head


def moved_patterns(
    model: ReplacementModel, graph: Graph, corrupt_tokens: Tensor
) -> Float[Tensor, "n_layers n_heads"]:
    """What each head's own attention moving does to the graph's (first) target: the target on
    the recorded prompt minus the target with that layer's patterns taken from `corrupt_tokens`
    (same length), everything else clean, in the frozen model with active features responding
    linearly (to first order: `<g, dz>`, `dz` the change of the head's output, `g` the target's
    total gradient there). Measured by running the corrupted prompt, not by a
    gradient through the softmax, so saturated or hard attention (a compiled count) counts too."""
    trace = model.trace(graph.index.tokens)
    corrupt = model.trace(corrupt_tokens)
    if corrupt.n_pos != trace.n_pos:
        raise ValueError(
            f"the corrupted prompt has {corrupt.n_pos} tokens and the clean one {trace.n_pos}: "
            "patterns can only be swapped between prompts of the same length"
        )
    replay, probes, clean = _probed_replay(model, trace)
    grads = _total_gradients_at_heads(model, trace, graph, replay, probes)
    out = torch.zeros(model.n_layers, model.bridge.cfg.n_heads, dtype=torch.float64)
    for layer in range(model.n_layers):
        name = PATTERN_HOOK.format(layer=layer)
        swapped = replace(trace, frozen={**trace.frozen, name: corrupt.frozen[name]})
        moved: list[Tensor] = []
        with torch.no_grad():
            model.replay(swapped, extra_hooks=_z_hooks(model, moved, None))
        dz = moved[layer][0] - clean[layer]  # [n_pos, n_heads, d_head]
        out[layer] = -(grads[layer] * dz).sum((0, 2)).double()
    return out


def _total_gradients_at_heads(
    model: ReplacementModel, trace: Trace, graph: Graph, replay: Replay, probes: list[Tensor]
) -> Float[Tensor, "n_layers n_pos n_heads d_head"]:
    """The gradient of the graph's targets at every head's output (`probes` of a probed
    `replay`) through every path, features included: the direct gradients of all rows, each
    weighted by its row's effect per unit (`total_effects`), in one backward pass."""
    _, per_unit = total_effects(graph)
    index = graph.index
    shape = _z_shape(model, trace)
    injections = Injections(model, trace, graph.targets)
    outputs = [*replay.mlp_in, replay.final]
    cotangents = [torch.zeros_like(x) for x in outputs]
    weight = per_unit[index.feature_start : index.target_start].to(model.dtype)
    for layer in range(model.n_layers):
        mine = injections.layer == layer
        cotangents[layer][0].index_put_(
            (injections.pos[mine],), weight[mine, None] * injections.enc[mine], accumulate=True
        )
    for t, pos in enumerate(injections.target_pos.tolist()):
        unit = float(per_unit[index.target_start + t])
        cotangents[-1][0, pos] += unit * injections.unembedded[t]
    used = [i for i, x in enumerate(outputs) if x.requires_grad]  # reached by some head
    grads = torch.autograd.grad(
        [outputs[i] for i in used],
        probes,
        grad_outputs=[cotangents[i] for i in used],
        allow_unused=True,
    )
    return torch.stack([probes[0].new_zeros(shape) if g is None else g[0] for g in grads])
