"""Check a circuit by interventions on the real model (not the linear replacement).

The model runs with every MLP replaced by its transcoder plus an error term, recomputed live, so
that with nothing ablated it is exactly the original model. The nodes are those of the
attribution graphs: the features active on the clean prompt and the error terms. Ablating a node
means giving it the value it has on the prompt's paired corrupted prompt (resample ablation: the
task file pairs each clean prompt with a counterfactual of the same length); everything
downstream is recomputed, attention included, and features inactive on the clean prompt are
not nodes: they stay live. Then, with m the task metric averaged over the prompts:

    faithfulness  = (m(circuit only) - m(nothing)) / (m(model) - m(nothing))
    completeness  = (m(all but the circuit) - m(nothing)) / (m(model) - m(nothing))

where "circuit only" ablates every feature and error node outside the circuit and "nothing"
ablates all of them (lower completeness is better: the circuit carries the effect).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from circuits.hooks import Hook
from transcoders.transcoder_set import TranscoderSet


@dataclass(frozen=True)
class Keep:
    """What one prompt keeps at its clean value; everything else takes its corrupted value.
    Masks may carry a leading batch dimension: one copy of the prompt per mask."""

    features: list[Tensor]
    """Per layer, a boolean mask [(batch,) n_pos, d_transcoder]."""
    errors: list[Tensor]
    """Per layer, a boolean mask [(batch,) n_pos]."""

    @staticmethod
    def stack(keeps: Sequence["Keep"]) -> "Keep":
        n_layers = len(keeps[0].features)
        return Keep(
            [torch.stack([k.features[i] for k in keeps]) for i in range(n_layers)],
            [torch.stack([k.errors[i] for k in keeps]) for i in range(n_layers)],
        )


@dataclass(frozen=True)
class NodeRecord:
    """Per layer, a prompt's dense feature activations [n_pos, d_transcoder] and error vectors
    [n_pos, d_model]."""

    features: list[Tensor]
    errors: list[Tensor]

    def active(self) -> list[Tensor]:
        return [f != 0 for f in self.features]


@torch.no_grad()
def record_nodes(bridge: Any, tset: TranscoderSet, tokens: Tensor) -> NodeRecord:
    features, errors = [], []
    names = {n for h in tset.hooks for n in (h.hook_in, h.hook_out)}
    _, cache = bridge.run_with_cache(tokens[None], names_filter=names.__contains__)
    for layer, hooks in enumerate(tset.hooks):
        transcoder = tset[layer]
        x, out = cache[hooks.hook_in][0], cache[hooks.hook_out][0]
        f = transcoder.encode(x).features
        features.append(f)
        errors.append(out - transcoder.decode(f) - transcoder.skip_path(x))
    return NodeRecord(features, errors)


def patch_hooks(tset: TranscoderSet, keep: Keep, corrupt: NodeRecord) -> list[Hook]:
    """Hooks that rebuild each MLP output from live and corrupted node values."""
    hooks: list[Hook] = []
    for layer, names in enumerate(tset.hooks):

        def rebuilt(x: Tensor, out: Tensor, layer: int = layer) -> Tensor:
            transcoder = tset[layer]  # x: [batch, n_pos, d_model]
            live = transcoder.encode(x).features
            f = torch.where(keep.features[layer], live, corrupt.features[layer])
            error = out - transcoder.decode(live) - transcoder.skip_path(x)
            error = torch.where(keep.errors[layer][..., None], error, corrupt.errors[layer])
            return transcoder.decode(f) + transcoder.skip_path(x) + error

        hooks += names.rewriting(rebuilt)
    return hooks


@torch.no_grad()
def metric_with(
    bridge: Any,
    tset: TranscoderSet,
    tokens: Tensor,
    keep: Keep,
    corrupt: NodeRecord,
    metric: Callable[[Tensor], Tensor],
) -> float:
    """The metric (a function of the logits [n_pos, d_vocab]) with `keep` at clean values."""
    return float(metrics_with(bridge, tset, tokens, Keep.stack([keep]), corrupt, metric)[0])


@torch.no_grad()
def metrics_with(
    bridge: Any,
    tset: TranscoderSet,
    tokens: Tensor,
    keeps: Keep,
    corrupt: NodeRecord,
    metric: Callable[[Tensor], Tensor],
) -> Tensor:
    """The metric of each copy of the prompt, copy i keeping the masks `keeps[i]` (batched)."""
    batch = len(keeps.errors[0])
    logits = bridge.run_with_hooks(
        tokens[None].expand(batch, -1), fwd_hooks=patch_hooks(tset, keeps, corrupt)
    )
    return torch.stack([metric(row) for row in logits])


def full_keep(tset: TranscoderSet, n_pos: int) -> Keep:
    """Everything at its clean value: the original model."""
    d = tset[0].config.d_transcoder
    return Keep(
        features=[torch.ones(n_pos, d, dtype=torch.bool) for _ in range(tset.n_layers)],
        errors=[torch.ones(n_pos, dtype=torch.bool) for _ in range(tset.n_layers)],
    )


def circuit_keep(active: list[Tensor], chosen: Keep, *, inside: bool) -> Keep:
    """Clean values for the `chosen` nodes (`inside`) or for every node but them; features
    inactive on the clean prompt are not nodes and stay live either way."""
    if inside:
        return Keep([~a | c for a, c in zip(active, chosen.features, strict=True)], chosen.errors)
    return Keep(
        [~(a & c) for a, c in zip(active, chosen.features, strict=True)],
        [~e for e in chosen.errors],
    )


def faithfulness(model: float, nothing: float, kept: float) -> float:
    span = model - nothing
    return (kept - nothing) / span if abs(span) > 1e-9 else float("nan")


def mean_metric(
    bridge: Any,
    tset: TranscoderSet,
    prompts: Sequence[tuple[Tensor, NodeRecord, Callable[[Tensor], Tensor]]],
    keeps: Sequence[Keep],
) -> float:
    """The metric averaged over prompts (token ids, corrupted record, metric of the logits),
    prompt i keeping `keeps[i]`."""
    values = [
        metric_with(bridge, tset, tokens, keep, corrupt, metric)
        for (tokens, corrupt, metric), keep in zip(prompts, keeps, strict=True)
    ]
    return sum(values) / len(values)
