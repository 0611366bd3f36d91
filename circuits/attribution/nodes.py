"""The nodes of an attribution graph and where each sits in the adjacency matrix.

This module alone knows the layout: tokens, then error nodes (by layer, position), then active
features (ordered by layer, position, feature), then targets. Rows of the adjacency are the
nodes that receive edges (features and targets, contiguous at the end), columns the nodes that
send them (tokens, errors, features).
"""

from dataclasses import dataclass
from enum import StrEnum

import torch
from jaxtyping import Int
from torch import Tensor


@dataclass(frozen=True, order=True)
class TokenNode:
    pos: int
    token: int


@dataclass(frozen=True, order=True)
class FeatureNode:
    layer: int
    pos: int
    feature: int


@dataclass(frozen=True, order=True)
class ErrorNode:
    layer: int
    pos: int


@dataclass(frozen=True, order=True)
class TargetNode:
    index: int
    """Index into the graph's targets."""
    name: str


Node = TokenNode | FeatureNode | ErrorNode | TargetNode


class NodeKind(StrEnum):
    """The four kinds of node, in the order their blocks appear in a graph's node index. A
    kind compares equal to its name, the string that files store."""

    TOKEN = "token"
    ERROR = "error"
    FEATURE = "feature"
    TARGET = "target"


KINDS = tuple(NodeKind)


class NodeIndex:
    """Offsets of every node; built from the prompt's tokens, the active features as rows of
    (layer, pos, feature), the number of layers and the target names."""

    def __init__(
        self,
        tokens: Int[Tensor, " n_pos"],
        features: Int[Tensor, "n_features 3"],
        n_layers: int,
        target_names: list[str],
    ) -> None:
        if len(features):
            key = (features[:, 0] * (len(tokens) + 1) + features[:, 1]) * (
                int(features[:, 2].max()) + 1
            ) + features[:, 2]
            assert bool((key[1:] > key[:-1]).all()), "features must be sorted and unique"
        self.tokens = tokens
        self.features = features
        self.n_layers = n_layers
        self.target_names = list(target_names)
        self.n_pos = len(tokens)
        self.n_features = len(features)
        self.n_errors = n_layers * self.n_pos
        self.n_targets = len(target_names)
        self.error_start = self.n_pos
        self.feature_start = self.error_start + self.n_errors
        self.target_start = self.feature_start + self.n_features
        self.n_nodes = self.target_start + self.n_targets

    # offsets
    def token(self, pos: int) -> int:
        return pos

    def error(self, layer: int, pos: int) -> int:
        return self.error_start + layer * self.n_pos + pos

    def target(self, index: int) -> int:
        return self.target_start + index

    def feature_slice(self, layer: int) -> slice:
        """The features of `layer`, as a slice of node indices."""
        layers = self.features[:, 0].contiguous()
        layer_ = torch.tensor(layer)
        start = int(torch.searchsorted(layers, layer_))
        stop = int(torch.searchsorted(layers, layer_, right=True))
        return slice(self.feature_start + start, self.feature_start + stop)

    @property
    def sources(self) -> slice:
        """Nodes that send edges: tokens, errors, features."""
        return slice(0, self.target_start)

    @property
    def rows(self) -> slice:
        """Nodes that receive edges: features and targets (errors and tokens have none)."""
        return slice(self.feature_start, self.n_nodes)

    def kind(self, index: int) -> NodeKind:
        if index < self.error_start:
            return NodeKind.TOKEN
        if index < self.feature_start:
            return NodeKind.ERROR
        if index < self.target_start:
            return NodeKind.FEATURE
        if index < self.n_nodes:
            return NodeKind.TARGET
        raise IndexError(f"node {index} out of range ({self.n_nodes} nodes)")

    def kinds(self) -> Int[Tensor, " n_nodes"]:
        """Each node's kind as an index into KINDS."""
        out = torch.empty(self.n_nodes, dtype=torch.long)
        out[: self.error_start] = KINDS.index(NodeKind.TOKEN)
        out[self.error_start : self.feature_start] = KINDS.index(NodeKind.ERROR)
        out[self.feature_start : self.target_start] = KINDS.index(NodeKind.FEATURE)
        out[self.target_start :] = KINDS.index(NodeKind.TARGET)
        return out

    def node(self, index: int) -> Node:
        kind = self.kind(index)
        if kind == NodeKind.TOKEN:
            return TokenNode(index, int(self.tokens[index]))
        if kind == NodeKind.FEATURE:
            layer, pos, feature = self.features[index - self.feature_start].tolist()
            return FeatureNode(layer, pos, feature)
        if kind == NodeKind.ERROR:
            layer, pos = divmod(index - self.error_start, self.n_pos)
            return ErrorNode(layer, pos)
        target = index - self.target_start
        return TargetNode(target, self.target_names[target])

    def index(self, node: Node) -> int:
        if isinstance(node, TokenNode):
            return self.token(node.pos)
        if isinstance(node, ErrorNode):
            return self.error(node.layer, node.pos)
        if isinstance(node, TargetNode):
            return self.target(node.index)
        row = torch.tensor([node.layer, node.pos, node.feature])
        hits = (self.features == row).all(-1).nonzero()
        if not len(hits):
            raise KeyError(f"{node} is not an active feature of this graph")
        return self.feature_start + int(hits[0])

    def layer_of(self) -> Int[Tensor, " n_nodes"]:
        """Each node's layer for drawing: -1 for tokens, n_layers for targets."""
        out = torch.empty(self.n_nodes, dtype=torch.long)
        out[: self.error_start] = -1
        out[self.error_start : self.feature_start] = torch.arange(self.n_layers).repeat_interleave(
            self.n_pos
        )
        out[self.feature_start : self.target_start] = self.features[:, 0]
        out[self.target_start :] = self.n_layers
        return out
