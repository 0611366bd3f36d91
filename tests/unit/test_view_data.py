"""The page's data, graph.json's role labels and supernodes, and the server's refusals, on the
hand-made 8-node IOI circuit of `test_export` written as a run directory."""

import http.client
import json
import threading
from dataclasses import replace

import pytest

from circuits.paths import MARKER, read_marker
from circuits.run.export import check_supernodes, viewer_json, write_json
from circuits.view.data import circuit_influence, load_run, page_data
from circuits.view.groups import (
    Group,
    description_key,
    group_by_description,
    group_by_position,
    groups_from_supernodes,
    supernodes_json,
)
from circuits.view.page import embed_json, render_page, write_page
from circuits.view.server import ViewServer, resolve_request_path
from tests.builders import EXAMPLE, example_ioi_circuit

EXAMPLE_ROLES = ["BOS", "IO", "IO+1", "S1", "S1+1", "S1+2", "S2", "S2+1", "END"]


def write_run_dir(path, circuit=None, supernodes=None):
    """A run directory as `write_run` leaves it (without the model's files)."""
    circuit = circuit or example_ioi_circuit()
    path.mkdir()
    write_json(circuit.to_json(), path / "circuit.json")
    graph = viewer_json(
        circuit,
        slug="ioi-tiny",
        prompt_tokens=list(circuit.roles),
        node_threshold=0.99,
        answer_id=7,
        example_roles=EXAMPLE_ROLES,
        supernodes=supernodes,
    )
    write_json(graph, path / "graph.json")
    features = {
        "features": [
            {
                "layer": 1,
                "feature": 230,
                "label": "inhibit subject",
                "frequency": 0.1,
                "max_activation": 4.0,
                "top_contexts": [{"tokens": [" John", " gave"], "active": 0, "activation": 3.0}],
                "promoted": [[" Mary", 2.0]],
                "suppressed": [[" John", -2.0]],
                "input_tokens": [[" John", 1.5]],
            }
        ]
    }
    write_json(features, path / "features.json")
    summary = {"validation.faithfulness": 0.87, "gap": 5.7, "n_prompts": 16, "config": {}}
    write_json(summary, path / "summary.json")
    entries = sorted(p.name for p in path.iterdir())
    (path / MARKER).write_text(json.dumps({"kind": "circuit_run", "entries": entries}))
    return path


# ---------------------------------------------------------------------------------------------
# graph.json


def test_graph_json_labels_columns_by_role_and_keeps_the_real_prompt_apart():
    circuit = example_ioi_circuit()
    data = viewer_json(
        circuit,
        slug="x",
        prompt_tokens=list(circuit.roles),
        node_threshold=0.8,
        example_roles=EXAMPLE_ROLES,
    )
    meta = data["metadata"]
    assert meta["prompt_tokens"] == ["IO", "S1", "S1+1", "S2", "END"]
    assert meta["prompt"] == "".join(EXAMPLE)  # real text, no role names in it
    assert meta["example_tokens"] == EXAMPLE
    assert meta["example_roles"] == EXAMPLE_ROLES
    with pytest.raises(ValueError, match="one role per token"):
        viewer_json(
            circuit, slug="x", prompt_tokens=circuit.roles, node_threshold=1.0, example_roles=["IO"]
        )


def test_supernodes_are_exported_as_label_then_node_ids():
    circuit = example_ioi_circuit()
    ids = [n["node_id"] for n in viewer_json(circuit, slug="x", prompt_tokens=circuit.roles,
                                             node_threshold=1.0)["nodes"]]  # fmt: skip
    groups = [Group(label="say the other name", members=[5, 6])]
    supernodes = supernodes_json(groups, ids)
    assert supernodes == [["say the other name", "1_17_4", "1_230_4"]]
    data = viewer_json(
        circuit, slug="x", prompt_tokens=circuit.roles, node_threshold=1.0, supernodes=supernodes
    )
    assert data["qParams"]["supernodes"] == supernodes
    assert groups_from_supernodes(supernodes, ids) == groups
    assert groups_from_supernodes(json.dumps(supernodes), ids) == groups  # the string form
    assert groups_from_supernodes([["gone", "9_9_9"]], ids) == []
    for bad in ([["label only"]], [[1, "1_17_4"]], "nope", [["x", "9_9_9"]]):
        with pytest.raises(ValueError):
            check_supernodes(bad, ids)


# ---------------------------------------------------------------------------------------------
# proposals


def test_groups_by_position_gather_the_features_of_one_cell():
    groups = group_by_position(example_ioi_circuit())
    assert [(g.label, sorted(g.members)) for g in groups] == [("L1 at END", [5, 6])]


def test_groups_by_description_gather_labels_saying_the_same_of_one_kind_of_token():
    circuit = example_ioi_circuit()
    nodes = [
        *circuit.nodes,
        *(
            replace(circuit.nodes[2], layer=layer, feature=f, label=label)
            for layer, f, label in [
                (0, 40, 'on " Anne"'),
                (1, 41, 'on " Allen"'),
                (1, 42, 'on "."'),
                (0, 43, 'says " 14"'),
            ]
        ),
    ]
    circuit = replace(circuit, nodes=nodes)
    assert description_key(nodes[8]) == "on capitalised words"
    assert description_key(nodes[10]) == 'on "."'
    assert description_key(nodes[11]) == "says numbers"
    assert description_key(nodes[2]) is None  # "repeated name": not a description
    groups = group_by_description(circuit)
    assert [(g.label, sorted(g.members)) for g in groups] == [
        ("on capitalised words at S2", [8, 9])
    ]


# ---------------------------------------------------------------------------------------------
# the page's data


def test_influence_flows_from_the_metric_through_the_circuits_edges():
    circuit = example_ioi_circuit()
    influence, scores = circuit_influence(circuit)
    # into the target: |2.0| and |-0.8| of 2.8
    assert influence[5] == pytest.approx(2.0 / 2.8)
    assert influence[6] == pytest.approx(0.8 / 2.8)
    # node 6's input: 0.7 from node 2 and 0.1 from the error node
    assert influence[2] == pytest.approx(0.8 / 2.8 * 0.7 / 0.8)
    assert influence[7] == 0.0
    edge = next(k for k, e in enumerate(circuit.edges) if (e.source, e.target) == (5, 7))
    assert scores[edge] == pytest.approx(2.0 / 2.8)  # |w| share x the target's weight 1


def test_page_data_holds_nodes_edges_columns_and_descriptions(tmp_path):
    run = load_run(write_run_dir(tmp_path / "run"))
    data = page_data(run)
    assert [n["id"] for n in data["nodes"]] == run.node_ids
    assert data["columns"][0] == {"name": "IO", "token": " Mary"}
    assert data["columns"][2] == {"name": "S1+1", "token": " went"}
    assert data["example"]["tokens"] == EXAMPLE
    edges = data["edges"]
    assert len(edges["source"]) == len(run.circuit.edges)
    assert edges["score"] == sorted(edges["score"], reverse=True)  # one pass keeps a threshold
    k = next(k for k in range(len(edges["source"])) if edges["source"][k] == 2)
    assert edges["heads"][k][0][:2] == ["L1H3", 0.82]
    assert data["features"]["1_230"]["top_contexts"][0]["tokens"] == [" John", " gave"]
    assert data["auto_groups"]["position"] == [["L1 at END", [5, 6]]]
    assert ["faithfulness", "0.870"] in data["figures"]


def test_the_page_embeds_its_data_so_no_text_can_close_the_script(tmp_path):
    assert "</script>" not in embed_json({"label": "</script><script>alert(1)</script>"})
    assert json.loads(embed_json({"a": "</b>&"})) == {"a": "</b>&"}
    run_dir = write_run_dir(tmp_path / "run")
    run = load_run(run_dir)
    page = render_page(page_data(run), run.graph)
    assert page.count("<script") == 3  # data, graph.json, the code
    for external in ("http://", "https://", "//cdn", "src=", "@import"):
        assert external not in page.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
            'SVG_NS = "http://www.w3.org/2000/svg"', ""
        ), external


def test_writing_the_page_records_it_in_the_run_directorys_marker(tmp_path):
    run_dir = write_run_dir(tmp_path / "run")
    path = write_page(run_dir)
    assert path.name == "graph.html"
    marker = read_marker(run_dir)
    assert marker is not None and "graph.html" in marker["entries"]


def test_saved_supernodes_come_back_as_the_pages_groups(tmp_path):
    run_dir = write_run_dir(tmp_path / "run", supernodes=[["late", "1_17_4", "1_230_4"]])
    assert page_data(load_run(run_dir))["supernodes"] == [["late", [5, 6]]]


# ---------------------------------------------------------------------------------------------
# the server


@pytest.mark.parametrize(
    "url",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/graphs/../../secret.txt",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        "/etc/passwd",
        "/./circuit.json",
        "/graphs",
        "/link/secret.txt",
        "/outside.txt",
        "/circuit.json%00.html",
        "/..%5csecret.txt",
        "circuit.json",
    ],
)
def test_the_server_refuses_paths_outside_the_run_directory(tmp_path, url):
    run_dir = write_run_dir(tmp_path / "run")
    (tmp_path / "secret.txt").write_text("secret")
    (run_dir / "graphs").mkdir()
    (run_dir / "link").symlink_to(tmp_path)
    (run_dir / "outside.txt").symlink_to(tmp_path / "secret.txt")
    assert resolve_request_path(run_dir, url) is None


def test_the_server_resolves_the_run_directorys_own_files(tmp_path):
    run_dir = write_run_dir(tmp_path / "run")
    assert (
        resolve_request_path(run_dir, "/circuit.json?x=1") == (run_dir / "circuit.json").resolve()
    )
    write_page(run_dir)
    assert resolve_request_path(run_dir, "/") == (run_dir / "graph.html").resolve()


@pytest.fixture
def served(tmp_path):
    run_dir = write_run_dir(tmp_path / "run")
    (tmp_path / "secret.txt").write_text("secret")
    write_page(run_dir)
    server = ViewServer(run_dir)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.request(method, path, body=body, headers=headers or {})  # the path is sent as is
    response = conn.getresponse()
    return response.status, response.read()


def test_the_served_page_listens_on_loopback_and_refuses_traversal(served):
    assert served.server_address[0] == "127.0.0.1"
    status, body = request(served, "GET", "/")
    assert status == 200 and served.token.encode() in body  # the page gets the save token
    assert request(served, "GET", "/circuit.json")[0] == 200
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "//etc/passwd", "/%2Fetc%2Fpasswd"):
        status, body = request(served, "GET", path)
        assert status == 404 and b"secret" not in body, path


def test_saving_groups_needs_the_token_and_writes_graph_json_and_the_page(served):
    supernodes = [["say the other name", "1_17_4", "1_230_4"]]
    body = json.dumps({"supernodes": supernodes})
    port = served.server_address[1]
    good = {"Content-Type": "application/json", "Host": f"127.0.0.1:{port}"}
    assert request(served, "POST", "/supernodes", body, good)[0] == 403  # no token
    with_token = {**good, "X-Circuits-Token": served.token}
    evil_host = {**with_token, "Host": "evil.example:80"}
    assert request(served, "POST", "/supernodes", body, evil_host)[0] == 403
    bad = json.dumps({"supernodes": [["x", "9_9_9"]]})
    assert request(served, "POST", "/supernodes", bad, with_token)[0] == 400
    status, reply = request(served, "POST", "/supernodes", body, with_token)
    assert status == 200 and json.loads(reply) == {"supernodes": 1}
    graph = json.loads((served.root / "graph.json").read_text())
    assert graph["qParams"]["supernodes"] == supernodes
    assert page_data(load_run(served.root))["supernodes"] == [["say the other name", [5, 6]]]
    assert "say the other name" in (served.root / "graph.html").read_text()
