"""Views of a task circuit: a drawing for people (SVG/PNG via graphviz) and the graph JSON read
by the Neuronpedia / circuit-tracer viewer (`reference/formats.md`).

Drawing. The grid is computed here and handed to `neato -n2`, which keeps node positions as
given and only routes the edges (splines around nodes). One row per layer that holds nodes:
tokens at the bottom, then layer 0, 1, ..., the target at the top. One column per role position
that holds nodes, in prompt order. Nodes sharing a (layer, role) cell sit side by side, highest
influence first, two features to a line and further lines stacked within the layer's row; a
column is as wide as its widest cell, so columns line up across layers.
Layer names run down the left margin, role names along the bottom.

Viewer JSON conventions (a circuit aggregates prompts of different lengths and tokens):
- `ctx_idx` is the role's index in `circuit.roles`, the one position all prompts share; so
  `prompt_tokens` holds one entry per role (`role_tokens` gives the example prompt's token at
  each role) and the viewer's columns are the roles.
- Token node ids `E_{token_id}_{ctx}` use the first prompt's token id at the role when the caller
  passes `token_ids`, else the role's index (a stable per-role integer).
- The target (the task metric) is a logit node `{n_layers+1}_{token_id}_{ctx}` with token id
  `answer_id` when given, else 0 (the i-th of several targets: i); `token_prob` is 1.0 and the
  clerp ends in `(p=1.000)`, which the viewer parses.
- Error nodes are `{layer}_-1_{ctx}` (never the old `0_{layer}_{pos}` form).
"""

import contextlib
import html
import json
import math
import os
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuits.errors import CircuitsError
from circuits.run.circuit import Circuit, CircuitNode

VIEWER_SCHEMA_VERSION = 1

_FONT = "Helvetica"
_SIZES = {  # (width, height) in points
    "feature": (128.0, 62.0),
    "token": (100.0, 40.0),
    "error": (58.0, 24.0),
    "target": (150.0, 54.0),
}
_CELL_GAP = 16.0
"""Horizontal gap between nodes of one cell."""
_MAX_LINE = 2 * _SIZES["feature"][0] + _CELL_GAP
"""Widest line of nodes in one cell; more nodes go on further lines of the layer's row."""
_LINE_GAP = 14.0
_COL_GAP = 48.0
_ROW_GAP = 96.0
"""Vertical gap between rows: room for edges and their head labels."""
_LABEL_CHARS = 22
"""Wrap width of a feature's readable label (two lines at most)."""
_POSITIVE = (0x21, 0x66, 0xAC)
_NEGATIVE = (0xB2, 0x18, 0x2B)


# ---------------------------------------------------------------------------------------------
# shared


def _write_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to a temporary sibling of `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _check_roles(circuit: Circuit) -> None:
    roles = set(circuit.roles)
    for node in circuit.nodes:
        if node.role not in roles:
            raise ValueError(
                f"node {node.key} has role {node.role!r}, which is not in circuit.roles "
                f"{circuit.roles}: add the role to the circuit's roles"
            )


def _example_token(
    circuit: Circuit, role: str, role_positions: dict[str, int] | None
) -> str | None:
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
    role's token node, else the role's name. Use it as `prompt_tokens` for `viewer_json`."""
    token_labels = {n.role: n.label for n in circuit.nodes if n.kind == "token" and n.label}
    out = []
    for role in circuit.roles:
        text = _example_token(circuit, role, role_positions)
        out.append(text if text is not None else token_labels.get(role, role))
    return out


# ---------------------------------------------------------------------------------------------
# drawing


@dataclass(frozen=True, kw_only=True)
class _Grid:
    pos: list[tuple[float, float]]
    """Centre of each node, in points (y grows upwards)."""
    rows: dict[int, float]
    """Layer -> y of its row."""
    cols: dict[str, float]
    """Role -> x of its column centre."""
    left: float
    bottom: float


def _cells(circuit: Circuit) -> dict[tuple[int, str], list[list[int]]]:
    """Node indices per (layer, role) cell, as lines of at most `_MAX_LINE` points: features
    by influence, errors last."""
    cells: dict[tuple[int, str], list[int]] = {}
    for i, node in enumerate(circuit.nodes):
        cells.setdefault((node.layer, node.role), []).append(i)
    out = {}
    for cell, members in cells.items():
        members.sort(
            key=lambda i: (
                circuit.nodes[i].kind == "error",
                -abs(circuit.nodes[i].influence),
                circuit.nodes[i].feature or 0,
            )
        )
        lines: list[list[int]] = [[]]
        for i in members:
            if lines[-1] and _line_width(circuit, [*lines[-1], i]) > _MAX_LINE:
                lines.append([])
            lines[-1].append(i)
        out[cell] = lines
    return out


def _line_width(circuit: Circuit, line: list[int]) -> float:
    return sum(_SIZES[circuit.nodes[i].kind][0] for i in line) + _CELL_GAP * (len(line) - 1)


def _line_height(circuit: Circuit, line: list[int]) -> float:
    return max(_SIZES[circuit.nodes[i].kind][1] for i in line)


def _stack_height(circuit: Circuit, lines: list[list[int]]) -> float:
    return sum(_line_height(circuit, line) for line in lines) + _LINE_GAP * (len(lines) - 1)


def _layout(circuit: Circuit) -> _Grid:
    cells = _cells(circuit)
    layers = sorted({layer for layer, _ in cells})
    roles = [r for r in circuit.roles if any((la, r) in cells for la in layers)]
    col_width = {
        r: max(_line_width(circuit, line) for la in layers for line in cells.get((la, r), []))
        for r in roles
    }
    row_height = {
        la: max(_stack_height(circuit, cells[(la, r)]) for r in roles if (la, r) in cells)
        for la in layers
    }
    cols, x = {}, 0.0
    for r in roles:
        cols[r] = x + col_width[r] / 2
        x += col_width[r] + _COL_GAP
    rows, y = {}, 0.0
    for la in layers:
        rows[la] = y + row_height[la] / 2
        y += row_height[la] + _ROW_GAP

    pos: list[tuple[float, float]] = [(0.0, 0.0)] * len(circuit.nodes)
    for (la, r), lines in cells.items():
        top = rows[la] + _stack_height(circuit, lines) / 2  # first line on top
        for line in lines:
            height = _line_height(circuit, line)
            x = cols[r] - _line_width(circuit, line) / 2
            for i in line:
                width = _SIZES[circuit.nodes[i].kind][0]
                pos[i] = (x + width / 2, top - height / 2)
                x += width + _CELL_GAP
            top -= height + _LINE_GAP
    return _Grid(pos=pos, rows=rows, cols=cols, left=-_COL_GAP, bottom=-_ROW_GAP / 2)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def _feature_fill(layer: int, n_layers: int) -> str:
    """Light to darker amber with depth."""
    return _mix((0xFF, 0xF4, 0xD6), (0xF2, 0xA6, 0x5A), layer / max(n_layers - 1, 1))


def _show_token(text: str) -> str:
    return '"' + text.replace("\n", "\\n").replace("\t", "\\t") + '"'


def _wrap(text: str, width: int, lines: int) -> list[str]:
    wrapped = textwrap.wrap(text, width) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1].rstrip() + "\u2026"
    return wrapped


def _html(*lines: tuple[str, int, str]) -> str:
    """An HTML-like graphviz label from (text, point size, style) lines; style in "", "b", "i"."""
    parts = []
    for n, (text, size, style) in enumerate(lines):
        body = html.escape(text, quote=False)
        if style:
            body = f"<{style}>{body}</{style}>"
        parts.append(f'<font point-size="{size}">{body}</font>')
        if style == "b" and n + 1 < len(lines):  # room for descenders (`logit_diff`)
            parts.append('<font point-size="2"> </font>')
    return "<" + "<br/>".join(parts) + ">"


def _node_attrs(
    circuit: Circuit, node: CircuitNode, role_positions: dict[str, int] | None
) -> dict[str, str]:
    width, height = _SIZES[node.kind]
    attrs = {"width": f"{width / 72:.3f}", "height": f"{height / 72:.3f}", "fixedsize": "true"}
    if node.kind == "feature":
        heading = f"L{node.layer} #{node.feature}"
        lines = [(heading, 10, "b")]
        if node.label and node.label != heading:
            lines += [(line, 9, "") for line in _wrap(node.label, _LABEL_CHARS, 2)]
        lines.append((node.role, 8, "i"))
        fill = _feature_fill(node.layer, circuit.n_layers)
        attrs |= {"shape": "box", "style": "rounded,filled", "fillcolor": fill, "color": "#9c6b30"}
    elif node.kind == "token":
        text = _example_token(circuit, node.role, role_positions)
        if text is None and node.label != node.role:  # a label that only repeats the role
            text = node.label
        lines = [(_show_token(text), 10, "b")] if text else []
        lines.append((node.role, 8, "i"))
        attrs |= {"shape": "box", "style": "rounded,filled", "fillcolor": "#dbe9f6"}
        attrs["color"] = "#3d6f9e"
    elif node.kind == "error":
        lines = [(f"err L{node.layer}", 8, "")]
        attrs |= {"shape": "box", "style": "filled", "fillcolor": "#e4e4e4", "color": "#9a9a9a"}
        attrs["fontcolor"] = "#555555"
    else:
        lines = [(circuit.metric, 11, "b")]
        if node.label and node.label != circuit.metric:
            lines += [(line, 9, "") for line in _wrap(node.label, _LABEL_CHARS, 1)]
        lines.append((f"target \u00b7 {node.role}", 8, "i"))
        attrs |= {"shape": "doubleoctagon", "style": "filled", "fillcolor": "#d5ecd4"}
        attrs["color"] = "#38761d"
    attrs["label"] = _html(*lines)
    return attrs


def _edge_attrs(weight: float, strongest: float, heads: list[tuple[str, float]]) -> dict[str, str]:
    strength = min(abs(weight) / strongest, 1.0) if strongest > 0 else 0.0
    rgb = _POSITIVE if weight >= 0 else _NEGATIVE
    colour = "#" + "".join(f"{c:02x}" for c in rgb)
    alpha = round(255 * (0.25 + 0.75 * strength))
    attrs = {
        "penwidth": f"{0.5 + 5.5 * strength:.2f}",
        "color": f"{colour}{alpha:02x}",
        "arrowsize": f"{0.4 + 0.3 * strength:.2f}",
    }
    if heads:
        name, share = heads[0]
        attrs |= {"label": f"{name} {share:.0%}", "fontsize": "7", "fontcolor": colour}
    return attrs


def _default_title(circuit: Circuit) -> str:
    dot = "\u00b7"
    return (
        f"{circuit.task} {dot} {circuit.model} {dot} {circuit.metric}, {circuit.n_prompts} prompts"
    )


def _row_name(layer: int, n_layers: int) -> str:
    return "tokens" if layer < 0 else "target" if layer >= n_layers else f"L{layer}"


def _graph(circuit: Circuit, title: str, role_positions: dict[str, int] | None) -> Any:
    import graphviz

    _check_roles(circuit)
    grid = _layout(circuit)
    legend = "blue: positive, red: negative; width by |weight|; edge label: top attention head"
    g = graphviz.Digraph(engine="neato")
    g.attr(
        splines="true",
        outputorder="edgesfirst",
        label=_html((title or _default_title(circuit), 14, "b"), (legend, 9, "")),
        labelloc="t",
        fontname=_FONT,
        bgcolor="white",
        pad="0.3",
    )
    g.attr("node", fontname=_FONT, penwidth="1.0")
    g.attr("edge", fontname=_FONT)

    def at(x: float, y: float) -> str:
        return f"{x:.1f},{y:.1f}!"

    axis = {"shape": "plaintext", "fontcolor": "#777777", "fontsize": "12"}
    for layer, y in grid.rows.items():
        name = _row_name(layer, circuit.n_layers)
        g.node(f"row:{layer}", name, pos=at(grid.left, y), **axis)
    for role, x in grid.cols.items():
        g.node(f"col:{role}", role, pos=at(x, grid.bottom), **axis)
    for i, node in enumerate(circuit.nodes):
        g.node(f"n{i}", pos=at(*grid.pos[i]), **_node_attrs(circuit, node, role_positions))
    strongest = max((abs(e.weight) for e in circuit.edges), default=0.0)
    for edge in sorted(circuit.edges, key=lambda e: abs(e.weight)):  # strongest drawn on top
        g.edge(
            f"n{edge.source}", f"n{edge.target}", **_edge_attrs(edge.weight, strongest, edge.heads)
        )
    return g


def _render(
    circuit: Circuit, path: Path, fmt: str, title: str, role_positions: dict[str, int] | None
) -> Path:
    import graphviz

    g = _graph(circuit, title, role_positions)
    if fmt == "png":
        g.attr(dpi="110")
    try:
        data = g.pipe(format=fmt, neato_no_op=2)
    except graphviz.ExecutableNotFound as e:
        raise CircuitsError(
            "graphviz's `neato` program was not found: install graphviz "
            "(e.g. `apt-get install graphviz`) to draw circuits"
        ) from e
    return _write_atomic(Path(path), data)


def render_svg(
    circuit: Circuit,
    path: Path,
    *,
    title: str = "",
    role_positions: dict[str, int] | None = None,
) -> Path:
    """Draw `circuit` as an SVG at `path` (written atomically) and return the path.

    `role_positions` (role -> position in the first prompt) lets token nodes show the example
    prompt's token at their role; without it they show their own label.
    """
    return _render(circuit, path, "svg", title, role_positions)


def render_png(
    circuit: Circuit,
    path: Path,
    *,
    title: str = "",
    role_positions: dict[str, int] | None = None,
) -> Path:
    """`render_svg`, as a PNG."""
    return _render(circuit, path, "png", title, role_positions)


# ---------------------------------------------------------------------------------------------
# viewer JSON


def _viewer_node(circuit: Circuit, node: CircuitNode, ctx: int, token_id: int) -> dict[str, Any]:
    if node.kind == "feature":
        if node.feature is None or node.feature < 0:
            raise ValueError(f"feature node {node.key} has feature index {node.feature!r}")
        layer, feature = str(node.layer), node.feature
        kind, clerp = "cross layer transcoder", node.label
    elif node.kind == "error":
        layer, feature = str(node.layer), -1
        kind, clerp = "mlp reconstruction error", node.label or f"error L{node.layer}"
    elif node.kind == "token":
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
        "token_prob": 1.0 if node.kind == "target" else 0.0,
        "is_target_logit": node.kind == "target",
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
) -> dict[str, Any]:
    """The circuit in the Neuronpedia / circuit-tracer graph JSON (see the module docstring for
    how roles, token ids and the metric target are mapped).

    `prompt_tokens` has one entry per role (`role_tokens(circuit, role_positions)`);
    `token_ids` maps roles to the first prompt's token ids; `answer_id` is the answer's token id.
    """
    if len(prompt_tokens) != len(circuit.roles):
        raise ValueError(
            f"prompt_tokens has {len(prompt_tokens)} entries but the circuit has "
            f"{len(circuit.roles)} roles {circuit.roles}: ctx_idx is the role's index, so pass "
            f"one token per role, e.g. role_tokens(circuit, role_positions)"
        )
    _check_roles(circuit)
    ctx_of = {role: i for i, role in enumerate(circuit.roles)}
    targets = [i for i, n in enumerate(circuit.nodes) if n.kind == "target"]
    nodes = []
    for i, node in enumerate(circuit.nodes):
        ctx = ctx_of[node.role]
        if node.kind == "token":
            token_id = (token_ids or {}).get(node.role, ctx)
        elif node.kind == "target":
            token_id = (
                answer_id if answer_id is not None and len(targets) == 1 else targets.index(i)
            )
        else:
            token_id = 0
        nodes.append(_viewer_node(circuit, node, ctx, token_id))
    ids = [n["node_id"] for n in nodes]
    links = []
    for e in circuit.edges:
        assert 0 <= e.source < len(ids) and 0 <= e.target < len(ids), f"edge {e} out of range"
        if _finite_or_none(e.weight) is None:
            raise ValueError(f"edge {ids[e.source]} -> {ids[e.target]} has weight {e.weight}")
        links.append({"source": ids[e.source], "target": ids[e.target], "weight": float(e.weight)})
    assert len(set(ids)) == len(ids), f"duplicate node ids: {sorted(ids)}"
    id_set = set(ids)
    assert all(lk["source"] in id_set and lk["target"] in id_set for lk in links)
    pinned = [
        n["node_id"] for n in nodes if n["feature_type"] in ("cross layer transcoder", "logit")
    ]
    return {
        "metadata": {
            "slug": slug,
            "scan": circuit.model,
            "prompt_tokens": list(prompt_tokens),
            "prompt": "".join(prompt_tokens),
            "node_threshold": float(node_threshold),
            "schema_version": VIEWER_SCHEMA_VERSION,
        },
        "qParams": {
            "pinnedIds": pinned,
            "supernodes": [],
            "linkType": "both",
            "clickedId": ids[targets[0]] if targets else "",
            "sg_pos": "",
        },
        "nodes": nodes,
        "links": links,
    }


def write_json(data: dict[str, Any], path: Path) -> Path:
    """Write `data` as JSON at `path`, atomically (strict JSON: no NaN or infinity)."""
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return _write_atomic(Path(path), text.encode("utf-8"))
