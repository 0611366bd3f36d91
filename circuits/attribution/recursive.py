"""Recursive direct-feature attribution: a subgraph grown from the targets, without the full
graph.

Starting from the targets, each round computes the incoming edges of the nodes on the frontier
(one backward pass per `batch_size` of them, as in the full graph), keeps each node's strongest
`beam` inputs above `threshold` of its total input, and puts the features among them on the next
frontier. Tokens and error nodes are leaves. The edges are exactly those of the full graph; only
fewer rows are computed. Every kept edge is then split by the attention heads that carried it.
"""

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from circuits.attribution.attribute import AttributionConfig, RowAttributor, make_graph, prepare
from circuits.attribution.graph import Graph
from circuits.attribution.heads import resolve_heads
from circuits.attribution.replacement import ReplacementModel
from circuits.attribution.targets import Target
from circuits.attribution.threads import engine_threads


@dataclass(frozen=True, kw_only=True)
class RecursiveConfig:
    """Limits of the expansion."""

    max_depth: int = 4
    """Rounds of expansion (a target's inputs are depth 1)."""
    beam: int = 8
    """Inputs kept per expanded node."""
    threshold: float = 0.02
    """Inputs below this share of the node's total absolute input are dropped."""
    max_nodes: int = 500
    """Stop expanding once this many feature nodes have been expanded."""
    batch_size: int = 64
    """Rows per backward pass."""
    heads: bool = True
    """Also resolve every kept edge by attention head (see `heads.resolve_heads`)."""
    threads: int | None = None
    """Backward passes run at once (see `AttributionConfig.threads`)."""

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")
        for name in ("max_depth", "beam", "max_nodes", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.threshold < 1:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")


def attribute_recursive(
    model: ReplacementModel,
    tokens: Tensor,
    targets: list[Target],
    config: RecursiveConfig | None = None,
    *,
    prompt: str = "",
) -> Graph:
    """The subgraph of the strongest direct contributors to `targets`, expanded recursively."""
    config = config or RecursiveConfig()
    with engine_threads(config.threads) as workers:
        return _attribute_recursive(model, tokens, targets, config, workers, prompt)


def _attribute_recursive(
    model: ReplacementModel,
    tokens: Tensor,
    targets: list[Target],
    config: RecursiveConfig,
    workers: int,
    prompt: str,
) -> Graph:
    trace, index = prepare(model, tokens, targets)
    attributor = RowAttributor(
        model,
        trace,
        targets,
        index,
        AttributionConfig(batch_size=config.batch_size, progress=False),
        workers=workers,
    )
    frontier = torch.arange(index.target_start, index.n_nodes) - index.feature_start
    expanded: set[int] = set()
    rows, cols, weights = [], [], []
    for _ in range(config.max_depth):
        if not len(frontier):
            break
        block = attributor.incoming(frontier)
        magnitude = block.abs()
        keep = magnitude.topk(min(config.beam, block.shape[1]), dim=1).indices
        mask = torch.zeros_like(block, dtype=torch.bool).scatter_(1, keep, True)
        mask &= magnitude > config.threshold * magnitude.sum(1, keepdim=True)
        mask &= block != 0
        r, c = mask.nonzero(as_tuple=True)
        rows.append(frontier[r])
        cols.append(c)
        weights.append(block[r, c])
        expanded.update(frontier.tolist())
        upstream = c[(c >= index.feature_start) & (c < index.target_start)] - index.feature_start
        fresh = sorted(set(upstream.tolist()) - expanded)
        room = config.max_nodes - (len(expanded) - index.n_targets)
        frontier = torch.tensor(fresh[: max(room, 0)], dtype=torch.long)
    edges = (torch.cat(rows), torch.cat(cols), torch.cat(weights))
    graph = make_graph(
        model,
        trace,
        targets,
        index,
        edges,
        prompt=prompt,
        config=asdict(config) | {"engine": "recursive", "n_backward": attributor.n_backward},
    )
    if config.heads and len(graph.edge_rows):
        graph.head_edges = torch.arange(len(graph.edge_rows))
        graph.head_shares = resolve_heads(
            model, graph, graph.head_edges, batch_size=config.batch_size
        )
    return graph
