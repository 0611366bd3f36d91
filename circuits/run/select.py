"""Which nodes make a task's circuit: scores, ranking, the feature cap, the edges drawn.

Feature and error nodes are scored by the first-order effect of resampling them from the
corrupted prompt, through the linear replacement model; the strongest candidates are then
measured one by one on the real model, and the circuit takes nodes in that order.
"""

from dataclasses import dataclass

import torch
from tqdm import tqdm

from circuits.attribution.attribute import site_gradients
from circuits.attribution.graph import Graph
from circuits.attribution.influence import prune_edges, total_effects
from circuits.attribution.nodes import NodeKind
from circuits.attribution.replacement import ReplacementModel
from circuits.attribution.targets import Target
from circuits.run.aggregate import MergedGraph
from circuits.run.config import RunConfig
from circuits.run.validate import Keep, NodeRecord, full_keep, metrics_with
from circuits.tasks import PromptSet


def resample_scores(
    model: ReplacementModel,
    graph: Graph,
    targets: list[Target],
    clean: NodeRecord,
    corrupt: NodeRecord,
) -> torch.Tensor:
    """How much resampling each node from the corrupted prompt would move the metric, to first
    order in the linear model (downstream features respond linearly): a feature's effect per
    unit of activation times its change; an error node's metric gradient at its site dotted
    with its change. Tokens and targets score 0 (they are never ablated)."""
    index = graph.index
    total, per_unit = total_effects(graph)
    score = torch.zeros(index.n_nodes, dtype=torch.float64)
    clean_act = graph.activations.double()
    layer, pos, feature = index.features.T
    corrupt_act = torch.zeros_like(clean_act)
    for i in range(index.n_layers):
        mine = layer == i
        corrupt_act[mine] = corrupt.features[i][pos[mine], feature[mine]].double()
    features = slice(index.feature_start, index.target_start)
    score[features] = total[features] / clean_act * (clean_act - corrupt_act)
    trace = model.trace(index.tokens)
    grads = site_gradients(model, trace, targets, per_unit[index.feature_start :])
    for i in range(index.n_layers):
        change = (clean.errors[i] - corrupt.errors[i]).to(grads[i].dtype)
        nodes = slice(index.error(i, 0), index.error(i, 0) + index.n_pos)
        score[nodes] = (grads[i] * change).sum(-1).double()
    return score


@dataclass(frozen=True)
class Ranking:
    """The order in which feature and error nodes join a circuit, and their effects on the
    metric (metric units)."""

    order: list[int]
    """Merged node indices, strongest first."""
    effect: torch.Tensor
    """Signed effect of resampling each merged node alone: positive where the node supports the
    metric (0 for tokens and the target)."""

    @property
    def weight(self) -> torch.Tensor:
        """|effect|: what nodes are ranked and selected by."""
        return self.effect.abs()


def feature_cap(graphs: list[Graph], config: RunConfig) -> int:
    mean_active = sum(g.index.n_features for g in graphs) / len(graphs)
    return max(1, int(config.max_feature_share * mean_active))


def rank_nodes(
    model: ReplacementModel,
    prompt_set: PromptSet,
    records: list[tuple[NodeRecord, NodeRecord]],
    merged: MergedGraph,
    names: list[list[str]],
    cap: int,
    config: RunConfig,
) -> Ranking:
    """Feature and error nodes by first-order score; the strongest `refine * cap` of them then
    re-ranked, ahead of the rest, by the effect on the metric of resampling each one alone on
    the real model (one batched forward pass per prompt)."""
    effect = merged.scores.clone()
    kinds = [k[0] for k in merged.keys]
    middle = [i for i, k in enumerate(kinds) if k in (NodeKind.FEATURE, NodeKind.ERROR)]
    order = sorted(middle, key=lambda i: -abs(float(effect[i])))
    candidates = order[: config.refine * cap]
    if not candidates:
        return Ranking(order, effect)
    effect[candidates] = single_node_effects(model, prompt_set, records, merged, candidates, names)
    refined = sorted(candidates, key=lambda i: -abs(float(effect[i])))
    return Ranking(refined + order[len(candidates) :], effect)


def single_node_effects(
    model: ReplacementModel,
    prompt_set: PromptSet,
    records: list[tuple[NodeRecord, NodeRecord]],
    merged: MergedGraph,
    candidates: list[int],
    names: list[list[str]],
) -> torch.Tensor:
    """Mean over prompts of m(model) - m(model with one candidate resampled), per candidate."""
    tset = model.transcoders
    effects = torch.zeros(len(candidates), dtype=torch.float64)
    prompts = list(zip(prompt_set.prompts, records, names, strict=True))
    for prompt, (_, corrupt), prompt_names in tqdm(
        prompts, desc="node effects", unit="prompt", leave=False
    ):
        full = full_keep(tset, len(prompt_names))
        keeps = []
        for i in candidates:
            node = chosen_nodes({merged.keys[i]}, prompt_names, model)
            keeps.append(
                Keep(
                    [f & ~n for f, n in zip(full.features, node.features, strict=True)],
                    [e & ~n for e, n in zip(full.errors, node.errors, strict=True)],
                )
            )
        keeps.append(full)
        values = metrics_with(
            model.bridge,
            tset,
            torch.tensor(prompt.tokens),
            Keep.stack(keeps),
            corrupt,
            lambda logits, p=prompt: prompt_set.metric_value(logits[p.position], p),
        )
        effects += (values[-1] - values[:-1]).double() / len(prompts)
    return effects


def select_nodes(
    merged: MergedGraph, ranking: Ranking, cap: int, config: RunConfig
) -> torch.Tensor:
    """Mask of merged nodes in the circuit: feature and error nodes in ranking order until they
    hold `node_threshold` of the total weight, with at most `cap` features (error nodes are not
    capped: they stand for what the transcoders miss); tokens and the target are always in."""
    kinds = [k[0] for k in merged.keys]
    keep = torch.tensor([k in (NodeKind.TOKEN, NodeKind.TARGET) for k in kinds])
    total = float(ranking.weight[ranking.order].sum())
    held, n_features = 0.0, 0
    for i in ranking.order:
        if held >= config.node_threshold * total:
            break
        if kinds[i] == NodeKind.FEATURE:
            if n_features >= cap:
                continue
            n_features += 1
        keep[i] = True
        held += float(ranking.weight[i])
    return keep


def circuit_edges(merged: MergedGraph, keep: torch.Tensor, config: RunConfig) -> torch.Tensor:
    """Mask of merged edges drawn in the circuit: among edges between kept nodes, those
    holding `edge_threshold` of the influence-weighted edge mass."""
    between = keep[merged.rows] & keep[merged.cols]
    subset = between.nonzero().squeeze(1)
    kinds = [k[0] for k in merged.keys]
    target = torch.tensor([k == NodeKind.TARGET for k in kinds], dtype=torch.float64)
    pruning = prune_edges(
        merged.rows[subset],
        merged.cols[subset],
        merged.weights[subset],
        is_token=torch.tensor([k == NodeKind.TOKEN for k in kinds]),
        is_error=torch.tensor([k == NodeKind.ERROR for k in kinds]),
        target_weights=target / target.sum(),
        node_threshold=1.0,
        edge_threshold=config.edge_threshold,
    )
    mask = torch.zeros_like(between)
    mask[subset[pruning.edge_mask]] = True
    return mask


def chosen_nodes(chosen: set, names: list[str], model: ReplacementModel) -> Keep:
    """One prompt's masks of the chosen merged keys."""
    n_pos, d = len(names), model.transcoders[0].config.d_transcoder
    features = [torch.zeros(n_pos, d, dtype=torch.bool) for _ in range(model.n_layers)]
    errors = [torch.zeros(n_pos, dtype=torch.bool) for _ in range(model.n_layers)]
    for kind, layer, feature, role in chosen:
        for pos, name in enumerate(names):
            if name == role and kind == NodeKind.FEATURE:
                features[layer][pos, feature] = True
            elif name == role and kind == NodeKind.ERROR:
                errors[layer][pos] = True
    return Keep(features, errors)
