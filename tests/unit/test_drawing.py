"""The circuit drawing: SVG written by `circuits.run.drawing` itself, PNG rasterised by resvg, on
the hand-made IOI-shaped circuit of `test_export` and small variations of it."""

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import pytest

from circuits.attribution.nodes import NodeKind
from circuits.errors import CircuitsError
from circuits.run import drawing
from circuits.run.circuit import Circuit, CircuitEdge, CircuitNode
from circuits.run.drawing import render_png, render_svg
from tests.builders import ROLE_POSITIONS, example_ioi_circuit

NS = {"s": "http://www.w3.org/2000/svg"}
BLUE, RED = "#2166ac", "#b2182b"


def svg_root(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def svg_text(path: Path) -> str:
    return " ".join(t.strip() for t in svg_root(path).itertext() if t.strip())


def with_(base: Circuit, **changes) -> Circuit:
    return Circuit(**{**base.__dict__, **changes})


def node_boxes(path: Path) -> dict[str, tuple[float, float, float, float]]:
    """x0, y0, x1, y1 of each node's shape (SVG y grows downwards), by node id."""
    boxes = {}
    for group in svg_root(path).iterfind(".//s:g[@class='node']", NS):
        shape = group.find("s:rect", NS)
        if shape is not None:
            x, y = float(shape.get("x", "nan")), float(shape.get("y", "nan"))
            w, h = float(shape.get("width", "nan")), float(shape.get("height", "nan"))
            boxes[group.get("id", "")] = (x, y, x + w, y + h)
            continue
        shape = group.find("s:polygon", NS)
        assert shape is not None
        pairs = re.findall(r"(-?[\d.]+),(-?[\d.]+)", shape.get("points", ""))
        xs, ys = [float(p[0]) for p in pairs], [float(p[1]) for p in pairs]
        boxes[group.get("id", "")] = (min(xs), min(ys), max(xs), max(ys))
    return boxes


def node_centres(path: Path) -> dict[str, tuple[float, float]]:
    """Centre of each node by id (`n3`), and the anchor of each axis name (`col:IO`, `row:0`)."""
    centres = {k: ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for k, b in node_boxes(path).items()}
    for kind in ("row", "col"):
        for text in svg_root(path).iterfind(f".//s:text[@class='{kind}']", NS):
            xy = (float(text.get("x", "nan")), float(text.get("y", "nan")))
            centres[f"{kind}:{text.get('data-name')}"] = xy
    return centres


def edge_groups(path: Path) -> list[ET.Element]:
    return list(svg_root(path).iterfind(".//s:g[@class='edge']", NS))


def curve_points(group: ET.Element, n: int = 40) -> list[tuple[float, float]]:
    """Points along the edge's path (`M p C c c p C c c p ...`)."""
    path = group.find("s:path", NS)
    assert path is not None
    nums = [float(v) for v in re.findall(r"-?[\d.]+", path.get("d", ""))]
    pts = list(zip(nums[::2], nums[1::2], strict=True))
    out = []
    for k in range(0, len(pts) - 1, 3):
        p0, c1, c2, p3 = pts[k : k + 4]
        for i in range(n + 1):
            t = i / n
            a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
            xs, ys = zip(p0, c1, c2, p3, strict=True)
            out.append(tuple(a * u + b * v + c * w + d * z for u, v, w, z in (xs, ys)))
    return out


def test_svg_parses_with_a_node_group_per_node_and_a_path_per_edge(tmp_path):
    circuit = example_ioi_circuit()
    root = svg_root(render_svg(circuit, tmp_path / "g.svg"))
    nodes = root.findall(".//s:g[@class='node']", NS)
    assert sorted(g.get("id", "") for g in nodes) == sorted(f"n{i}" for i in range(8))
    assert len(root.findall(".//s:path", NS)) == len(circuit.edges)
    edges = root.findall(".//s:g[@class='edge']", NS)
    assert sorted((g.get("data-source"), g.get("data-target")) for g in edges) == sorted(
        (f"n{e.source}", f"n{e.target}") for e in circuit.edges
    )
    assert root.get("width", "").endswith("pt")


def test_svg_shows_every_label_head_and_example_token(tmp_path):
    circuit = example_ioi_circuit()
    path = render_svg(circuit, tmp_path / "graph.svg", role_positions=ROLE_POSITIONS)
    text = svg_text(path)
    for node in circuit.nodes:
        assert node.label.strip() in text
    for label in ["L0 #17", "L1 #230", "err L0", "L1H3 82%", "L1H1 64%", '" Mary"', "END"]:
        assert label in text
    assert "L1H0" not in text  # only the top head is labelled
    assert "blue: positive, red: negative" in text
    assert "ioi \u00b7 zoo:tiny \u00b7 logit_diff, 16 prompts" in text  # the default title


def test_svg_tokens_show_the_example_prompt_at_their_role(tmp_path):
    path = render_svg(example_ioi_circuit(), tmp_path / "g.svg", role_positions={"IO": 0, "S2": 7})
    text = svg_text(path)
    assert '"When"' in text and '" gave"' in text and '" Mary"' not in text


def test_svg_escapes_markup_and_characters_xml_cannot_hold(tmp_path):
    base = example_ioi_circuit()
    nodes = list(base.nodes)
    nodes[2] = CircuitNode(kind=NodeKind.FEATURE, layer=0, role="S2", feature=17, label="a<b & c>d")
    nodes[0] = CircuitNode(kind=NodeKind.TOKEN, layer=-1, role="IO", label="\x00\x1b</text>")
    title = 'x < y & "z"'
    path = render_svg(with_(base, nodes=nodes), tmp_path / "g.svg", title=title)
    raw = path.read_text()
    assert "a&lt;b &amp; c&gt;d" in raw and "\x00" not in raw and "\x1b" not in raw
    text = svg_text(path)  # parses, and reads back as written
    assert "a<b & c>d" in text and "</text>" in text and title in text


def test_edges_are_blue_for_positive_and_red_for_negative_weights(tmp_path):
    colours = {}
    for group in edge_groups(render_svg(example_ioi_circuit(), tmp_path / "g.svg")):
        path, arrow = group.find("s:path", NS), group.find("s:polygon", NS)
        assert path is not None and arrow is not None
        assert arrow.get("fill") == path.get("stroke")  # the arrowhead in the edge's colour
        colours[(group.get("data-source"), group.get("data-target"))] = path.get("stroke")
    assert colours[("n5", "n7")] == BLUE  # weight 2.0
    assert colours[("n6", "n7")] == RED  # weight -0.8


def test_edge_width_and_opacity_grow_with_the_weight(tmp_path):
    style = {}
    for group in edge_groups(render_svg(example_ioi_circuit(), tmp_path / "g.svg")):
        path = group.find("s:path", NS)
        assert path is not None
        width, opacity = float(path.get("stroke-width", "0")), path.get("stroke-opacity", "")
        style[group.get("data-source"), group.get("data-target")] = (width, float(opacity))
    assert style[("n5", "n7")] == (6.0, 1.0)  # the strongest
    # weight 0.1 of 2.0: width to 0.01 point, opacity in steps of 1/255
    assert style[("n3", "n6")] == pytest.approx((0.5 + 5.5 * 0.05, 0.25 + 0.75 * 0.05), abs=6e-3)


def test_edges_are_drawn_weakest_first_and_under_the_nodes(tmp_path):
    circuit = example_ioi_circuit()
    root = svg_root(render_svg(circuit, tmp_path / "g.svg"))
    drawn = [(g.get("data-source"), g.get("data-target")) for g in edge_groups(tmp_path / "g.svg")]
    by_weight = sorted(circuit.edges, key=lambda e: abs(e.weight))
    assert drawn == [(f"n{e.source}", f"n{e.target}") for e in by_weight]
    assert drawn[-1] == ("n5", "n7")  # the strongest on top
    order = [g.get("class") for g in root.iter(f"{{{NS['s']}}}g")]
    assert max(i for i, c in enumerate(order) if c == "edge") < order.index("node")


def test_edges_run_from_the_source_top_to_the_target_bottom(tmp_path):
    path = render_svg(example_ioi_circuit(), tmp_path / "g.svg")
    boxes = node_boxes(path)
    for group in edge_groups(path):
        points = curve_points(group)
        source, target = boxes[group.get("data-source", "")], boxes[group.get("data-target", "")]
        assert points[0][1] == pytest.approx(source[1], abs=0.1)  # leaves the top
        assert source[0] <= points[0][0] <= source[2]
        arrow = group.find("s:polygon", NS)
        assert arrow is not None
        tip_y = min(float(y) for y in re.findall(r",(-?[\d.]+)", arrow.get("points", "")))
        assert tip_y == pytest.approx(target[3], abs=0.1)  # points at the bottom


def test_an_edge_that_skips_a_row_goes_round_the_nodes_in_it(tmp_path):
    base = example_ioi_circuit()
    # the IO token straight below the IO feature at layer 0, straight into the target: a
    # direct line would cross the L0 #5 box
    edges = [CircuitEdge(source=0, target=i, weight=1.0) for i in (4, 5)]
    path = render_svg(with_(base, edges=edges), tmp_path / "g.svg")
    boxes = node_boxes(path)
    x0, y0, x1, y1 = boxes["n4"]
    (group,) = [g for g in edge_groups(path) if g.get("data-target") == "n5"]
    assert not [p for p in curve_points(group) if x0 < p[0] < x1 and y0 < p[1] < y1]


def test_an_edge_within_one_row_arcs_into_the_targets_top(tmp_path):
    base = example_ioi_circuit()
    edges = [CircuitEdge(source=5, target=6, weight=1.0, heads=[("L1H2", 0.5)])]
    path = render_svg(with_(base, edges=edges), tmp_path / "g.svg")
    boxes = node_boxes(path)
    (group,) = edge_groups(path)
    points = curve_points(group)
    assert min(p[1] for p in points) < min(boxes["n5"][1], boxes["n6"][1])  # over the row
    arrow = group.find("s:polygon", NS)
    assert arrow is not None
    tip_y = max(float(y) for y in re.findall(r",(-?[\d.]+)", arrow.get("points", "")))
    assert tip_y == pytest.approx(boxes["n6"][1], abs=0.1)  # points down into the top
    assert "L1H2 50%" in svg_text(path)


def test_svg_is_a_grid_of_roles_by_layers(tmp_path):
    pos = node_centres(render_svg(example_ioi_circuit(), tmp_path / "g.svg"))
    x, y = {k: v[0] for k, v in pos.items()}, {k: v[1] for k, v in pos.items()}
    # columns: IO token, IO feature and the IO axis label share x; the S2 token sits under the
    # centre of the S2 cell (feature, then error); END features side by side under the target
    assert x["n0"] == pytest.approx(x["n4"], abs=0.5)
    assert x["col:IO"] == pytest.approx(x["n0"], abs=0.5)
    assert x["n2"] < x["n1"] < x["n3"]
    assert x["n5"] < x["n7"] < x["n6"]
    assert x["n0"] < x["n1"] < x["n7"]  # roles in prompt order
    # rows (SVG y grows downwards): tokens at the bottom, then L0, L1, the target on top
    assert y["n0"] == pytest.approx(y["n1"], abs=0.5)
    assert y["n2"] == pytest.approx(y["n4"], abs=0.5)
    assert y["n5"] == pytest.approx(y["n6"], abs=0.5)
    assert y["n0"] > y["n2"] > y["n5"] > y["n7"]
    assert y["row:L0"] == pytest.approx(y["n2"], abs=5) and x["row:L0"] < x["n0"]
    assert y["col:IO"] > y["n0"]  # role names along the bottom
    assert "col:S1" not in x  # roles without nodes take no column


def test_crowded_cells_stack_lines_within_their_row(tmp_path):
    base = example_ioi_circuit()
    extra = [  # END at layer 1 now holds four features: two lines of two, strongest on top
        CircuitNode(
            kind=NodeKind.FEATURE, layer=1, role="END", feature=f, label=f"f{f}", influence=-1.0
        )
        for f in (1, 2)
    ]
    circuit = with_(base, nodes=[*base.nodes, *extra])
    pos = node_centres(render_svg(circuit, tmp_path / "g.svg"))
    x, y = {k: v[0] for k, v in pos.items()}, {k: v[1] for k, v in pos.items()}
    assert y["n5"] == pytest.approx(y["n6"], abs=0.5)
    assert y["n8"] == pytest.approx(y["n9"], abs=0.5)
    assert y["n7"] < y["n8"] < y["n5"] < y["n2"]  # SVG y grows downwards
    assert (x["n5"] + x["n6"]) / 2 == pytest.approx((x["n8"] + x["n9"]) / 2, abs=0.5)


def test_svg_does_not_repeat_labels_that_restate_the_role_or_the_feature(tmp_path):
    nodes = [
        CircuitNode(kind=NodeKind.TOKEN, layer=-1, role="IO", label="IO"),
        CircuitNode(kind=NodeKind.FEATURE, layer=0, role="IO", feature=5, label="L0 #5"),
        CircuitNode(kind=NodeKind.TARGET, layer=2, role="IO", label="logit_diff"),
    ]
    circuit = with_(example_ioi_circuit(), nodes=nodes, edges=[])
    text = svg_text(render_svg(circuit, tmp_path / "g.svg"))
    assert '"IO"' not in text
    assert text.count("L0 #5") == 1 and text.count("logit_diff") == 2  # title and target


def test_an_empty_circuit_draws_its_title(tmp_path):
    circuit = with_(example_ioi_circuit(), nodes=[], edges=[])
    assert "logit_diff" in svg_text(render_svg(circuit, tmp_path / "g.svg"))


def test_rendering_replaces_an_existing_file_without_leaving_temp_files(tmp_path):
    path = tmp_path / "graph.svg"
    path.write_text("old")
    render_svg(example_ioi_circuit(), path, title="IOI circuit")
    assert "IOI circuit" in svg_text(path)
    png = render_png(example_ioi_circuit(), tmp_path / "graph.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.png", "graph.svg"]


def test_png_is_the_drawing_at_110_dpi_and_not_blank(tmp_path):
    circuit = example_ioi_circuit()
    svg = svg_root(render_svg(circuit, tmp_path / "g.svg"))
    pixels = matplotlib.image.imread(render_png(circuit, tmp_path / "g.png"))
    width_pt = float(svg.get("width", "0").removesuffix("pt"))
    assert pixels.shape[1] == pytest.approx(width_pt * 110 / 72, abs=1)
    rgb = pixels[..., :3]
    assert (rgb.min(axis=-1) < 0.5).mean() > 0.005  # dark ink: text and strong edges
    assert (rgb > 0.99).all(axis=-1).mean() > 0.5  # on a white background


def test_a_failed_png_raises_a_circuits_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    import resvg_py

    def fail(**kwargs):
        raise ValueError("SVG has an invalid size")

    monkeypatch.setattr(resvg_py, "svg_to_bytes", fail)
    path = tmp_path / "graph.png"
    path.write_bytes(b"old")
    with pytest.raises(CircuitsError, match=r"resvg.*invalid size"):
        render_png(example_ioi_circuit(), path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["graph.png"]


def test_drawing_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # any `import graphviz` now fails
    render_svg(example_ioi_circuit(), tmp_path / "g.svg")
    assert render_png(example_ioi_circuit(), tmp_path / "g.png").stat().st_size > 0
    assert "graphviz" not in drawing.__dict__
