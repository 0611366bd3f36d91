"""`circuits compare`: hand-made run directories of two model sizes, compared side by side."""

import json
from pathlib import Path

import pytest

from circuits.causal.reference import ComponentEffect, Reference
from circuits.cli.main import main
from circuits.compare.curves import common_level, size_at
from circuits.compare.roles import check_roles
from circuits.paths import MARKER
from circuits.run.circuit import Circuit
from circuits.run.components import component_view
from tests.builders import BIG_CURVE, SMALL_CURVE, make_run, sized_circuit


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    """A 3-layer run and a 2-layer run, bigger one first."""
    big = make_run(tmp_path / "run-big", model="fake-big", n_layers=3, curve=BIG_CURVE)
    small = make_run(tmp_path / "run-small", model="fake-small", n_layers=2, curve=SMALL_CURVE)
    return big, small


def test_report_puts_models_smallest_first(runs, tmp_path: Path, capsys) -> None:
    big, small = runs
    out = tmp_path / "cmp"
    assert main(["compare", str(big), str(small), "--out", str(out)]) == 0
    data = json.loads((out / "compare.json").read_text())
    assert [m["model"] for m in data["models"]] == ["fake-small", "fake-big"]
    assert [m["n_layers"] for m in data["models"]] == [2, 3]
    report = (out / "report.md").read_text()
    assert report.index("`fake-small`") < report.index("`fake-big`")
    assert '<img src="graph-fake-small.svg"' in report
    assert (out / "graph-fake-big.svg").read_text() == "<svg><!-- fake-big --></svg>"
    assert (out / "components.png").stat().st_size > 0
    assert (out / "curves.png").stat().st_size > 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:2]] == ["fake-small", "fake-big"]
    written = sorted(p.name for p in out.iterdir() if p.name != MARKER)
    assert lines[2] == f"wrote {out}/: " + ", ".join(written)


def test_sizes_are_read_at_the_lowest_final_faithfulness_capped(runs, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    data = json.loads((out / "compare.json").read_text())
    assert data["level"] == pytest.approx(0.8)
    small, big = data["models"]
    assert small["size_at_level"] == pytest.approx(10 + 10 * 0.3 / 0.5)
    assert big["size_at_level"] == pytest.approx(4 + 4 * 0.2 / 0.3)
    assert (
        "| **nodes for faithfulness 0.80** | **16.0** | **6.7** |"
        in (out / "report.md").read_text()
    )


def test_size_at_interpolates_on_the_curve() -> None:
    curve = [(0, 0.0), (1, -0.3), (4, 0.2), (12, 0.6), (30, 0.9), (60, 1.0)]
    assert size_at(curve, 0.6) == pytest.approx(12.0)
    assert size_at(curve, 0.75) == pytest.approx(12 + 18 * 0.5)
    assert size_at(curve, 0.0) == pytest.approx(0.0)
    assert size_at(curve, 0.1) == pytest.approx(1 + 3 * 0.4 / 0.5)  # after the dip
    assert size_at(curve, 1.2) is None
    assert common_level([curve, None, [(0, 0.0), (5, 0.7)]]) == pytest.approx(0.7)
    assert common_level([curve, [(0, 0.0), (5, -0.1)]]) is None
    assert common_level([None, None]) is None


def test_given_level_not_reached_is_reported(runs, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, runs), "--out", str(out), "--level", "0.97"]) == 0
    data = json.loads((out / "compare.json").read_text())
    assert [m["size_at_level"] for m in data["models"]] == [pytest.approx(19.4), None]
    assert "| **19.4** | **not reached** |" in (out / "report.md").read_text()


def test_different_tasks_are_a_one_line_error(tmp_path: Path, capsys) -> None:
    ioi = make_run(tmp_path / "a", model="fake-small", n_layers=2, curve=SMALL_CURVE)
    gt = make_run(tmp_path / "b", model="fake-big", n_layers=3, task="greater_than")
    assert main(["compare", str(ioi), str(gt), "--out", str(tmp_path / "cmp")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("circuits: error: tasks differ") and err.count("\n") == 1
    assert "'ioi'" in err and "'greater_than'" in err
    assert not (tmp_path / "cmp").exists()


def test_missing_file_is_a_one_line_error(runs, tmp_path: Path, capsys) -> None:
    big, small = runs
    (small / "circuit.json").unlink()
    assert main(["compare", str(big), str(small), "--out", str(tmp_path / "cmp")]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"circuits: error: {small} is not a run directory (no circuit.json); make one with "
        f"`circuits run TASK --out {small}`\n"
    )


def test_one_directory_is_an_error(runs, capsys) -> None:
    assert main(["compare", str(runs[0])]) == 1
    assert capsys.readouterr().err == (
        "circuits: error: compare needs at least 2 run directories, got 1\n"
    )


def test_an_earlier_comparison_is_replaced_completely(runs, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    (out / "graph-fake-big.svg").unlink()
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        MARKER,
        "compare.json",
        "components.png",
        "curves.png",
        "graph-fake-big.svg",
        "graph-fake-small.svg",
        "report.md",
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_output_over_a_folder_of_the_users_work_is_refused(runs, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cmp"
    (out / "old").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 1
    assert "did not write" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_output_over_a_run_directory_is_refused(runs, tmp_path: Path, capsys) -> None:
    big, small = runs
    assert main(["compare", str(big), str(small), "--out", str(small)]) == 1
    assert "would replace the run directory" in capsys.readouterr().err
    assert (small / "circuit.json").exists()
    assert main(["compare", str(big), str(small), "--out", str(tmp_path)]) == 1
    assert (big / "circuit.json").exists()


def test_older_runs_without_curve_or_components(tmp_path: Path) -> None:
    old = make_run(tmp_path / "old", model="fake-old", n_layers=2, components=False)
    new = make_run(tmp_path / "new", model="fake-new", n_layers=3, curve=BIG_CURVE)
    out = tmp_path / "cmp"
    assert main(["compare", str(old), str(new), "--out", str(out)]) == 0
    old_entry, new_entry = json.loads((out / "compare.json").read_text())["models"]
    # heads seen on its edges: L0H1 and L1H0, so 2 heads per layer
    assert old_entry["n_heads"] == 2
    expected = component_view(sized_circuit("ioi", "fake-old", 2), n_heads=2)
    assert old_entry["scores"] == pytest.approx(expected.scores)
    assert old_entry["components_source"].startswith("computed from circuit.json")
    assert old_entry["size_at_level"] is None
    assert new_entry["size_at_level"] == pytest.approx(4 + 4 * 0.2 / 0.3)
    report = (out / "report.md").read_text()
    assert "| **n/a (no curve in summary.json)** | **6.7** |" in report
    assert "`fake-old`: component view computed from circuit.json" in report


def test_runs_too_old_for_the_component_view_are_refused(tmp_path: Path, capsys) -> None:
    old = make_run(tmp_path / "old", model="fake-old", n_layers=2, components=False)
    circuit = json.loads((old / "circuit.json").read_text())
    del circuit["gap"]
    (old / "circuit.json").write_text(json.dumps(circuit))
    new = make_run(tmp_path / "new", model="fake-new", n_layers=3, curve=BIG_CURVE)
    assert main(["compare", str(old), str(new), "--out", str(tmp_path / "cmp")]) != 0
    err = capsys.readouterr().err
    assert "records no clean-corrupt gap" in err and "rerun `circuits run`" in err


def make_reference() -> Reference:
    effect = ComponentEffect(total=0.5, direct=0.1)
    weak = ComponentEffect(total=0.01, direct=0.0)
    return Reference(
        task="ioi",
        model="fake-small",
        n_layers=2,
        n_heads=4,
        n_prompts=8,
        metric_clean=3.0,
        metric_corrupt=0.0,
        components={"L0H1": weak, "MLP0": effect, "L1H0": effect, "L1H2": weak, "MLP1": weak},
        edges={},
        roles={"name_mover": ["L1H0", "L1H2"], "duplicate_token": ["L0H1"]},
        threshold=0.1,
        command="python -m benchmarks.ground_truth",
    )


def test_roles_are_found_where_the_circuit_scores_the_head() -> None:
    check = check_roles(make_reference(), {"L0H1": 0.3, "L1H0": 0.019, "MLP0": 0.6})
    assert check.roles == {
        "name_mover": {"L1H0": 0.019, "L1H2": 0.0},
        "duplicate_token": {"L0H1": 0.3},
    }
    assert check.found == ["L0H1", "MLP0"]
    assert check.missed == ["L1H0", "L1H2"]
    assert check.recall == pytest.approx(0.5)


def test_report_lists_head_roles_of_a_model_with_a_reference(
    runs, tmp_path: Path, monkeypatch
) -> None:
    import circuits.causal.reference

    def load_reference(model_spec: str, task: str) -> Reference | None:
        return make_reference() if model_spec == "fake-small" else None

    monkeypatch.setattr(circuits.causal.reference, "load_reference", load_reference)
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    small = make_run(tmp_path / "again", model="fake-small", n_layers=2)
    view = component_view(Circuit.from_json(json.loads((small / "circuit.json").read_text())), 4)
    assert view.scores["L1H0"] > 0.05 and view.scores["L1H2"] == 0.0
    assert f"| name_mover | L1H0 | {view.scores['L1H0']:.3f} | found |" in report
    assert "| name_mover | L1H2 | 0.000 | missed |" in report
    assert "Reference circuit: 3 of 4 components scored >= 5% (75%); missed: L1H2." in report
    assert "No causal reference for this model (run `python -m benchmarks.ground_truth`)." in (
        report
    )
