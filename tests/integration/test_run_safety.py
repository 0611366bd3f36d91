"""`circuits run` and the commands that write into models never destroy or lose a user's data:
bad outputs are refused before any work, and a failed drawing costs only the drawing."""

import json
from pathlib import Path

import pytest

from circuits.cli.main import main
from transcoders.cli.main import main as transcoders_main

GREATER_THAN = Path("tasks/greater_than.toml")


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a command gets as far as loading a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the cheap checks")

    monkeypatch.setattr("circuits.models.load_model", refuse)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error:" in line]
    assert len(errors) == 1, err
    return errors[0]


def test_out_on_a_users_folder_is_refused_before_any_work(tmp_path, capsys, no_model_load):
    work = tmp_path / "work"
    (work / "old_experiment").mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    assert main(["run", str(GREATER_THAN), "--out", str(work)]) == 1
    assert "did not write" in one_line_error(capsys)
    assert (work / "notes.txt").read_text() == "mine"
    assert (work / "old_experiment").is_dir()


def test_out_on_a_file_or_the_task_folder_or_here_is_refused(
    tmp_path, capsys, monkeypatch, no_model_load
):
    target = tmp_path / "results.csv"
    target.write_text("1,2\n")
    task = tmp_path / "tasks" / "gt.toml"
    task.parent.mkdir()
    task.write_text(GREATER_THAN.read_text())
    for out in (target, task.parent, target / "run"):
        assert main(["run", str(task), "--out", str(out)]) == 1
        one_line_error(capsys)
    assert target.read_text() == "1,2\n" and task.exists()
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(task), "--out", "."]) == 1
    assert "current directory" in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "tasks"]


@pytest.mark.parametrize(
    "option",
    [
        ["--threads", "-1"],
        ["--threads", "0"],
        ["--node-threshold", "5"],
        ["--max-feature-share", "0"],
        ["--draw-nodes", "0"],
        ["--count", "0"],
        ["--count", "many"],
    ],
)
def test_bad_option_values_are_usage_errors_before_any_work(option, capsys, no_model_load):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(GREATER_THAN), *option])
    assert exit_info.value.code == 2
    assert option[0] in capsys.readouterr().err


def test_a_huge_count_is_refused_before_any_work(tmp_path, capsys, no_model_load):
    assert main(["run", str(GREATER_THAN), "--count", "1000000", "--out", str(tmp_path / "r")]) == 1
    assert "1000000" in one_line_error(capsys).replace(",", "")


def test_a_task_whose_corruption_changes_nothing_is_refused(tmp_path, capsys):
    text = GREATER_THAN.read_text().replace("{YY_CORRUPT}", "{YY}")
    text = text.replace('YY_CORRUPT = ["01"]', "")  # the corrupted prompt is the clean one
    task = tmp_path / "same.toml"
    task.write_text(text)
    out = tmp_path / "run"
    assert main(["run", str(task), "--count", "2", "--out", str(out)]) == 1
    err = one_line_error(capsys)
    assert "gap of 0.0000" in err and "0.05" in err
    assert not out.exists()


def test_a_failed_drawing_costs_only_the_drawing(tmp_path, capsys, monkeypatch):
    from circuits.errors import CircuitsError

    def no_renderer(*args, **kwargs):
        raise CircuitsError("no renderer here")

    monkeypatch.setattr("circuits.run.drawing.render_svg", no_renderer)
    monkeypatch.setattr("circuits.run.drawing.render_png", no_renderer)
    out = tmp_path / "run"
    assert main(["run", str(GREATER_THAN), "--count", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipped: graph.svg not drawn (no renderer here)" in printed
    names = {p.name for p in out.iterdir()}
    assert {"circuit.json", "summary.json", "report.md", "graph.json", "graphs"} <= names
    assert "graph.svg" not in names and "graph.png" not in names
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["skipped"]) == 2
    assert summary["gap"] == pytest.approx(summary["metric_clean"] - summary["metric_corrupt"])
    report = (out / "report.md").read_text()
    assert "Not drawn: graph.svg" in report and "clean - corrupted gap" in report


def capture_out(monkeypatch, target: str):
    """Record the path a command checks as its output, then stop it there."""
    seen = []

    class Stop(Exception):
        pass

    def check(path, **kwargs):
        seen.append(Path(path))
        raise Stop

    monkeypatch.setattr(target, check)
    return seen, Stop


def test_training_a_zoo_model_writes_a_new_directory_by_default(monkeypatch):
    from circuits.zoo.registry import zoo_path

    seen, stop = capture_out(monkeypatch, "circuits.paths.check_output_dir")
    with pytest.raises(stop):
        main(["zoo", "train", "small"])
    assert seen == [Path("out/zoo/small")]
    with pytest.raises(stop):
        main(["zoo", "train", "small", "--into-zoo"])
    assert seen[-1] == zoo_path("small")


def test_a_reference_writes_a_new_file_by_default(monkeypatch):
    from circuits.zoo.registry import zoo_path

    seen, stop = capture_out(monkeypatch, "circuits.paths.check_output_file")
    with pytest.raises(stop):
        main(["reference", "tasks/ioi.toml", "--model", "zoo:small"])
    assert seen == [Path("out/reference/small/ioi.json")]
    with pytest.raises(stop):
        main(["reference", "tasks/ioi.toml", "--model", "zoo:small", "--into-model"])
    assert seen[-1] == zoo_path("small") / "reference" / "ioi.json"


def test_training_transcoders_writes_a_new_directory_by_default(monkeypatch):
    from circuits.zoo.registry import zoo_path

    seen, stop = capture_out(monkeypatch, "circuits.paths.check_output_dir")
    with pytest.raises(stop):
        transcoders_main(["train", "--model", "zoo:tiny"])
    assert seen == [Path("out/transcoders/tiny")]
    with pytest.raises(stop):
        transcoders_main(["train", "--model", "zoo:tiny", "--into-model"])
    assert seen[-1] == zoo_path("tiny") / "transcoders"


def test_transcoder_options_are_checked_before_the_model_loads(capsys, tmp_path, no_model_load):
    with pytest.raises(SystemExit) as exit_info:
        transcoders_main(
            ["train", "--model", "zoo:tiny", "--lr", "-1", "--out", str(tmp_path / "t")]
        )
    assert exit_info.value.code == 2
    assert "lr" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        transcoders_main(["train", "--model", "zoo:tiny", "--threads", "-1"])


def test_the_shipped_models_refuse_a_run_directory_over_them(capsys, no_model_load):
    from circuits.zoo.registry import zoo_path

    before = sorted(p.name for p in zoo_path("tiny").iterdir())
    assert main(["run", str(GREATER_THAN), "--out", str(zoo_path("tiny"))]) == 1
    assert "zoo_model" in one_line_error(capsys)
    assert sorted(p.name for p in zoo_path("tiny").iterdir()) == before


def test_an_interrupt_while_writing_leaves_no_partial_directory(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("circuits.run_directory.write_drawings", interrupted)
    out = tmp_path / "run"
    assert main(["run", str(GREATER_THAN), "--count", "2", "--out", str(out)]) == 130
    assert list(tmp_path.iterdir()) == []


def test_zoo_eval_needs_at_least_one_prompt(capsys, no_model_load):
    with pytest.raises(SystemExit) as exit_info:
        main(["zoo", "eval", "tiny", "--n-prompts", "0"])
    assert exit_info.value.code == 2
    assert "--n-prompts" in capsys.readouterr().err
