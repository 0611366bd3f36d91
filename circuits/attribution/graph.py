"""The attribution graph artifact: nodes, sparse direct-effect edges, values; saved as a
directory with `graph.json` (metadata and layout) and `graph.safetensors` (tensors)."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file, save_file
from torch import Tensor

from circuits.attribution.nodes import KINDS, NodeIndex, NodeKind
from circuits.attribution.targets import Target
from circuits.errors import AttributionError
from circuits.paths import atomic_dir

SCHEMA_VERSION = 1
GRAPH_KIND = "attribution_graph"


@dataclass(eq=False)
class Graph:
    """Direct effects among the nodes of one prompt; `edge_*` list the non-zero (or kept)
    entries of the adjacency `A[target node, source node]`."""

    index: NodeIndex
    edge_rows: Int[Tensor, " n_edges"]
    edge_cols: Int[Tensor, " n_edges"]
    edge_weights: Float[Tensor, " n_edges"]
    activations: Float[Tensor, " n_features"]
    """Feature activations: each feature's value as a source."""
    row_values: Float[Tensor, " n_rows"]
    """Value of each node that receives edges (features: pre-activation; targets: value), in
    node order from `index.feature_start`."""
    row_constants: Float[Tensor, " n_rows"]
    """The part of each row value that comes from biases, not from any node."""
    targets: list[Target]
    prompt: str = ""
    model: str = ""
    transcoders: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    head_edges: Int[Tensor, " n_resolved"] | None = None
    """Edges (indices into the edge list) resolved by attention head, if any (see `heads`)."""
    head_shares: Float[Tensor, "n_resolved n_layers n_heads"] | None = None
    """For each resolved edge, the part of its weight carried through each head."""

    @property
    def n_nodes(self) -> int:
        return self.index.n_nodes

    def adjacency(self) -> Tensor:
        """The sparse [n_nodes, n_nodes] adjacency (rows: targets of edges), coalesced."""
        n = self.n_nodes
        indices = torch.stack([self.edge_rows, self.edge_cols])
        return torch.sparse_coo_tensor(indices, self.edge_weights, (n, n)).coalesce()

    def dense_adjacency(self) -> Tensor:
        """The adjacency as a dense matrix; for small graphs and tests."""
        out = torch.zeros(self.n_nodes, self.n_nodes, dtype=self.edge_weights.dtype)
        out.index_put_((self.edge_rows, self.edge_cols), self.edge_weights, accumulate=True)
        return out

    def incoming(self) -> Float[Tensor, " n_rows"]:
        """Sum of the incoming edges of each row node."""
        sums = torch.zeros(self.n_nodes, dtype=self.edge_weights.dtype)
        sums.index_add_(0, self.edge_rows, self.edge_weights)
        return sums[self.index.feature_start :]

    def save(self, path: Path) -> Path:
        """Write the graph directory atomically (a temporary sibling renamed into place), never
        over a directory this tool did not write."""
        with atomic_dir(Path(path), kind=GRAPH_KIND) as tmp:
            self._write(tmp)
        return Path(path)

    def _write(self, tmp: Path) -> None:
        tensors = {
            "tokens": self.index.tokens,
            "features": self.index.features,
            "edge_rows": self.edge_rows,
            "edge_cols": self.edge_cols,
            "edge_weights": self.edge_weights,
            "activations": self.activations,
            "row_values": self.row_values,
            "row_constants": self.row_constants,
            "target_directions": torch.stack([t.direction for t in self.targets]),
        }
        if self.head_edges is not None and self.head_shares is not None:
            tensors |= {"head_edges": self.head_edges, "head_shares": self.head_shares}
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp / "graph.safetensors")
        meta = {
            "schema_version": SCHEMA_VERSION,
            "kind": GRAPH_KIND,
            "prompt": self.prompt,
            "model": self.model,
            "transcoders": self.transcoders,
            "n_layers": self.index.n_layers,
            "n_pos": self.index.n_pos,
            "node_layout": {
                "order": list(KINDS),
                "n_tokens": self.index.n_pos,
                "n_features": self.index.n_features,
                "n_errors": self.index.n_errors,
                "n_targets": self.index.n_targets,
            },
            "targets": [
                {"name": t.name, "pos": t.pos, "token": t.token, "probability": t.probability}
                for t in self.targets
            ],
            "config": self.config,
        }
        (tmp / "graph.json").write_text(json.dumps(meta, indent=1))

    def to_networkx(self):
        """A `networkx.DiGraph` view: nodes are typed node values with attributes `kind`,
        `layer`, `pos`, `value`, `label`; edges carry `weight`."""
        import networkx as nx

        g = nx.DiGraph()
        index = self.index
        layers = index.layer_of()
        for i in range(index.n_nodes):
            node = index.node(i)
            attrs: dict[str, Any] = {"kind": index.kind(i), "index": i}
            attrs["layer"] = int(layers[i])
            attrs["pos"] = getattr(node, "pos", None)
            if attrs["kind"] == NodeKind.FEATURE:
                attrs["value"] = float(self.activations[i - index.feature_start])
            elif attrs["kind"] == NodeKind.TARGET:
                attrs["value"] = float(self.row_values[i - index.feature_start])
                attrs["pos"] = self.targets[i - index.target_start].pos % index.n_pos
            g.add_node(node, **attrs)
        nodes = [index.node(i) for i in range(index.n_nodes)]
        for r, c, w in zip(
            self.edge_rows.tolist(),
            self.edge_cols.tolist(),
            self.edge_weights.tolist(),
            strict=True,
        ):
            g.add_edge(nodes[c], nodes[r], weight=w)
        return g


def load_graph(path: Path) -> Graph:
    """Read a graph directory written by `Graph.save`; refuses other kinds and versions."""
    path = Path(path)
    meta_path, tensor_path = path / "graph.json", path / "graph.safetensors"
    if not meta_path.exists() or not tensor_path.exists():
        raise AttributionError(
            f"{path} is not a graph directory (needs graph.json and graph.safetensors)"
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") != GRAPH_KIND or meta.get("schema_version") != SCHEMA_VERSION:
        raise AttributionError(
            f"{meta_path}: kind {meta.get('kind')!r} version {meta.get('schema_version')!r}; "
            f"this version reads {GRAPH_KIND!r} version {SCHEMA_VERSION}"
        )
    t = load_file(tensor_path)
    targets = [
        Target(
            name=m["name"],
            pos=m["pos"],
            direction=d,
            token=m["token"],
            probability=m["probability"],
        )
        for m, d in zip(meta["targets"], t["target_directions"], strict=True)
    ]
    index = NodeIndex(t["tokens"], t["features"], meta["n_layers"], [x.name for x in targets])
    return Graph(
        index=index,
        edge_rows=t["edge_rows"],
        edge_cols=t["edge_cols"],
        edge_weights=t["edge_weights"],
        activations=t["activations"],
        row_values=t["row_values"],
        row_constants=t["row_constants"],
        targets=targets,
        prompt=meta["prompt"],
        model=meta["model"],
        transcoders=meta["transcoders"],
        config=meta["config"],
        head_edges=t.get("head_edges"),
        head_shares=t.get("head_shares"),
    )
