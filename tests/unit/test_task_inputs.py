"""Bad task input, refused in one line before any model loads: files that are not UTF-8, empty
templates and prompts, and counts of prompts past MAX_COUNT."""

from pathlib import Path

import pytest

from circuits.cli.main import main
from circuits.models import load_tokenizer, resolve_model_dir
from circuits.tasks import MAX_COUNT, TaskFileError, build_prompt_set, check_count, load_task

TASKS = Path(__file__).parents[2] / "tasks"

EMPTY_FILLER = """
[task]
name = "empty"
description = "A prompt that can be empty."
metric = "logit"
count = 2
seed = 0

[prompts]
template = "{X}"
corrupt = "{X}"
answers = [" Mary"]

[fillers]
X = ["", "  "]
"""


@pytest.fixture(scope="module")
def tokenizer():
    model_dir = resolve_model_dir("zoo:tiny")
    assert model_dir is not None
    return load_tokenizer(model_dir)


def ioi_with(tmp_path: Path, old: str, new: str, name: str = "task.toml") -> Path:
    text = (TASKS / "ioi.toml").read_text()
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


def test_non_utf8_file_is_refused_naming_it(tmp_path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[task]\nname = "café"\n'.encode("latin-1"))
    with pytest.raises(TaskFileError) as info:
        load_task(path)
    assert str(info.value) == (
        f"{path}: not UTF-8 text (byte 0xe9 on line 2); save the task file as UTF-8"
    )


def test_check_reports_each_bad_file_on_its_line_and_goes_on(tmp_path, capsys) -> None:
    latin = tmp_path / "latin1.toml"
    latin.write_bytes((TASKS / "ioi.toml").read_text().replace("When", "Wh\xe9n").encode("latin-1"))
    empty = ioi_with(tmp_path, 'template = "', 'template = "" #', name="empty.toml")
    files = [latin, TASKS / "ioi.toml", empty, tmp_path / "absent.toml"]
    assert main(["tasks", "check", *map(str, files)]) == 1
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert [line.split(": ")[2] for line in errors] == [str(latin), str(empty), str(files[3])]
    assert all(line.startswith("circuits: error: ") for line in errors)
    assert "[prompts] template: is empty" in errors[1]
    assert captured.out.startswith(f"ok {TASKS / 'ioi.toml'}: ")


@pytest.mark.parametrize("template", ["", "   "])
def test_empty_template_is_refused_naming_it(tmp_path, template) -> None:
    path = ioi_with(tmp_path, 'template = "', f'template = "{template}" #')
    with pytest.raises(TaskFileError) as info:
        load_task(path)
    assert str(info.value) == (
        f"{path}: [prompts] template: is empty; write the prompt's text, with {{FILLER}} "
        "placeholders"
    )


def test_template_that_builds_an_empty_prompt_is_refused(tmp_path, tokenizer) -> None:
    path = tmp_path / "empty.toml"
    path.write_text(EMPTY_FILLER)
    with pytest.raises(TaskFileError) as info:
        build_prompt_set(load_task(path), tokenizer, n_ctx=256)
    message = str(info.value)
    assert message.startswith(f"{path}: [prompts] template: prompt 0 is empty ('{{X}}' with {{")
    assert "\n" not in message


def test_counts_are_bounded_before_a_model_loads() -> None:
    assert check_count(1) == 1 and check_count(MAX_COUNT) == MAX_COUNT
    with pytest.raises(TaskFileError, match="count: must be at least 1, got 0"):
        check_count(0)
    with pytest.raises(TaskFileError) as info:
        check_count(1_000_000)
    assert str(info.value) == (
        "count: 1,000,000 prompts is more than the 10,000 a prompt set holds (building and "
        "attributing them would take days); use a count of at most 10,000"
    )


def test_building_a_million_prompts_is_refused_at_once(tokenizer) -> None:
    spec = load_task(TASKS / "ioi.toml")
    with pytest.raises(TaskFileError, match="at most 10,000"):
        build_prompt_set(spec, tokenizer, n_ctx=256, count=1_000_000)


def test_file_count_past_the_maximum_is_refused(tmp_path) -> None:
    path = ioi_with(tmp_path, "count = 20", "count = 20000")
    with pytest.raises(
        TaskFileError, match=r"\[task\] count: 20,000 prompts is more than the 10,000"
    ):
        load_task(path)


def test_show_refuses_a_count_past_the_maximum_as_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tasks", "show", str(TASKS / "ioi.toml"), "--count", "1000000"])
    assert exit_info.value.code == 2
    assert "use a count of at most 10,000" in capsys.readouterr().err
