"""Where the drawing of a task circuit puts things: the grid of nodes and the curves of its edges.
Pure geometry on plain tuples, apart from the looks (colours, text, SVG markup), which
`circuits.run.drawing` owns; kept apart so each can be read and changed on its own.

Grid. One row per layer that holds nodes: tokens at the bottom, then layer 0, 1, ..., the target
at the top. One column per role position that holds nodes, in prompt order. Nodes sharing a
(layer, role) cell sit side by side, highest influence first, two features to a line and further
lines stacked within the layer's row; a column is as wide as its widest cell, so columns line up
across layers. The grid's y grows upwards; boxes, ports and curves are in drawing coordinates,
whose y grows downwards (the grid's y negated).

Edges. An edge runs from the top of its source up to the bottom of its target as cubic Bezier
curves: straight up through each band of nodes between them at an x clear of those nodes, and
S-shaped between bands (`route`). An edge between nodes of one row arcs over them (`arc`). A
node's edges spread across its top and bottom in the order of the nodes at their other ends
(`edge_ports`).
"""

import itertools
from dataclasses import dataclass

from circuits.attribution.nodes import NodeKind
from circuits.run.circuit import Circuit

SIZES = {  # (width, height) in points
    "feature": (128.0, 62.0),
    "token": (100.0, 40.0),
    "error": (58.0, 24.0),
    "target": (150.0, 54.0),
}
"""Node kind -> the (width, height) of its shape, in points."""
_CELL_GAP = 16.0
"""Horizontal gap between nodes of one cell."""
_MAX_LINE = 2 * SIZES["feature"][0] + _CELL_GAP
"""Widest line of nodes in one cell; more nodes go on further lines of the layer's row."""
_LINE_GAP = 14.0
_COL_GAP = 48.0
_ROW_GAP = 96.0
"""Vertical gap between rows: room for edges and their head labels."""
_ARC_RISE = 36.0
"""How far an edge between nodes of one row rises above the higher of the two."""

Point = tuple[float, float]
Box = tuple[float, float, float, float]
"""x0, y0, x1, y1 in drawing coordinates (y grows downwards)."""
Segment = tuple[Point, Point, Point, Point]
"""A cubic Bezier curve: start, two control points, end."""
Extent = list[Point]
"""Points that everything drawn lies within."""


# ---------------------------------------------------------------------------------------------
# grid


@dataclass(frozen=True, kw_only=True)
class Grid:
    """Where the nodes of a circuit sit and where its axis names go."""

    pos: list[tuple[float, float]]
    """Centre of each node, in points (y grows upwards)."""
    rows: dict[int, float]
    """Layer -> y of its row."""
    cols: dict[str, float]
    """Role -> x of its column centre."""
    left: float
    """x of the layer names."""
    bottom: float
    """y of the role names."""


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
                circuit.nodes[i].kind == NodeKind.ERROR,
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
    return sum(SIZES[circuit.nodes[i].kind][0] for i in line) + _CELL_GAP * (len(line) - 1)


def _line_height(circuit: Circuit, line: list[int]) -> float:
    return max(SIZES[circuit.nodes[i].kind][1] for i in line)


def _stack_height(circuit: Circuit, lines: list[list[int]]) -> float:
    return sum(_line_height(circuit, line) for line in lines) + _LINE_GAP * (len(lines) - 1)


def layout(circuit: Circuit) -> Grid:
    """The grid of `circuit`: rows by layer, columns by role, each cell's nodes in lines."""
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
                width = SIZES[circuit.nodes[i].kind][0]
                pos[i] = (x + width / 2, top - height / 2)
                x += width + _CELL_GAP
            top -= height + _LINE_GAP
    return Grid(pos=pos, rows=rows, cols=cols, left=-_COL_GAP, bottom=-_ROW_GAP / 2)


# ---------------------------------------------------------------------------------------------
# edge routing


def node_boxes(circuit: Circuit, grid: Grid) -> list[Box]:
    """The box of each node's shape, in drawing coordinates."""
    out = []
    for (x, y), node in zip(grid.pos, circuit.nodes, strict=True):
        w, h = SIZES[node.kind]
        out.append((x - w / 2, -y - h / 2, x + w / 2, -y + h / 2))
    return out


def _bands(boxes: list[Box], top: float, bottom: float) -> list[tuple[float, float, list[Box]]]:
    """The boxes between heights `top` and `bottom`, grouped into bands that overlap in height,
    each band cut to that range; lowest band first."""
    inside = sorted((b for b in boxes if b[1] < bottom and b[3] > top), key=lambda b: -b[3])
    bands: list[tuple[float, float, list[Box]]] = []
    for b in inside:
        if bands and b[3] > bands[-1][0]:
            t, bot, members = bands[-1]
            bands[-1] = (min(t, b[1]), bot, [*members, b])
        else:
            bands.append((b[1], b[3], [b]))
    return [(max(t, top), min(bot, bottom), members) for t, bot, members in bands]


def _free_x(want: float, members: list[Box], margin: float) -> float:
    """An x `margin` clear of every box, near `want`: beside the box in the way, further into
    the gap the deeper `want` lies in the box, so that edges passing one gap spread out."""
    spans: list[list[float]] = []
    for x0, x1 in sorted((b[0] - margin, b[2] + margin) for b in members):
        if spans and x0 <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], x1)
        else:
            spans.append([x0, x1])
    for n, (x0, x1) in enumerate(spans):
        if x0 < want < x1:
            depth = 1 - abs(want - (x0 + x1) / 2) / ((x1 - x0) / 2)  # 0 at the border, 1 mid
            if want - x0 <= x1 - want:
                room = x0 - spans[n - 1][1] if n else 40.0
                return x0 - min(room, 40.0) * 0.5 * depth
            room = spans[n + 1][0] - x1 if n + 1 < len(spans) else 40.0
            return x1 + min(room, 40.0) * 0.5 * depth
    return want


def route(start: Point, end: Point, boxes: list[Box], margin: float) -> list[Segment]:
    """Curves from `start` up to `end`: through each band of nodes between them straight up at a
    free x (near the line from start to end), and S-shaped between bands."""
    (sx, sy), (ex, ey) = start, end
    points = [start]
    for top, bottom, members in _bands(boxes, ey, sy):
        if bottom - top < 0.5:
            continue
        t = (sy - (top + bottom) / 2) / (sy - ey)
        want = sx if sy - bottom < 40 else ex if top - ey < 40 else sx + t * (ex - sx)
        x = _free_x(want, members, margin)  # close to an end: the shortest way round
        for keep, at in ((bottom >= sy - 0.5, sx), (top <= ey + 0.5, ex)):
            if keep and _free_x(at, members, 0.0) == at:  # the band beside an end: stay put
                x = at
        points += [(x, bottom), (x, top)]
    points.append(end)
    segments = []
    for n, ((x0, y0), (x1, y1)) in enumerate(itertools.pairwise(points)):
        bend = 0.0 if n % 2 else (y0 - y1) / 2  # odd segments run straight up through a band
        segments.append(((x0, y0), (x0, y0 - bend), (x1, y1 + bend), (x1, y1)))
    return segments


def arc(start: Point, end: Point) -> Segment:
    """An arc over both ends, for an edge between two nodes of one row."""
    (sx, sy), (ex, ey) = start, end
    apex = min(sy, ey) - _ARC_RISE
    spread = 30.0 if abs(sx - ex) < 1 else 0.0  # an edge that starts where it ends
    return start, (sx - spread, apex), (ex + spread, apex), end


def edge_ports(circuit: Circuit, grid: Grid) -> list[tuple[float, float]]:
    """Per edge, the x where it leaves its source and where it enters its target: a node's
    edges spread across its width in the order of the nodes at their other ends."""
    ports = [(grid.pos[e.source][0], grid.pos[e.target][0]) for e in circuit.edges]
    for end in (0, 1):
        ends: dict[int, list[int]] = {}
        for k, e in enumerate(circuit.edges):
            ends.setdefault(e.target if end else e.source, []).append(k)
        for i, ks in ends.items():
            if len(ks) < 2:
                continue
            other = [circuit.edges[k].source if end else circuit.edges[k].target for k in ks]
            order = sorted(range(len(ks)), key=lambda j: (grid.pos[other[j]][0], other[j]))
            step = min(20.0, 0.8 * SIZES[circuit.nodes[i].kind][0] / (len(ks) - 1))
            for rank, j in enumerate(order):
                x = grid.pos[i][0] + (rank - (len(ks) - 1) / 2) * step
                ports[ks[j]] = (ports[ks[j]][0], x) if end else (x, ports[ks[j]][1])
    return ports


def bezier(seg: Segment, t: float) -> Point:
    """The point of the curve `seg` at parameter `t` (0 its start, 1 its end)."""
    a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = seg
    return a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3


def overlap(a: Box, b: Box) -> bool:
    """Whether boxes `a` and `b` share more than an edge."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
