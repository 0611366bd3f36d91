"""`circuits tasks show` and `circuits tasks check`."""

from pathlib import Path

import pytest

from circuits.cli.main import main

TASKS = Path(__file__).resolve().parents[2] / "tasks"


def test_tasks_help_shows_examples(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tasks", "--help"])
    assert exit_info.value.code == 0
    assert "circuits tasks check tasks/*.toml" in capsys.readouterr().out


def test_show_prints_prompts_with_tokens_roles_and_answers(capsys) -> None:
    assert main(["tasks", "show", str(TASKS / "ioi.toml"), "--count", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("\nprompt ") == 2
    for label in ("clean:", "corrupt:", "tokens:", "changed:", "roles:", "answers:", "wrong:"):
        assert out.count(f"  {label}") == 2
    assert "<|endoftext|>|" in out and "S2=" in out and "END=" in out


def test_check_passes_the_shipped_files(capsys) -> None:
    files = sorted(str(p) for p in TASKS.glob("*.toml"))
    assert len(files) >= 4
    assert main(["tasks", "check", *files]) == 0
    assert capsys.readouterr().out.count("ok ") == len(files)


def test_check_fails_a_bad_file_with_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((TASKS / "ioi.toml").read_text().replace("count = 20", "count = 20\nfoo = 1"))
    assert main(["tasks", "check", str(TASKS / "ioi.toml"), str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"circuits: error: {bad}: [task] foo: unknown key; expected one of " + (
        "name, description, metric, count, seed, model, transcoders\n"
    )
    assert captured.out.startswith("ok ")


def test_show_rejects_a_non_positive_count() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tasks", "show", str(TASKS / "ioi.toml"), "--count", "0"])
    assert exit_info.value.code == 2
