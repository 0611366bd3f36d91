"""Fuzzing the inputs a user types: task files and `circuits run` options. Whatever they hold,
the answer is a one-line error (a CircuitsError, or a usage error from the parser), never a
traceback."""

import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuits.errors import CircuitsError, one_line
from circuits.models import load_tokenizer
from circuits.tasks import build_prompt_set, load_task
from circuits.zoo.registry import zoo_path

TASKS = sorted(Path("tasks").glob("*.toml"))
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(zoo_path("tiny"))


def build(text: bytes, tokenizer) -> None:
    """Load and build a task file holding `text`; only CircuitsError may come out."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "task.toml"
        path.write_bytes(text)
        try:
            spec = load_task(path)
            build_prompt_set(spec, tokenizer, n_ctx=256, count=3)
        except CircuitsError as err:
            assert "\n" not in one_line(err)


@FUZZ
@given(
    source=st.sampled_from(TASKS),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=3)), max_size=4),
)
def test_a_damaged_task_file_is_a_one_line_error(tokenizer, source, cut, flips) -> None:
    text = source.read_bytes()
    text = text[: int(len(text) * cut)] if cut < 0.2 else text
    for where, junk in flips:
        at = int(len(text) * where)
        text = text[:at] + junk + text[at + len(junk) :]
    build(text, tokenizer)


scalars = st.one_of(
    st.text(max_size=12),
    st.integers(-(10**7), 10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.text(max_size=6), max_size=3),
)


@FUZZ
@given(
    source=st.sampled_from(TASKS),
    section=st.sampled_from(["task", "prompts", "fillers", "roles"]),
    key=st.one_of(
        st.sampled_from(
            [
                "name",
                "metric",
                "count",
                "seed",
                "template",
                "corrupt",
                "answers",
                "wrong",
                "IO",
                "S",
                "END",
                "aligned",
                "distinct",
                "model",
                "XX",
                "YY",
            ]
        ),
        st.text(min_size=1, max_size=8),
    ),
    value=scalars,
)
def test_a_task_file_with_a_wrong_value_is_a_one_line_error(
    tokenizer, source, section, key, value
) -> None:
    data = tomllib.loads(source.read_text())
    data.setdefault(section, {})[key] = value
    build(_to_toml(data).encode(), tokenizer)


def _to_toml(data: dict) -> str:
    """A small TOML writer for the fuzzed tables (values: str, int, float, bool, lists, tables)."""
    import json
    import math

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return (
                "nan"
                if math.isnan(v)
                else ("inf" if v > 0 else "-inf")
                if math.isinf(v)
                else repr(v)
            )
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(type(v))

    lines = []
    for table, entries in data.items():
        if not isinstance(entries, dict):
            lines.append(f"{json.dumps(table)} = {value(entries)}")
            continue
        flat = {k: v for k, v in entries.items() if not (isinstance(v, dict) and k == "gpt2")}
        lines.append(f"[{table}]")
        lines += [f"{json.dumps(k)} = {value(v)}" for k, v in flat.items()]
    return "\n".join(lines) + "\n"


OPTION_VALUES = ["-1", "0", "1", "5", "0.5", "1e9", "nan", "inf", "abc", "", "1000000"]
RUN_OPTIONS = [
    "--count",
    "--node-threshold",
    "--max-feature-share",
    "--min-gap",
    "--draw-nodes",
    "--threads",
    "--engine",
    "--model",
    "--transcoders",
]


class Loaded(Exception):
    """The command got past every cheap check to the model load."""


@FUZZ
@given(
    options=st.lists(
        st.tuples(st.sampled_from(RUN_OPTIONS), st.sampled_from(OPTION_VALUES)), max_size=4
    ),
    task=st.sampled_from([*map(str, TASKS), "missing.toml", "tasks"]),
)
def test_run_options_are_checked_without_a_traceback(monkeypatch, capsys, options, task) -> None:
    from circuits.cli.main import main

    def loaded(*args, **kwargs):
        raise Loaded

    monkeypatch.setattr("circuits.models.load_model", loaded)
    argv = ["run", task, *[part for option in options for part in option]]
    capsys.readouterr()  # the fixture lives across examples: drop what earlier ones printed
    with tempfile.TemporaryDirectory() as tmp:
        argv += ["--out", str(Path(tmp) / "run")]
        try:
            code = main(argv)
        except SystemExit as exit_info:
            assert exit_info.code == 2  # a usage error, from the parser
            return
        except Loaded:
            return
    assert code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error:" in line]
    assert len(errors) == 1
