"""`circuits run` end to end on the shipped model: every output is there and consistent."""

import json
import xml.etree.ElementTree as ET

import pytest

from circuits.cli.main import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gt"
    code = main(["run", "tasks/greater_than.toml", "--count", "3", "--out", str(out)])
    assert code == 0
    return out


def test_a_run_writes_every_output(run_dir) -> None:
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "graph.svg",
        "graph.png",
        "graph.json",
        "circuit.json",
        "summary.json",
        "report.md",
        "faithfulness.png",
        "graphs",
    } <= names
    assert not [p for p in run_dir.parent.iterdir() if p.name.startswith(".")]
    ET.parse(run_dir / "graph.svg")  # well-formed


def test_viewer_json_links_refer_to_existing_nodes(run_dir) -> None:
    data = json.loads((run_dir / "graph.json").read_text())
    ids = [n["node_id"] for n in data["nodes"]]
    assert len(ids) == len(set(ids))
    assert data["links"] and all(
        link["source"] in set(ids) and link["target"] in set(ids) for link in data["links"]
    )


def test_summary_reports_faithfulness_and_size(run_dir) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["n_prompts"] == 3
    assert 0 < summary["circuit_features"] <= 0.05 * summary["mean_active_features"] + 1
    for key in (
        "validation.faithfulness",
        "validation.completeness",
        "validation.model",
        "metric_spliced",
        "replacement_score",
    ):
        assert isinstance(summary[key], float), key
    # ablating everything outside an empty circuit is the baseline itself
    assert summary["validation.model"] != summary["validation.nothing"]
    report = (run_dir / "report.md").read_text()
    assert "faithfulness" in report and "![circuit](graph.svg)" in report


def test_a_second_run_replaces_the_first(run_dir) -> None:
    before = (run_dir / "summary.json").stat().st_mtime_ns
    assert main(["run", "tasks/greater_than.toml", "--count", "2", "--out", str(run_dir)]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["n_prompts"] == 2
    assert (run_dir / "summary.json").stat().st_mtime_ns != before


def test_circuit_records_signed_effects_of_the_corruption(run_dir) -> None:
    from circuits.run.circuit import Circuit

    circuit = Circuit.from_json(json.loads((run_dir / "circuit.json").read_text()))
    assert circuit.gap > 0  # the clean prompts favour the task's answer more than the corrupted
    assert len(circuit.moved_patterns) == 2 * 4  # every head of the 2 x 4 shipped model
    middle = [n for n in circuit.nodes if n.kind in ("feature", "error")]
    total = sum(abs(n.effect) for n in middle)
    for node in middle:
        assert node.influence == pytest.approx(abs(node.effect) / total)
    # into the metric (one unit of metric per unit of input), a token edge moves the metric by
    # its weight where the corruption replaces the token, and not at all where it does not
    tokens_in = [
        e
        for e in circuit.edges
        if circuit.nodes[e.source].kind == "token" and circuit.nodes[e.target].kind == "target"
    ]
    assert tokens_in
    for edge in tokens_in:
        change = circuit.nodes[edge.source].change
        assert change in (0.0, 1.0)
        assert edge.effect == pytest.approx(edge.weight * change, abs=1e-9)
