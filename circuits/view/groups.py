"""Groups of circuit nodes (supernodes): the automatic proposals the page starts from, and their
form in graph.json (`qParams.supernodes`: `[label, node_id, ...]` lists).

Two proposals, both over feature nodes only (error nodes stand for what the transcoders miss,
and grouping them hides it), both groups of at least two:

- by role position: the features of one layer at one role (`L0 at S2`);
- by description: the features at one role whose labels say the same thing about the same
  kind of token (`on capitalised words at S2`, `on "." at END`): the verb of the label (`on`,
  `says`) and its token, where capitalised words and numbers count as one kind each.
"""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from circuits.attribution.nodes import NodeKind
from circuits.run.circuit import Circuit, CircuitNode

MIN_GROUP = 2
"""Fewest members of a proposed group."""
_LABEL = re.compile(r'^(?P<verb>on|says) (?P<token>".*")(?P<guess>\?)?$')


@dataclass(frozen=True, kw_only=True)
class Group:
    """A labelled group of circuit nodes."""

    label: str
    members: list[int]
    """Indices into `Circuit.nodes`."""

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError(f"group {self.label!r} has no members")


def group_by_position(circuit: Circuit) -> list[Group]:
    """The features of each (layer, role) cell, for cells holding at least MIN_GROUP."""
    cells: dict[tuple[int, str], list[int]] = {}
    for i, node in enumerate(circuit.nodes):
        if node.kind == NodeKind.FEATURE:
            cells.setdefault((node.layer, node.role), []).append(i)
    order = {role: k for k, role in enumerate(circuit.roles)}
    return [
        Group(label=f"L{layer} at {role}", members=_strongest_first(circuit, members))
        for (layer, role), members in sorted(cells.items(), key=lambda kv: (order[kv[0][1]], kv[0]))
        if len(members) >= MIN_GROUP
    ]


def description_key(node: CircuitNode) -> str | None:
    """What a feature's label says, with the token reduced to its kind where it is a
    capitalised word or a number (`on capitalised words`, `says numbers`, `on "."`); None for
    a label that is not `on "X"` / `says "X"` (a feature without a description)."""
    match = _LABEL.match(node.label)
    if match is None:
        return None
    try:
        token = json.loads(match["token"])
    except ValueError:
        token = match["token"]
    text = token.strip() if isinstance(token, str) else ""
    if text.isdigit():
        kind = "numbers"
    elif text[:1].isupper() and text.isalpha():
        kind = "capitalised words"
    else:
        kind = match["token"]
    return f"{match['verb']} {kind}"


def group_by_description(circuit: Circuit) -> list[Group]:
    """The features at each role whose `description_key` is the same (across layers), for keys
    shared by at least MIN_GROUP features."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, node in enumerate(circuit.nodes):
        key = description_key(node) if node.kind == NodeKind.FEATURE else None
        if key is not None:
            groups.setdefault((node.role, key), []).append(i)
    order = {role: k for k, role in enumerate(circuit.roles)}
    return [
        Group(label=f"{key} at {role}", members=_strongest_first(circuit, members))
        for (role, key), members in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0]))
        if len(members) >= MIN_GROUP
    ]


def _strongest_first(circuit: Circuit, members: list[int]) -> list[int]:
    return sorted(members, key=lambda i: (-circuit.nodes[i].influence, i))


def supernodes_json(groups: Sequence[Group], node_ids: Sequence[str]) -> list[list[str]]:
    """`groups` as `qParams.supernodes`: `[label, node_id, ...]`, `node_ids[i]` naming node i."""
    return [[g.label, *(node_ids[i] for i in g.members)] for g in groups]


def groups_from_supernodes(supernodes: object, node_ids: Sequence[str]) -> list[Group]:
    """The groups of a graph.json's `qParams.supernodes` (a list, or the JSON string some
    writers store), over the nodes named in `node_ids`. Members not in the graph are dropped,
    and so are groups left empty; anything that is not `[label, id, ...]` is refused."""
    if isinstance(supernodes, str):
        try:
            supernodes = json.loads(supernodes or "[]")
        except ValueError as err:
            raise ValueError(f"qParams.supernodes is not JSON: {err}") from err
    if not isinstance(supernodes, list):
        raise ValueError(f"qParams.supernodes must be a list, got {type(supernodes).__name__}")
    index = {node_id: i for i, node_id in enumerate(node_ids)}
    groups = []
    for raw in supernodes:
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
            raise ValueError(f"a supernode must be [label, node_id, ...], got {raw!r}")
        members = [index[x] for x in raw[1:] if x in index]
        if members:
            groups.append(Group(label=raw[0], members=members))
    return groups
