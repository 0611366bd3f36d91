"""The causal reference of one task on one model: what each head and MLP does to the metric when
patched, stored with the model card.

Effects are shares of the task's clean-minus-corrupt gap: 1.0 means patching the component
(or the path) from the corrupted prompt moves the metric all the way to its corrupted value.
The reference circuit is every component whose total or direct effect reaches `threshold` in
magnitude, plus every head given a role. Single-position effects are mean ablations, which
also remove what a position says about the prompt in general (which name, which year), so they
serve the role rules and not the circuit.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from circuits.paths import check_output_file, record_in_marked_parent, write_file_atomic

SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class ComponentEffect:
    total: float
    """Resample-ablating the component's output at every position (all paths)."""
    direct: float
    """Path patching the component's output into the final residual stream only."""
    by_position: dict[str, float] = field(default_factory=dict)
    """Role -> mean-ablating the output at that role's position only (replacing it by its mean
    there over the prompts)."""


@dataclass(frozen=True, kw_only=True)
class Reference:
    task: str
    model: str
    n_layers: int
    n_heads: int
    n_prompts: int
    metric_clean: float
    """Mean task metric on the clean prompts."""
    metric_corrupt: float
    """Mean task metric on the corrupted prompts."""
    components: dict[str, ComponentEffect]
    edges: dict[str, float]
    """`"SENDER->RECEIVER"` -> effect of path patching the sender's output into the receiver's
    input only (everything downstream of the receiver recomputed)."""
    roles: dict[str, list[str]]
    """Role -> heads (e.g. IOI's `name_mover`), for tasks that define roles."""
    threshold: float
    """Smallest effect (share of the gap) that puts a component or edge in the circuit."""
    command: str
    """The command that regenerates this file."""
    seconds: float = 0.0
    schema_version: int = SCHEMA_VERSION
    kind: str = "causal_reference"

    @property
    def circuit(self) -> list[str]:
        """The reference circuit's components, in forward-pass order."""
        cut = self.threshold
        scores = self.component_scores()
        inside = {name for name, score in scores.items() if score >= cut}
        inside |= {head for heads in self.roles.values() for head in heads}
        return [name for name in self.components if name in inside]

    @property
    def circuit_edges(self) -> list[str]:
        return [edge for edge, effect in self.edges.items() if abs(effect) >= self.threshold]

    def component_scores(self) -> dict[str, float]:
        """One score per component for ranking: its total or direct effect, the larger in
        magnitude."""
        return {name: max(abs(e.total), abs(e.direct)) for name, e in self.components.items()}

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "circuit": self.circuit}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Reference":
        if data.get("kind") != "causal_reference":
            raise ValueError(f"kind: expected 'causal_reference', got {data.get('kind')!r}")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version: {data.get('schema_version')} (this version reads "
                f"{SCHEMA_VERSION}); regenerate the reference with its `command`"
            )
        fields = {k: v for k, v in data.items() if k != "circuit"}
        fields["components"] = {k: ComponentEffect(**v) for k, v in data["components"].items()}
        return cls(**fields)

    def save(self, path: Path) -> None:
        """Write atomically (a reader never sees half a file), never over a file this tool did
        not write."""
        check_output_file(path, kind=self.kind)
        write_file_atomic(path, (json.dumps(self.to_json(), indent=1) + "\n").encode())
        record_in_marked_parent(path)


def reference_path(model_dir: Path, task: str) -> Path:
    """Where a model's reference for `task` lives: next to its model card."""
    return model_dir / "reference" / f"{task}.json"


def load_reference(model_spec: str, task: str) -> Reference | None:
    """The stored reference of `task` on a zoo or local model, or None if there is none."""
    from circuits.models import resolve_model_dir

    model_dir = resolve_model_dir(model_spec)
    if model_dir is None:
        return None
    path = reference_path(model_dir, task)
    if not path.exists():
        return None
    return Reference.from_json(json.loads(path.read_text()))
