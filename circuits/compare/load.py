"""Run directories of `circuits run`, read back for a comparison and ordered by model size."""

import json
import logging
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuits.causal.naming import parse_component
from circuits.errors import CircuitsError, CompareError
from circuits.run.circuit import Circuit
from circuits.run.components import ComponentView, component_view

log = logging.getLogger(__name__)

REQUIRED_FILES = ("summary.json", "circuit.json")
"""What makes a directory a run directory; everything else is optional."""

Check = tuple[str, Callable[[Any], bool], bool]
"""What a JSON value must be (in words, and as a test), and whether its key is required."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_scores(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_number(v) for v in value.values())


def _is_curve(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and _is_int(p[0]) and _is_number(p[1]) for p in value
    )


SUMMARY_KEYS: dict[str, Check] = {
    "task": ("a string", _is_str, True),
    "model": ("a string", _is_str, True),
    "metric": ("a string", _is_str, True),
    "n_prompts": ("an integer", _is_int, True),
    "d_model": ("an integer", _is_int, False),
    "mean_active_features": ("a number", _is_number, False),
    "circuit_features": ("an integer", _is_int, False),
    "circuit_feature_share": ("a number", _is_number, False),
    "circuit_nodes": ("an integer", _is_int, False),
    "validation.faithfulness": ("a number", _is_number, False),
    "validation.completeness": ("a number", _is_number, False),
    "faithfulness_curve": ("a list of [nodes, faithfulness] pairs", _is_curve, False),
}
"""The keys of summary.json a comparison reads. Its other keys are `circuits run`'s own and
ignored here; older runs lack the optional ones."""
COMPONENTS_KEYS: dict[str, Check] = {
    "task": ("a string", _is_str, True),
    "model": ("a string", _is_str, True),
    "n_layers": ("an integer", _is_int, True),
    "n_heads": ("an integer", _is_int, True),
    "scores": ("an object of numbers", _is_scores, True),
    "edges": ("an object of numbers", _is_scores, False),
    "flow": ("an object of numbers", _is_scores, False),
}
"""Every key of components.json (a `ComponentView`); others are refused."""


@dataclass(frozen=True, kw_only=True)
class RunDir:
    """One run directory, read back."""

    path: Path
    summary: dict[str, Any]
    """summary.json as written by `circuits run`, its keys in SUMMARY_KEYS checked."""
    circuit: Circuit
    view: ComponentView
    """The circuit's weight on each head and MLP."""
    view_source: str
    """Where `view` comes from: `components.json`, or how it was computed for older runs."""
    d_model: int | None
    """Residual stream width, from the summary or the model's config.json; None if unknown."""

    @property
    def model(self) -> str:
        return self.summary["model"]

    @property
    def task(self) -> str:
        return self.summary["task"]

    @property
    def n_layers(self) -> int:
        return self.circuit.n_layers

    @property
    def n_heads(self) -> int:
        return self.view.n_heads

    @property
    def curve(self) -> list[tuple[int, float]] | None:
        """Faithfulness against nodes kept, or None for runs older than the curve in JSON."""
        points = self.summary.get("faithfulness_curve")
        if not points:
            return None
        return [(int(size), float(f)) for size, f in points]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: not JSON, or not UTF-8
        raise CompareError(
            f"{path}: cannot read it as JSON ({err}); rerun `circuits run`"
        ) from None
    if not isinstance(data, dict):
        raise CompareError(f"{path}: expected a JSON object; rerun `circuits run`")
    return data


def _check_keys(
    path: Path, data: Mapping[str, Any], checks: Mapping[str, Check], *, closed: bool
) -> None:
    """Raise CompareError naming `path` and the first key of `data` that is missing, of the wrong
    type, or (where `closed`) unknown."""
    if closed and (unknown := sorted(set(data) - set(checks))):
        raise CompareError(
            f"{path}: unknown key {unknown[0]!r}; expected only {', '.join(checks)} (rerun "
            "`circuits run` to rewrite it)"
        )
    for key, (what, test, required) in checks.items():
        if key not in data:
            if required:
                raise CompareError(
                    f"{path}: missing key {key!r}; rerun `circuits run` to rewrite the run"
                )
            continue
        if not test(data[key]):
            raise CompareError(
                f"{path}: key {key!r} must be {what}, got {reprlib.repr(data[key])}; rerun "
                "`circuits run` to rewrite the run"
            )


def model_config(model_spec: str) -> dict[str, Any] | None:
    """The Hugging Face config.json of a zoo or local model, or None where it is not here."""
    from circuits.models import resolve_model_dir

    try:
        model_dir = resolve_model_dir(model_spec)
    except CircuitsError:
        return None
    if model_dir is None or not (model_dir / "config.json").exists():
        return None
    return json.loads((model_dir / "config.json").read_text())


def _width(summary: dict[str, Any], config: dict[str, Any] | None) -> int | None:
    if "d_model" in summary:
        return int(summary["d_model"])
    for key in ("n_embd", "d_model", "hidden_size"):
        if config is not None and key in config:
            return int(config[key])
    return None


def _view(path: Path, circuit: Circuit, config: dict[str, Any] | None) -> tuple[ComponentView, str]:
    """components.json, or the view computed from the circuit for runs older than that file."""
    if (path / "components.json").exists():
        data = _read_json(path / "components.json")
        _check_keys(path / "components.json", data, COMPONENTS_KEYS, closed=True)
        return ComponentView.from_json(data), "components.json"
    if circuit.gap == 0:
        raise CompareError(
            f"{path} has no components.json and its circuit.json records no clean-corrupt gap "
            "(written before the effects the component view reads); rerun `circuits run`"
        )
    if config is not None and "n_head" in config:
        n_heads = int(config["n_head"])
        source = f"computed from circuit.json ({n_heads} heads per layer from the model config)"
    else:
        seen = [parse_component(h).head for e in circuit.edges for h, _ in e.heads]
        n_heads = max((h for h in seen if h is not None), default=-1) + 1
        source = (
            f"computed from circuit.json ({n_heads} heads per layer: the highest head index on "
            "its edges + 1)"
        )
    log.info("%s has no components.json: %s", path, source)
    return component_view(circuit, n_heads), source


def load_run(path: Path) -> RunDir:
    """Read a run directory; raises CompareError naming what is missing."""
    if not path.is_dir():
        raise CompareError(
            f"{path} is not a directory; make a run directory with `circuits run TASK --out {path}`"
        )
    for name in REQUIRED_FILES:
        if not (path / name).exists():
            raise CompareError(
                f"{path} is not a run directory (no {name}); make one with "
                f"`circuits run TASK --out {path}`"
            )
    summary = _read_json(path / "summary.json")
    _check_keys(path / "summary.json", summary, SUMMARY_KEYS, closed=False)
    try:
        circuit = Circuit.from_json(_read_json(path / "circuit.json"))
    except (KeyError, TypeError) as err:
        raise CompareError(
            f"{path / 'circuit.json'} is not a circuit ({err}); rerun `circuits run`"
        ) from None
    config = model_config(summary["model"])
    view, source = _view(path, circuit, config)
    return RunDir(
        path=path,
        summary=summary,
        circuit=circuit,
        view=view,
        view_source=source,
        d_model=_width(summary, config),
    )


def load_runs(paths: list[Path]) -> list[RunDir]:
    """Read run directories of one task, smallest model first (layers, then width; ties and
    unknown widths keep the order given)."""
    if len(paths) < 2:
        raise CompareError(f"compare needs at least 2 run directories, got {len(paths)}")
    runs = [load_run(path) for path in paths]
    first = runs[0]
    for run in runs[1:]:
        if run.task != first.task:
            raise CompareError(
                f"tasks differ: {first.path} holds {first.task!r} and {run.path} holds "
                f"{run.task!r}; compare runs of one task"
            )
    return sorted(runs, key=lambda r: (r.n_layers, r.d_model or 0))
