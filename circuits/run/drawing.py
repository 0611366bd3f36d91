"""A drawing of a task circuit for people: SVG text written here (no graphviz, no system program)
and a PNG rasterised from it by resvg (`resvg-py`) with matplotlib's bundled DejaVu fonts. Where
things go (the grid of layers by roles, the curves of the edges) is `circuits.run.layout`; this
module holds how they look and the files.

Layer names run down the left margin, role names along the bottom. Edges are drawn before the
nodes and weakest first, so the strongest lie on top. Blue is a positive weight, red a negative
one; width and opacity grow with |weight|; the label is the top attention head that carried the
edge. An edge ends in an arrowhead at the bottom of its target (at its top for an edge within
one row). Head labels sit near the middle of their curves, over all edges and under the nodes.

Markup, for tests and tools: each node is `<g class="node" id="n{i}">` holding its shape (`rect`
or `polygon`s) and one `text` per line; each edge is `<g class="edge" data-source="n{i}"
data-target="n{j}">` holding one `path` and its arrowhead `polygon`; a head label is `<g
class="label">` with the same data attributes; the axis names are `<text class="row">` and
`<text class="col">` with the name in `data-name`.
"""

import html
import logging
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from circuits.attribution.nodes import NodeKind
from circuits.errors import CircuitsError
from circuits.paths import write_file_atomic
from circuits.run.circuit import Circuit, CircuitNode
from circuits.run.export import check_roles, example_token
from circuits.run.layout import (
    SIZES,
    Box,
    Extent,
    Grid,
    Point,
    Segment,
    arc,
    bezier,
    edge_ports,
    layout,
    node_boxes,
    overlap,
    route,
)

log = logging.getLogger(__name__)

_FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
_PNG_DPI = 110.0
"""Pixels per inch of the PNG; the SVG is measured in points (72 per inch)."""
_LABEL_CHARS = 22
"""Wrap width of a feature's readable label (two lines at most)."""
_PAD = 21.6
"""Margin around the drawing (0.3 inch)."""
_POSITIVE = (0x21, 0x66, 0xAC)
_NEGATIVE = (0xB2, 0x18, 0x2B)
_AXIS_COLOUR = "#777777"
_LEGEND = (
    "blue: positive, red: negative; width and opacity by |weight|",
    'edge label "LxHy 116%": the attention head carrying most of the edge and its share of the '
    "edge's weight (over 100% when other heads cancel part of it)",
)
"""Lines under the title."""

# ---------------------------------------------------------------------------------------------
# looks of nodes and edges


@dataclass(frozen=True, kw_only=True)
class _Line:
    text: str
    size: float
    """Font size in points."""
    style: str = ""
    """"", "bold" or "italic"."""


@dataclass(frozen=True, kw_only=True)
class _Look:
    lines: list[_Line]
    fill: str
    stroke: str
    shape: str
    """"rounded", "box" or "octagon" (double-bordered)."""
    colour: str = "#000000"
    """Text colour."""


@dataclass(frozen=True, kw_only=True)
class _EdgeStyle:
    width: float
    colour: str
    """`#rrggbb`."""
    opacity: float
    arrow: float
    """Arrowhead size, 1 for a 10-point head on a hairline."""
    label: str


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def _feature_fill(layer: int, n_layers: int) -> str:
    """Light to darker amber with depth."""
    return _mix((0xFF, 0xF4, 0xD6), (0xF2, 0xA6, 0x5A), layer / max(n_layers - 1, 1))


def _show_token(text: str) -> str:
    return '"' + text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r") + '"'


def _wrap(text: str, width: int, lines: int) -> list[str]:
    wrapped = textwrap.wrap(text, width) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1].rstrip() + "\u2026"
    return wrapped


def _node_look(circuit: Circuit, node: CircuitNode, role_positions: dict[str, int] | None) -> _Look:
    if node.kind == NodeKind.FEATURE:
        heading = f"L{node.layer} #{node.feature}"
        lines = [_Line(text=heading, size=10.0, style="bold")]
        if node.label and node.label != heading:
            lines += [_Line(text=t, size=9.0) for t in _wrap(node.label, _LABEL_CHARS, 2)]
        lines.append(_Line(text=node.role, size=8.0, style="italic"))
        fill = _feature_fill(node.layer, circuit.n_layers)
        return _Look(lines=lines, fill=fill, stroke="#9c6b30", shape="rounded")
    if node.kind == NodeKind.TOKEN:
        text = example_token(circuit, node.role, role_positions)
        if text is None and node.label != node.role:  # a label that only repeats the role
            text = node.label
        lines = [_Line(text=_show_token(text), size=10.0, style="bold")] if text else []
        lines.append(_Line(text=node.role, size=8.0, style="italic"))
        return _Look(lines=lines, fill="#dbe9f6", stroke="#3d6f9e", shape="rounded")
    if node.kind == NodeKind.ERROR:
        lines = [_Line(text=f"err L{node.layer}", size=8.0)]
        return _Look(lines=lines, fill="#e4e4e4", stroke="#9a9a9a", shape="box", colour="#555555")
    lines = [_Line(text=circuit.metric, size=11.0, style="bold")]
    if node.label and node.label != circuit.metric:
        lines += [_Line(text=t, size=9.0) for t in _wrap(node.label, _LABEL_CHARS, 1)]
    lines.append(_Line(text=f"target \u00b7 {node.role}", size=8.0, style="italic"))
    return _Look(lines=lines, fill="#d5ecd4", stroke="#38761d", shape="octagon")


def _edge_style(weight: float, strongest: float, heads: list[tuple[str, float]]) -> _EdgeStyle:
    strength = min(abs(weight) / strongest, 1.0) if strongest > 0 else 0.0
    rgb = _POSITIVE if weight >= 0 else _NEGATIVE
    alpha = round(255 * (0.25 + 0.75 * strength))
    label = ""
    if heads:
        name, share = heads[0]
        label = f"{name} {share:.0%}"
    return _EdgeStyle(
        width=round(0.5 + 5.5 * strength, 2),
        colour="#" + "".join(f"{c:02x}" for c in rgb),
        opacity=round(alpha / 255, 3),
        arrow=round(0.4 + 0.3 * strength, 2),
        label=label,
    )


# ---------------------------------------------------------------------------------------------
# SVG text


_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NARROW = frozenset(" !'(),./:;I[]fijlrt|")
_WIDE = frozenset("%@MWmw")


def _escape(text: str) -> str:
    """`text` for SVG content or attributes; characters XML cannot hold become U+FFFD."""
    return html.escape(_INVALID_XML.sub("\ufffd", text))


def _em(char: str) -> float:
    return 0.36 if char in _NARROW else 0.9 if char in _WIDE else 0.7 if char.isupper() else 0.6


def _text_width(text: str, size: float, style: str = "") -> float:
    """Estimated width of `text` in DejaVu Sans, in points (bold is about 10% wider)."""
    ems = sum(_em(c) for c in text)
    return ems * size * (1.1 if style == "bold" else 1.0)


def _fit(line: _Line, width: float) -> str:
    """`line.text` cut with an ellipsis where it is estimated at over 1.3 x `width`."""
    text = line.text
    while len(text) > 2 and _text_width(text, line.size, line.style) > 1.3 * width:
        text = text[:-2] + "\u2026"
    return text


def _text(x: float, y: float, line: _Line, width: float, extra: str = "") -> str:
    """One line of text centred on `x` with its baseline at `y`, squeezed into `width` points
    where it is estimated wider."""
    text = _fit(line, width)
    attrs = f'x="{x:.1f}" y="{y:.1f}" font-size="{line.size:g}"'
    if line.style == "bold":
        attrs += ' font-weight="bold"'
    elif line.style == "italic":
        attrs += ' font-style="italic"'
    if _text_width(text, line.size, line.style) > width:
        attrs += f' textLength="{width:.1f}" lengthAdjust="spacingAndGlyphs"'
    return f"<text {attrs}{extra}>{_escape(text)}</text>"


def _block(x: float, y: float, lines: list[_Line], width: float) -> list[str]:
    """`lines` centred as a block on (x, y)."""
    gaps = [2.0 if a.style == "bold" else 0.0 for a in lines[:-1]] + [0.0]  # room for descenders
    top = y - (sum(1.2 * a.size for a in lines) + sum(gaps)) / 2
    out = []
    for line, gap in zip(lines, gaps, strict=True):
        out.append(_text(x, top + 0.87 * line.size, line, width))
        top += 1.2 * line.size + gap
    return out


def _octagon(x0: float, y0: float, x1: float, y1: float, inset: float = 0.0) -> str:
    x0, y0, x1, y1 = x0 + inset, y0 + inset, x1 - inset, y1 - inset
    cx, cy = min(14.0, (x1 - x0) / 4), (y1 - y0) * 0.3
    pts = [
        (x0 + cx, y0), (x1 - cx, y0), (x1, y0 + cy), (x1, y1 - cy),
        (x1 - cx, y1), (x0 + cx, y1), (x0, y1 - cy), (x0, y0 + cy),
    ]  # fmt: skip
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)


def _node_svg(i: int, look: _Look, centre: Point, size: Point) -> str:
    (x, y), (w, h) = centre, size
    x0, y0 = x - w / 2, y - h / 2
    paint = f'fill="{look.fill}" stroke="{look.stroke}" stroke-width="1"'
    if look.shape == "octagon":
        shape = (
            f'<polygon points="{_octagon(x0, y0, x0 + w, y0 + h)}" {paint}/>'
            f'<polygon points="{_octagon(x0, y0, x0 + w, y0 + h, 4.0)}" fill="none" '
            f'stroke="{look.stroke}" stroke-width="1"/>'
        )
        room = w - 2 * min(14.0, w / 4) - 4
    else:
        rx = ' rx="6" ry="6"' if look.shape == "rounded" else ""
        shape = f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{h:.1f}"{rx} {paint}/>'
        room = w - 8
    colour = f' fill="{look.colour}"' if look.colour != "#000000" else ""
    texts = "".join(_block(x, y, look.lines, room))
    return f'<g class="node" id="n{i}"{colour}>{shape}{texts}</g>'


def _edge_svg(
    circuit: Circuit, k: int, style: _EdgeStyle, port: Point, boxes: list[Box], extent: Extent
) -> tuple[str, "_Label | None"]:
    """Edge `k` and its head label, in drawing coordinates."""
    edge = circuit.edges[k]
    (_, s_top, _, _), (_, t_top, _, t_bottom) = boxes[edge.source], boxes[edge.target]
    length = 10 * style.arrow + 0.8 * style.width
    half = 0.4 * length + style.width / 2
    start, tx = (port[0], s_top), port[1]
    if t_bottom < s_top - length - 4:  # the target is above: into its bottom, pointing up
        tip, end = (tx, t_bottom), (tx, t_bottom + length)
        others = [b for i, b in enumerate(boxes) if i not in (edge.source, edge.target)]
        segments = route(start, end, others, style.width / 2 + 2.5)
    else:  # the same row: over the top into the target's top, pointing down
        tip, end = (tx, t_top), (tx, t_top - length)
        segments = [arc(start, end)]
    arrow = [tip, (end[0] - half, end[1]), (end[0] + half, end[1])]
    extent += [p for seg in segments for p in seg] + arrow
    d = f"M{start[0]:.1f},{start[1]:.1f}" + "".join(
        " C" + " ".join(f"{x:.1f},{y:.1f}" for x, y in seg[1:]) for seg in segments
    )
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in arrow)
    paint = f'stroke="{style.colour}" stroke-opacity="{style.opacity:g}"'
    ids = f'data-source="n{edge.source}" data-target="n{edge.target}"'
    path = (
        f'<g class="edge" {ids}><path d="{d}" fill="none" {paint} '
        f'stroke-width="{style.width:g}" stroke-linejoin="round"/>'
        f'<polygon points="{pts}" fill="{style.colour}" fill-opacity="{style.opacity:g}" '
        f'{paint} stroke-width="0.5" stroke-linejoin="round"/></g>'
    )
    if not style.label:
        return path, None
    longest = max(segments[::2], key=lambda seg: abs(seg[0][1] - seg[3][1]))  # the longest S
    return path, _Label(text=style.label, colour=style.colour, segment=longest, ids=ids)


@dataclass(frozen=True, kw_only=True)
class _Label:
    text: str
    colour: str
    segment: Segment
    """The curve it labels."""
    ids: str
    """The edge's data attributes."""


def _labels_svg(labels: list[_Label], extent: Extent) -> list[str]:
    """Head labels, the strongest edge's first, each at the spot nearest the middle of its curve
    that no label placed before covers."""
    placed: list[Box] = []
    out = []
    for label in labels:
        w = _text_width(label.text, 7.0) + 4
        for t in (0.5, 0.38, 0.62, 0.26, 0.74, 0.14, 0.86, 0.5):
            x, y = bezier(label.segment, t)
            box = (x - w / 2, y - 4.5, x + w / 2, y + 4.5)
            if not any(overlap(box, b) for b in placed):
                break
        placed.append(box)
        extent += [box[:2], box[2:]]
        out.append(
            f'<g class="label" {label.ids}><rect x="{box[0]:.1f}" y="{box[1]:.1f}" '
            f'width="{w:.1f}" height="9" rx="2" fill="white" fill-opacity="0.8"/>'
            + _text(x, y + 2.5, _Line(text=label.text, size=7.0), w, f' fill="{label.colour}"')
            + "</g>"
        )
    return out


def _axes_svg(circuit: Circuit, grid: Grid, extent: Extent) -> list[str]:
    """Layer names down the left margin, role names along the bottom."""
    out = []
    names = [("row", _row_name(la, circuit.n_layers), grid.left, -y) for la, y in grid.rows.items()]
    names += [("col", role, x, -grid.bottom) for role, x in grid.cols.items()]
    for cls, name, x, y in names:
        line = _Line(text=name, size=12.0)
        extra = f' class="{cls}" data-name="{_escape(name)}" fill="{_AXIS_COLOUR}"'
        out.append(_text(x, y + 0.35 * line.size, line, 1e6, extra))
        half = _text_width(name, line.size) / 2
        extent += [(x - half, y - line.size / 2), (x + half, y + line.size / 2)]
    return out


def _default_title(circuit: Circuit) -> str:
    dot = "\u00b7"
    return (
        f"{circuit.task} {dot} {circuit.model} {dot} {circuit.metric}, {circuit.n_prompts} prompts"
    )


def _row_name(layer: int, n_layers: int) -> str:
    return "tokens" if layer < 0 else "target" if layer >= n_layers else f"L{layer}"


def _svg(circuit: Circuit, title: str, role_positions: dict[str, int] | None) -> str:
    """The whole drawing as SVG text, measured in points."""
    check_roles(circuit)
    n = len(circuit.nodes)
    assert all(0 <= e.source < n and 0 <= e.target < n for e in circuit.edges), "edge out of range"
    grid = layout(circuit)
    extent: Extent = []
    strongest = max((abs(e.weight) for e in circuit.edges), default=0.0)
    ports, boxes = edge_ports(circuit, grid), node_boxes(circuit, grid)
    edges: list[str] = []
    labels: list[_Label] = []
    for k in sorted(range(len(circuit.edges)), key=lambda k: abs(circuit.edges[k].weight)):
        e = circuit.edges[k]  # weakest first: the strongest drawn on top
        style = _edge_style(e.weight, strongest, e.heads)
        path, label = _edge_svg(circuit, k, style, ports[k], boxes, extent)
        edges.append(path)
        labels += [label] if label else []
    label_svg = _labels_svg(labels[::-1], extent)  # the strongest edge's label placed first
    nodes = []
    for i, node in enumerate(circuit.nodes):
        (x, y), size = grid.pos[i], SIZES[node.kind]
        nodes.append(_node_svg(i, _node_look(circuit, node, role_positions), (x, -y), size))
        extent += [(x - size[0] / 2, -y - size[1] / 2), (x + size[0] / 2, -y + size[1] / 2)]
    axes = _axes_svg(circuit, grid, extent)

    heading = [
        _Line(text=title or _default_title(circuit), size=14.0, style="bold"),
        *(_Line(text=line, size=9.0) for line in _LEGEND),
    ]
    xs, ys = [p[0] for p in extent] or [0.0], [p[1] for p in extent] or [0.0]
    x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
    inner = max(x1 - x0, *(_text_width(a.text, a.size, a.style) for a in heading))
    width = inner + 2 * _PAD
    head = 1.2 * 14 + 2 + len(_LEGEND) * 1.2 * 9 + 14
    height = _PAD + head + (y1 - y0) + _PAD
    dx, dy = _PAD + (inner - (x1 - x0)) / 2 - x0, _PAD + head - y0
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.1f}pt" '
            f'height="{height:.1f}pt" viewBox="0 0 {width:.1f} {height:.1f}" '
            f'font-family="{_FONT}" text-anchor="middle" xml:space="preserve">',
            f'<rect width="{width:.1f}" height="{height:.1f}" fill="white"/>',
            '<g class="title">',
            *_block(width / 2, _PAD + (head - 14) / 2, heading, 1e6),
            "</g>",
            f'<g class="graph" transform="translate({dx:.1f} {dy:.1f})">',
            '<g class="axes">',
            *axes,
            '</g>\n<g class="edges">',
            *edges,
            '</g>\n<g class="labels">',
            *label_svg,
            '</g>\n<g class="nodes">',
            *nodes,
            "</g>\n</g>\n</svg>\n",
        ]
    )


# ---------------------------------------------------------------------------------------------
# files


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
    svg = _svg(circuit, title, role_positions)
    return write_file_atomic(Path(path), svg.encode("utf-8"))


def render_png(
    circuit: Circuit,
    path: Path,
    *,
    title: str = "",
    role_positions: dict[str, int] | None = None,
) -> Path:
    """`render_svg`, as a PNG at 110 pixels per inch."""
    png = _rasterise(_svg(circuit, title, role_positions))
    return write_file_atomic(Path(path), png)


def _rasterise(svg: str) -> bytes:
    """`svg` as PNG bytes, its text set in matplotlib's DejaVu Sans (so no system fonts needed;
    those installed still serve glyphs DejaVu lacks)."""
    try:
        import matplotlib
        import resvg_py
    except ImportError as e:
        raise CircuitsError(
            f"drawing a PNG needs resvg-py and matplotlib ({e}): pip install resvg-py matplotlib"
        ) from e
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    if not (fonts / "DejaVuSans.ttf").is_file():
        log.warning("matplotlib's DejaVu fonts are not in %s; the PNG uses system fonts", fonts)
    try:
        png = bytes(
            resvg_py.svg_to_bytes(
                svg_string=svg,
                dpi=_PNG_DPI,
                background="white",
                font_dirs=[str(fonts)],
                font_family="DejaVu Sans",
                sans_serif_family="DejaVu Sans",
            )
        )
    except Exception as e:  # resvg reports every failure as ValueError, but be safe
        raise CircuitsError(f"resvg could not render the circuit's PNG: {e}") from e
    if not png.startswith(b"\x89PNG"):
        raise CircuitsError(f"resvg returned {len(png)} bytes that are not a PNG")
    return png
