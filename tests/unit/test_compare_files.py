"""`circuits compare` on run directories whose summary.json or components.json is broken: one line
naming the file and the key, never a traceback."""

import json
from pathlib import Path

import pytest

from circuits.cli.main import main
from circuits.compare.load import COMPONENTS_KEYS, load_run
from circuits.errors import CompareError
from circuits.run.components import ComponentView
from tests.builders import SMALL_CURVE, make_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run", model="fake-small", n_layers=2, curve=SMALL_CURVE)


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def refusal(run_dir: Path) -> str:
    with pytest.raises(CompareError) as info:
        load_run(run_dir)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.pop("task"), "missing key 'task'"),
        (lambda s: s.update(model=["fake"]), "key 'model' must be a string, got ['fake']"),
        (lambda s: s.update(n_prompts="4"), "key 'n_prompts' must be an integer, got '4'"),
        (lambda s: s.update(n_prompts=True), "key 'n_prompts' must be an integer, got True"),
        (lambda s: s.update(d_model=12.5), "key 'd_model' must be an integer, got 12.5"),
        (
            lambda s: s.update({"validation.faithfulness": None}),
            "key 'validation.faithfulness' must be a number, got None",
        ),
        (
            lambda s: s.update(faithfulness_curve=[[0, 0.0], [10]]),
            "key 'faithfulness_curve' must be a list of [nodes, faithfulness] pairs",
        ),
    ],
)
def test_bad_summary_names_the_file_and_the_key(run_dir, change, expected) -> None:
    edit(run_dir / "summary.json", change)
    message = refusal(run_dir)
    assert message.startswith(f"{run_dir / 'summary.json'}: {expected}")
    assert message.endswith("rerun `circuits run` to rewrite the run")


def test_summary_keys_of_the_run_itself_are_left_alone(run_dir) -> None:
    edit(run_dir / "summary.json", lambda s: s.update(engine=3, something_new={"a": 1}))
    assert load_run(run_dir).task == "ioi"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(colour=1), "unknown key 'colour'; expected only task, model,"),
        (lambda c: c.pop("scores"), "missing key 'scores'"),
        (lambda c: c.update(n_heads="4"), "key 'n_heads' must be an integer, got '4'"),
        (
            lambda c: c["scores"].update(L0H1="big"),
            "key 'scores' must be an object of numbers, got {",
        ),
        (lambda c: c.update(flow=[1, 2]), "key 'flow' must be an object of numbers, got [1, 2]"),
    ],
)
def test_bad_components_names_the_file_and_the_key(run_dir, change, expected) -> None:
    edit(run_dir / "components.json", change)
    assert refusal(run_dir).startswith(f"{run_dir / 'components.json'}: {expected}")


@pytest.mark.parametrize("name", ["summary.json", "components.json"])
@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00", b"[1, 2]"])
def test_files_that_are_not_json_objects_are_one_line(run_dir, name, content) -> None:
    (run_dir / name).write_bytes(content)
    assert refusal(run_dir).startswith(f"{run_dir / name}: ")


def test_components_keys_are_the_fields_of_a_component_view() -> None:
    assert set(COMPONENTS_KEYS) == set(ComponentView.__dataclass_fields__)


def test_compare_reports_a_bad_file_without_a_traceback(run_dir, tmp_path, capsys) -> None:
    other = make_run(tmp_path / "other", model="fake-big", n_layers=3, curve=SMALL_CURVE)
    edit(other / "summary.json", lambda s: s.update(n_prompts=[4]))
    assert main(["compare", str(run_dir), str(other), "--out", str(tmp_path / "cmp")]) == 1
    assert capsys.readouterr().err == (
        f"circuits: error: {other / 'summary.json'}: key 'n_prompts' must be an integer, got [4]; "
        "rerun `circuits run` to rewrite the run\n"
    )
