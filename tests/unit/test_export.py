"""Viewer-JSON export of a task circuit, on a hand-made 8-node IOI-shaped circuit (also drawn by
`test_drawing`)."""

import json
import os
import re
import stat

import pytest

from circuits import paths
from circuits.attribution.nodes import NodeKind
from circuits.run.circuit import Circuit, CircuitNode
from circuits.run.export import role_tokens, viewer_json, write_json
from tests.builders import EXAMPLE, ROLE_POSITIONS, example_ioi_circuit


def test_role_tokens_use_the_example_prompt_at_each_role():
    circuit = example_ioi_circuit()
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
    data = viewer(example_ioi_circuit())
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
    circuit = example_ioi_circuit()
    data = viewer(circuit)
    ids = {n["node_id"] for n in data["nodes"]}
    assert len(data["links"]) == len(circuit.edges)
    for link in data["links"]:
        assert link["source"] in ids and link["target"] in ids
    assert {"source": "1_230_4", "target": "3_0_4", "weight": -0.8} in data["links"]


def test_error_ids_never_collide_with_layer_zero_features():
    base = example_ioi_circuit()
    # feature 0 at layer 0 and an error at layer 0, same role: the old form gave both "0_0_3"
    nodes = [
        *base.nodes,
        CircuitNode(kind=NodeKind.FEATURE, layer=0, role="S2", feature=0, label="f0"),
        CircuitNode(kind=NodeKind.ERROR, layer=1, role="S2"),
    ]
    circuit = Circuit(**{**base.__dict__, "nodes": nodes})
    ids = [n["node_id"] for n in viewer(circuit)["nodes"]]
    assert len(set(ids)) == len(ids)
    assert {"0_0_3", "0_-1_3", "1_-1_3"} <= set(ids)


def test_viewer_uses_given_token_and_answer_ids():
    data = viewer(example_ioi_circuit(), token_ids={"IO": 1234, "S2": 99}, answer_id=1234)
    ids = {n["node_id"] for n in data["nodes"]}
    assert {"E_1234_0", "E_99_3", "3_1234_4"} <= ids
    target = next(n for n in data["nodes"] if n["is_target_logit"])
    assert target["feature_type"] == "logit" and "(p=" in target["clerp"]
    assert data["qParams"]["clickedId"] == "3_1234_4"


def test_viewer_metadata_and_qparams_are_complete():
    data = viewer(example_ioi_circuit())
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
        viewer_json(example_ioi_circuit(), slug="x", prompt_tokens=EXAMPLE, node_threshold=0.8)


def test_viewer_rejects_a_node_whose_role_is_unknown():
    base = example_ioi_circuit()
    nodes = [*base.nodes, CircuitNode(kind=NodeKind.FEATURE, layer=0, role="S3", feature=1)]
    with pytest.raises(ValueError, match="S3"):
        viewer(Circuit(**{**base.__dict__, "nodes": nodes}))


def test_write_json_replaces_atomically_and_round_trips(tmp_path):
    path = tmp_path / "out" / "graph.json"
    path.parent.mkdir()
    path.write_text("stale")
    data = viewer(example_ioi_circuit())
    assert write_json(data, path) == path
    assert json.loads(path.read_text()) == data
    assert [p.name for p in path.parent.iterdir()] == ["graph.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "graph.json"
    path.write_text("old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(paths.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_json(viewer(example_ioi_circuit()), path)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["graph.json"]


def test_write_json_gives_the_file_the_users_umask(tmp_path):
    old = os.umask(0o077)
    try:
        path = write_json(viewer(example_ioi_circuit()), tmp_path / "graph.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
