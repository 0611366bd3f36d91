"""Drawing and viewer-JSON export of a task circuit, on a hand-made 8-node IOI-shaped circuit."""

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from circuits.run import export
from circuits.run.circuit import Circuit, CircuitEdge, CircuitNode
from circuits.run.export import (
    render_png,
    render_svg,
    role_tokens,
    viewer_json,
    write_json,
)

needs_graphviz = pytest.mark.skipif(
    shutil.which("neato") is None, reason="graphviz's neato program is not installed"
)

ROLE_POSITIONS = {"IO": 1, "S1": 3, "S1+1": 4, "S2": 6, "END": 8}
EXAMPLE = ["When", " Mary", " and", " John", " went", " to", " John", " gave", " a"]


def make_circuit() -> Circuit:
    nodes = [
        CircuitNode(kind="token", layer=-1, role="IO", label=" Mary"),
        CircuitNode(kind="token", layer=-1, role="S2", label=" John"),
        CircuitNode(kind="feature", layer=0, role="S2", feature=17, label="repeated name"),
        CircuitNode(kind="error", layer=0, role="S2"),
        CircuitNode(kind="feature", layer=0, role="IO", feature=5, label="female name"),
        CircuitNode(kind="feature", layer=1, role="END", feature=17, label="say the other name"),
        CircuitNode(kind="feature", layer=1, role="END", feature=230, label="inhibit subject"),
        CircuitNode(kind="target", layer=2, role="END", label="logit_diff", activation=3.1),
    ]
    edges = [
        CircuitEdge(source=0, target=4, weight=1.2),
        CircuitEdge(source=1, target=2, weight=0.9),
        CircuitEdge(source=2, target=6, weight=0.7, heads=[("L1H3", 0.82), ("L1H0", 0.11)]),
        CircuitEdge(source=3, target=6, weight=0.1),
        CircuitEdge(source=4, target=5, weight=1.5, heads=[("L1H1", 0.64)]),
        CircuitEdge(source=5, target=7, weight=2.0),
        CircuitEdge(source=6, target=7, weight=-0.8),
    ]
    return Circuit(
        task="ioi",
        model="zoo:tiny",
        metric="logit_diff",
        n_layers=2,
        roles=["IO", "S1", "S1+1", "S2", "END"],
        nodes=nodes,
        edges=edges,
        n_prompts=16,
        example_tokens=EXAMPLE,
    )


def svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()
    return " ".join(t.strip() for t in root.itertext() if t.strip())


@needs_graphviz
def test_svg_shows_every_label_head_and_example_token(tmp_path):
    circuit = make_circuit()
    path = render_svg(circuit, tmp_path / "graph.svg", role_positions=ROLE_POSITIONS)
    text = svg_text(path)
    for node in circuit.nodes:
        assert node.label.strip() in text
    for label in ["L0 #17", "L1 #230", "err L0", "L1H3 82%", "L1H1 64%", '" Mary"', "END"]:
        assert label in text
    assert "L1H0" not in text  # only the top head is labelled


@needs_graphviz
def test_svg_tokens_show_the_example_prompt_at_their_role(tmp_path):
    path = render_svg(make_circuit(), tmp_path / "g.svg", role_positions={"IO": 0, "S2": 7})
    text = svg_text(path)
    assert '"When"' in text and '" gave"' in text and '" Mary"' not in text


def node_centres(path: Path) -> dict[str, tuple[float, float]]:
    """Centre of each drawn node (bounds of its shape; plain text: the text's anchor)."""
    ns = {"s": "http://www.w3.org/2000/svg"}
    centres = {}
    for group in ET.parse(path).getroot().iterfind(".//s:g[@class='node']", ns):
        title = group.find("s:title", ns)
        shape = group.find("s:path", ns)
        shape = shape if shape is not None else group.find("s:polygon", ns)
        if shape is not None:
            coords = shape.get("d") or shape.get("points") or ""
            pairs = [tuple(map(float, p)) for p in re.findall(r"(-?[\d.]+),(-?[\d.]+)", coords)]
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
            centre = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
        else:
            text = group.find("s:text", ns)
            assert text is not None
            centre = (float(text.get("x", "nan")), float(text.get("y", "nan")))
        centres[title.text if title is not None else ""] = centre
    return centres


@needs_graphviz
def test_svg_is_a_grid_of_roles_by_layers(tmp_path):
    pos = node_centres(render_svg(make_circuit(), tmp_path / "g.svg"))
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
    assert "col:S1" not in x  # roles without nodes take no column


@needs_graphviz
def test_crowded_cells_stack_lines_within_their_row(tmp_path):
    base = make_circuit()
    extra = [  # END at layer 1 now holds four features: two lines of two, strongest on top
        CircuitNode(kind="feature", layer=1, role="END", feature=f, label=f"f{f}", influence=-1.0)
        for f in (1, 2)
    ]
    circuit = Circuit(**{**base.__dict__, "nodes": [*base.nodes, *extra]})
    pos = node_centres(render_svg(circuit, tmp_path / "g.svg"))
    x, y = {k: v[0] for k, v in pos.items()}, {k: v[1] for k, v in pos.items()}
    assert y["n5"] == pytest.approx(y["n6"], abs=0.5)
    assert y["n8"] == pytest.approx(y["n9"], abs=0.5)
    assert y["n7"] < y["n8"] < y["n5"] < y["n2"]  # SVG y grows downwards
    assert (x["n5"] + x["n6"]) / 2 == pytest.approx((x["n8"] + x["n9"]) / 2, abs=0.5)


@needs_graphviz
def test_svg_does_not_repeat_labels_that_restate_the_role_or_the_feature(tmp_path):
    base = make_circuit()
    nodes = [
        CircuitNode(kind="token", layer=-1, role="IO", label="IO"),
        CircuitNode(kind="feature", layer=0, role="IO", feature=5, label="L0 #5"),
        CircuitNode(kind="target", layer=2, role="IO", label="logit_diff"),
    ]
    circuit = Circuit(**{**base.__dict__, "nodes": nodes, "edges": []})
    text = svg_text(render_svg(circuit, tmp_path / "g.svg"))
    assert '"IO"' not in text
    assert text.count("L0 #5") == 1 and text.count("logit_diff") == 2  # title and target


@needs_graphviz
def test_rendering_replaces_an_existing_file_without_leaving_temp_files(tmp_path):
    path = tmp_path / "graph.svg"
    path.write_text("old")
    render_svg(make_circuit(), path, title="IOI circuit")
    assert "IOI circuit" in svg_text(path)
    png = render_png(make_circuit(), tmp_path / "graph.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.png", "graph.svg"]


def test_role_tokens_use_the_example_prompt_at_each_role():
    circuit = make_circuit()
    assert role_tokens(circuit, ROLE_POSITIONS) == [" Mary", " John", " went", " John", " a"]
    # without positions: the token node's label, else the role's name
    assert role_tokens(circuit) == [" Mary", "S1", "S1+1", " John", "END"]


def viewer(circuit: Circuit, **kwargs) -> dict:
    return viewer_json(
        circuit,
        slug="ioi-tiny",
        prompt_tokens=role_tokens(circuit, ROLE_POSITIONS),
        node_threshold=0.8,
        **kwargs,
    )


ID_FORMATS = {
    "cross layer transcoder": r"\d+_\d+_\d+",
    "mlp reconstruction error": r"\d+_-1_\d+",
    "embedding": r"E_\d+_\d+",
    "logit": r"3_\d+_\d+",  # n_layers + 1
}


def test_viewer_node_ids_follow_the_viewer_format_and_are_unique():
    data = viewer(make_circuit())
    ids = [n["node_id"] for n in data["nodes"]]
    assert len(set(ids)) == len(ids)
    for node in data["nodes"]:
        assert re.fullmatch(ID_FORMATS[node["feature_type"]], node["node_id"]), node
        assert node["jsNodeId"] == node["node_id"]
        assert isinstance(node["layer"], str)
    assert "0_17_3" in ids  # feature 17 at layer 0, role S2 (index 3)
    assert "0_-1_3" in ids  # error at layer 0, S2: not the colliding "0_0_3" form
    assert "1_17_4" in ids
    assert "3_0_4" in ids  # the metric target, token id 0 by default
    assert {"E_0_0", "E_3_3"} <= set(ids)  # token ids default to the role's index


def test_viewer_links_refer_to_existing_nodes_with_raw_weights():
    circuit = make_circuit()
    data = viewer(circuit)
    ids = {n["node_id"] for n in data["nodes"]}
    assert len(data["links"]) == len(circuit.edges)
    for link in data["links"]:
        assert link["source"] in ids and link["target"] in ids
    assert {"source": "1_230_4", "target": "3_0_4", "weight": -0.8} in data["links"]


def test_error_ids_never_collide_with_layer_zero_features():
    base = make_circuit()
    # feature 0 at layer 0 and an error at layer 0, same role: the old form gave both "0_0_3"
    nodes = [
        *base.nodes,
        CircuitNode(kind="feature", layer=0, role="S2", feature=0, label="f0"),
        CircuitNode(kind="error", layer=1, role="S2"),
    ]
    circuit = Circuit(**{**base.__dict__, "nodes": nodes})
    ids = [n["node_id"] for n in viewer(circuit)["nodes"]]
    assert len(set(ids)) == len(ids)
    assert {"0_0_3", "0_-1_3", "1_-1_3"} <= set(ids)


def test_viewer_uses_given_token_and_answer_ids():
    data = viewer(make_circuit(), token_ids={"IO": 1234, "S2": 99}, answer_id=1234)
    ids = {n["node_id"] for n in data["nodes"]}
    assert {"E_1234_0", "E_99_3", "3_1234_4"} <= ids
    target = next(n for n in data["nodes"] if n["is_target_logit"])
    assert target["feature_type"] == "logit" and "(p=" in target["clerp"]
    assert data["qParams"]["clickedId"] == "3_1234_4"


def test_viewer_metadata_and_qparams_are_complete():
    data = viewer(make_circuit())
    assert set(data["metadata"]) == {
        "slug",
        "scan",
        "prompt_tokens",
        "prompt",
        "node_threshold",
        "schema_version",
    }
    assert set(data["qParams"]) == {"pinnedIds", "supernodes", "linkType", "clickedId", "sg_pos"}
    assert data["metadata"]["prompt_tokens"] == [" Mary", " John", " went", " John", " a"]
    node_keys = {
        "node_id",
        "feature",
        "layer",
        "ctx_idx",
        "feature_type",
        "token_prob",
        "is_target_logit",
        "run_idx",
        "reverse_ctx_idx",
        "jsNodeId",
        "clerp",
        "influence",
        "activation",
    }
    for node in data["nodes"]:
        assert set(node) == node_keys
        assert node["ctx_idx"] + node["reverse_ctx_idx"] == 4


def test_viewer_rejects_prompt_tokens_that_are_not_one_per_role():
    with pytest.raises(ValueError, match="one token per role"):
        viewer_json(make_circuit(), slug="x", prompt_tokens=EXAMPLE, node_threshold=0.8)


def test_viewer_rejects_a_node_whose_role_is_unknown():
    base = make_circuit()
    nodes = [*base.nodes, CircuitNode(kind="feature", layer=0, role="S3", feature=1)]
    with pytest.raises(ValueError, match="S3"):
        viewer(Circuit(**{**base.__dict__, "nodes": nodes}))


def test_write_json_replaces_atomically_and_round_trips(tmp_path):
    path = tmp_path / "out" / "graph.json"
    path.parent.mkdir()
    path.write_text("stale")
    data = viewer(make_circuit())
    assert write_json(data, path) == path
    assert json.loads(path.read_text()) == data
    assert [p.name for p in path.parent.iterdir()] == ["graph.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "graph.json"
    path.write_text("old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(export.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_json(viewer(make_circuit()), path)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["graph.json"]
