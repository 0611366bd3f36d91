"""The graph JSON of a task circuit read by the Neuronpedia / circuit-tracer viewer
(`reference/formats.md`), and what it shares with the drawing (`circuits.run.drawing`): the
role check and the example prompt's token at each role.

Viewer JSON conventions (a circuit aggregates prompts of different lengths and tokens):
- `ctx_idx` is the role's index in `circuit.roles`, the one position all prompts share; so
  `prompt_tokens` holds one label per role, the role's name (`IO`, `S1+1`): a column merges the
  prompts' positions at that role, and many roles have no token in any one prompt. The real
  tokens of the first prompt are kept separately: `metadata.prompt` is its text,
  `metadata.example_tokens` its tokens and `metadata.example_roles` the role of each.
- Token node ids `E_{token_id}_{ctx}` use the first prompt's token id at the role when the caller
  passes `token_ids`, else the role's index (a stable per-role integer).
- The target (the task metric) is a logit node `{n_layers+1}_{token_id}_{ctx}` with token id
  `answer_id` when given, else 0 (the i-th of several targets: i); `token_prob` is 1.0 and the
  clerp ends in `(p=1.000)`, which the viewer parses.
- Error nodes are `{layer}_-1_{ctx}` (never the old `0_{layer}_{pos}` form).
- `qParams.supernodes` holds groups of nodes as `[label, node_id, node_id, ...]` lists.
"""

import json
import math
from pathlib import Path
from typing import Any

from circuits.attribution.nodes import NodeKind
from circuits.paths import write_file_atomic
from circuits.run.circuit import Circuit, CircuitNode

VIEWER_SCHEMA_VERSION = 1


# ---------------------------------------------------------------------------------------------
# shared


def check_roles(circuit: Circuit) -> None:
    """Raise `ValueError` for a node whose role is not one of `circuit.roles`."""
    roles = set(circuit.roles)
    for node in circuit.nodes:
        if node.role not in roles:
            raise ValueError(
                f"node {node.key} has role {node.role!r}, which is not in circuit.roles "
                f"{circuit.roles}: add the role to the circuit's roles"
            )


def example_token(circuit: Circuit, role: str, role_positions: dict[str, int] | None) -> str | None:
    """The example prompt's token at `role`, when the role's position is known."""
    if role_positions is None or role not in role_positions:
        return None
    pos = role_positions[role]
    if 0 <= pos < len(circuit.example_tokens):
        return circuit.example_tokens[pos]
    return None


def role_tokens(circuit: Circuit, role_positions: dict[str, int] | None = None) -> list[str]:
    """One display token per role, in `circuit.roles` order: the example prompt's token at the
    role's position (`role_positions`, positions in the first prompt), else the label of the
    role's token node, else the role's name (the drawing's and the page's column labels)."""
    token_labels = {n.role: n.label for n in circuit.nodes if n.kind == NodeKind.TOKEN and n.label}
    out = []
    for role in circuit.roles:
        text = example_token(circuit, role, role_positions)
        out.append(text if text is not None else token_labels.get(role, role))
    return out


# ---------------------------------------------------------------------------------------------
# viewer JSON


def _viewer_node(circuit: Circuit, node: CircuitNode, ctx: int, token_id: int) -> dict[str, Any]:
    if node.kind == NodeKind.FEATURE:
        if node.feature is None or node.feature < 0:
            raise ValueError(f"feature node {node.key} has feature index {node.feature!r}")
        layer, feature = str(node.layer), node.feature
        kind, clerp = "cross layer transcoder", node.label
    elif node.kind == NodeKind.ERROR:
        layer, feature = str(node.layer), -1
        kind, clerp = "mlp reconstruction error", node.label or f"error L{node.layer}"
    elif node.kind == NodeKind.TOKEN:
        layer, feature = "E", token_id
        kind, clerp = "embedding", node.label
    else:
        layer, feature = str(circuit.n_layers + 1), token_id
        kind, clerp = "logit", f"{node.label or circuit.metric} (p=1.000)"
    node_id = f"{layer}_{feature}_{ctx}"
    return {
        "node_id": node_id,
        "feature": feature,
        "layer": layer,
        "ctx_idx": ctx,
        "feature_type": kind,
        "token_prob": 1.0 if node.kind == NodeKind.TARGET else 0.0,
        "is_target_logit": node.kind == NodeKind.TARGET,
        "run_idx": 0,
        "reverse_ctx_idx": len(circuit.roles) - 1 - ctx,
        "jsNodeId": node_id,
        "clerp": clerp,
        "influence": _finite_or_none(node.influence),
        "activation": _finite_or_none(node.activation),
    }


def _finite_or_none(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def viewer_json(
    circuit: Circuit,
    *,
    slug: str,
    prompt_tokens: list[str],
    node_threshold: float,
    token_ids: dict[str, int] | None = None,
    answer_id: int | None = None,
    example_roles: list[str] | None = None,
    supernodes: list[list[str]] | None = None,
) -> dict[str, Any]:
    """The circuit in the Neuronpedia / circuit-tracer graph JSON (see the module docstring for
    how roles, token ids and the metric target are mapped).

    `prompt_tokens` has one label per role (`circuit.roles`); `token_ids` maps roles to the
    first prompt's token ids; `answer_id` is the answer's token id. With `example_roles` (the
    role of each of `circuit.example_tokens`), the metadata keeps the first prompt's real tokens
    (`prompt`, `example_tokens`, `example_roles`). `supernodes` are `[label, node_id, ...]`
    groups for `qParams.supernodes` (`check_supernodes`).
    """
    if len(prompt_tokens) != len(circuit.roles):
        raise ValueError(
            f"prompt_tokens has {len(prompt_tokens)} entries but the circuit has "
            f"{len(circuit.roles)} roles {circuit.roles}: ctx_idx is the role's index, so pass "
            f"one token per role, e.g. role_tokens(circuit, role_positions)"
        )
    check_roles(circuit)
    nodes = _viewer_nodes(circuit, token_ids, answer_id)
    ids = [n["node_id"] for n in nodes]
    assert len(set(ids)) == len(ids), f"duplicate node ids: {sorted(ids)}"
    links = _viewer_links(circuit, ids)
    targets = [i for i, n in enumerate(circuit.nodes) if n.kind == NodeKind.TARGET]
    pinned = [
        n["node_id"] for n in nodes if n["feature_type"] in ("cross layer transcoder", "logit")
    ]
    metadata = _viewer_metadata(circuit, slug, prompt_tokens, node_threshold, example_roles)
    return {
        "metadata": metadata,
        "qParams": {
            "pinnedIds": pinned,
            "supernodes": check_supernodes(supernodes or [], ids),
            "linkType": "both",
            "clickedId": ids[targets[0]] if targets else "",
            "sg_pos": "",
        },
        "nodes": nodes,
        "links": links,
    }


def _viewer_nodes(
    circuit: Circuit, token_ids: dict[str, int] | None, answer_id: int | None
) -> list[dict[str, Any]]:
    """Every node, its column the role's index; token ids as the module docstring says."""
    ctx_of = {role: i for i, role in enumerate(circuit.roles)}
    targets = [i for i, n in enumerate(circuit.nodes) if n.kind == NodeKind.TARGET]
    nodes = []
    for i, node in enumerate(circuit.nodes):
        ctx = ctx_of[node.role]
        if node.kind == NodeKind.TOKEN:
            token_id = (token_ids or {}).get(node.role, ctx)
        elif node.kind == NodeKind.TARGET:
            token_id = (
                answer_id if answer_id is not None and len(targets) == 1 else targets.index(i)
            )
        else:
            token_id = 0
        nodes.append(_viewer_node(circuit, node, ctx, token_id))
    return nodes


def _viewer_links(circuit: Circuit, ids: list[str]) -> list[dict[str, Any]]:
    """Every edge with its raw weight; a non-finite weight is refused."""
    links = []
    for e in circuit.edges:
        assert 0 <= e.source < len(ids) and 0 <= e.target < len(ids), f"edge {e} out of range"
        if _finite_or_none(e.weight) is None:
            raise ValueError(f"edge {ids[e.source]} -> {ids[e.target]} has weight {e.weight}")
        links.append({"source": ids[e.source], "target": ids[e.target], "weight": float(e.weight)})
    return links


def _viewer_metadata(
    circuit: Circuit,
    slug: str,
    prompt_tokens: list[str],
    node_threshold: float,
    example_roles: list[str] | None,
) -> dict[str, Any]:
    """The graph's metadata; with `example_roles`, the first prompt's real tokens too."""
    metadata: dict[str, Any] = {
        "slug": slug,
        "scan": circuit.model,
        "prompt_tokens": list(prompt_tokens),
        "prompt": "".join(prompt_tokens),
        "node_threshold": float(node_threshold),
        "schema_version": VIEWER_SCHEMA_VERSION,
    }
    if example_roles is not None:
        if len(example_roles) != len(circuit.example_tokens):
            raise ValueError(
                f"example_roles has {len(example_roles)} entries but the circuit's example "
                f"prompt has {len(circuit.example_tokens)} tokens: pass one role per token"
            )
        metadata["prompt"] = "".join(circuit.example_tokens)
        metadata["example_tokens"] = list(circuit.example_tokens)
        metadata["example_roles"] = list(example_roles)
    return metadata


def check_supernodes(supernodes: Any, node_ids: list[str]) -> list[list[str]]:
    """`supernodes` as `qParams.supernodes` wants them, `[label, node_id, ...]` lists naming
    nodes of the graph; raise `ValueError` naming the first bad group."""
    if not isinstance(supernodes, list):
        raise ValueError(f"supernodes must be a list of [label, node_id, ...], got {supernodes!r}")
    known = set(node_ids)
    out = []
    for group in supernodes:
        if (
            not isinstance(group, list)
            or len(group) < 2
            or not all(isinstance(x, str) for x in group)
        ):
            raise ValueError(
                f"a supernode must be [label, node_id, ...] with at least one node, got {group!r}"
            )
        unknown = [x for x in group[1:] if x not in known]
        if unknown:
            raise ValueError(f"supernode {group[0]!r} names nodes not in the graph: {unknown}")
        out.append(list(group))
    return out


def write_json(data: dict[str, Any], path: Path) -> Path:
    """Write `data` as JSON at `path`, atomically (strict JSON: no NaN or infinity)."""
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return write_file_atomic(Path(path), text.encode("utf-8"))
