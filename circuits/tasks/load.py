"""Read a task file (TOML) into a `TaskSpec`, rejecting unknown keys and naming missing ones.

The format is documented, with an example, in `tasks/README.md`.
"""

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from circuits.errors import TaskFileError
from circuits.tasks.fillers import parse_range
from circuits.tasks.spec import (
    COMPARISONS,
    AnswerRange,
    Answers,
    AnswerTemplates,
    RoleRef,
    TaskSpec,
)

README = "tasks/README.md"

SECTIONS = {"task": True, "prompts": True, "fillers": False, "roles": False, "ground_truth": False}
"""Top-level tables, and whether each is required."""
TASK_KEYS = {
    "name": True,
    "description": True,
    "metric": True,
    "count": True,
    "seed": True,
    "model": False,
    "transcoders": False,
}
PROMPT_KEYS = {
    "template": True,
    "corrupt": True,
    "answers": True,
    "wrong": False,
    "distinct": False,
    "aligned": False,
    "position": False,
    "cases": False,
}


def load_task(path: Path | str) -> TaskSpec:
    """Parse and check the task file at `path`; raises `TaskFileError` naming file, key and fix."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))  # offsets of the whole file
    except (FileNotFoundError, IsADirectoryError):
        raise TaskFileError(f"{path}: no such task file") from None
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise TaskFileError(
            f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} on line {line}); save "
            "the task file as UTF-8"
        ) from None
    except OSError as err:
        raise TaskFileError(f"{path}: cannot read the task file ({err.strerror or err})") from None
    except tomllib.TOMLDecodeError as err:
        raise TaskFileError(f"{path}: not valid TOML ({err})") from None
    try:
        return _spec(path, data)
    except ValueError as err:
        raise TaskFileError(f"{path}: {err}") from None


def _table(data: Any, where: str, keys: Mapping[str, bool] | None = None) -> dict[str, Any]:
    """`data` as a table; with `keys` (name -> required), reject unknown and missing keys."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: must be a table, got {type(data).__name__}")
    if keys is not None:
        for key in data:
            if key not in keys:
                raise ValueError(f"{where} {key}: unknown key; expected one of {', '.join(keys)}")
        missing = [key for key, required in keys.items() if required and key not in data]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(missing)}; add them (see {README})")
    return data


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be a string, got {value!r}")
    return value


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: must be an integer, got {value!r}")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: must be a list of strings, got {value!r}")
    return tuple(value)


def _range(value: Any, where: str) -> tuple[str, ...]:
    text = _string(value, where)
    try:
        return parse_range(text)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _groups(value: Any, where: str) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: must be a list of lists of filler names, got {value!r}")
    return tuple(_strings(group, where) for group in value)


def _spec(path: Path, data: dict[str, Any]) -> TaskSpec:
    for section in data:
        if section not in SECTIONS:
            raise ValueError(f"[{section}]: unknown section; expected one of {', '.join(SECTIONS)}")
    missing = [key for key, required in SECTIONS.items() if required and key not in data]
    if missing:
        raise ValueError(f"missing section(s) {', '.join(f'[{m}]' for m in missing)}")
    task = _table(data["task"], "[task]", TASK_KEYS)
    prompts = _table(data["prompts"], "[prompts]", PROMPT_KEYS)
    metric = _string(task["metric"], "[task] metric")
    optional = {}
    for key, field in (("model", "default_model"), ("transcoders", "default_transcoders")):
        if key in task:
            optional[field] = _beside(path, _string(task[key], f"[task] {key}"))
    for key in ("distinct", "aligned"):
        if key in prompts:
            optional[key] = _groups(prompts[key], f"[prompts] {key}")
    if "wrong" in prompts:
        optional["wrong"] = _answers(prompts["wrong"], "[prompts] wrong")
    if "position" in prompts:
        optional["position"] = _string(prompts["position"], "[prompts] position")
    return TaskSpec(
        name=_string(task["name"], "[task] name"),
        description=_string(task["description"], "[task] description"),
        path=path,
        metric=metric,
        count=_int(task["count"], "[task] count"),
        seed=_int(task["seed"], "[task] seed"),
        ground_truth=_ground_truth(data.get("ground_truth", {})),
        template=_string(prompts["template"], "[prompts] template"),
        corrupt=_string(prompts["corrupt"], "[prompts] corrupt"),
        answers=_answers(prompts["answers"], "[prompts] answers"),
        fillers=_fillers(_table(data.get("fillers", {}), "[fillers]")),
        cases=_cases(prompts.get("cases", [])),
        roles=_roles(_table(data.get("roles", {}), "[roles]")),
        **optional,
    )


def _beside(path: Path, spec: str) -> str:
    """`./dir` and `../dir` are relative to the task file, so files can ship beside models."""
    if spec.startswith(("./", "../")):
        return os.path.normpath(path.parent / spec)
    return spec


def _answers(value: Any, where: str) -> Answers:
    """A list of templates, or `{ range = "00..99", above = "YY" }` (or another comparison)."""
    if isinstance(value, list):
        return AnswerTemplates(templates=_strings(value, where))
    keys = {"range": True} | dict.fromkeys(COMPARISONS, False)
    table = _table(value, where, keys)
    compared = [key for key in COMPARISONS if key in table]
    if len(compared) != 1:
        raise ValueError(
            f"{where}: give exactly one of {', '.join(COMPARISONS)} with range, e.g. "
            '{ range = "00..99", above = "YY" }'
        )
    return AnswerRange(
        values=_range(table["range"], f"{where} range"),
        comparison=compared[0],
        filler=_string(table[compared[0]], f"{where} {compared[0]}"),
    )


def _fillers(table: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each filler: a list of strings, `{ range = "02..98" }` or `{ same_as = "OTHER" }`."""
    resolved: dict[str, tuple[str, ...]] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> tuple[str, ...]:
        where = f"[fillers] {name}"
        if name in chain:
            raise ValueError(f"{where}: same_as loops ({' -> '.join((*chain, name))})")
        if name not in table:
            raise ValueError(f"[fillers] {chain[-1]}: same_as names {name!r}, not a filler")
        value = table[name]
        if isinstance(value, list):
            return _strings(value, where)
        spec = _table(value, where, {"range": False, "same_as": False})
        if len(spec) != 1:
            raise ValueError(
                f'{where}: must be a list of strings, {{ range = "02..98" }} or '
                '{ same_as = "OTHER" }'
            )
        if "range" in spec:
            return _range(spec["range"], f"{where} range")
        return resolve(_string(spec["same_as"], f"{where} same_as"), (*chain, name))

    for name in table:
        resolved[name] = resolve(name, ())
    return resolved


def _cases(value: Any) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list):
        raise ValueError("[prompts] cases: must be a list of tables ([[prompts.cases]])")
    cases = []
    for i, case in enumerate(value):
        table = _table(case, f"[prompts] cases[{i}]")
        cases.append({k: _string(v, f"[prompts] cases[{i}] {k}") for k, v in table.items()})
    return tuple(cases)


def _roles(table: dict[str, Any]) -> dict[str, RoleRef]:
    roles = {}
    for role, ref in table.items():
        text = _string(ref, f"[roles] {role}")
        try:
            roles[role] = RoleRef.parse(text)
        except ValueError as err:
            raise ValueError(f"[roles] {role}: {err}") from None
    return roles


def _ground_truth(value: Any) -> dict[str, dict]:
    """Model id -> the file's facts, kept as written (components, roles, sources)."""
    table = _table(value, "[ground_truth]")
    return {model: _table(facts, f"[ground_truth.{model}]") for model, facts in table.items()}
