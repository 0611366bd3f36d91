"""Head roles a circuit finds: the heads of a model's causal reference, each found or missed."""

from dataclasses import dataclass
from typing import Any

from circuits.causal.reference import Reference

MIN_SHARE = 0.05
"""Smallest component score (share of the metric's gap, `ComponentView.scores`) that counts as
found: half the causal references' 10% cut, as a circuit sees only the edges it kept."""

NO_REFERENCE = "no causal reference for this model (run `python -m benchmarks.ground_truth`)"


@dataclass(frozen=True, kw_only=True)
class RoleCheck:
    """A circuit's component scores against one causal reference."""

    roles: dict[str, dict[str, float]]
    """Role -> head -> the circuit's score for that head (0 where the circuit has none)."""
    found: list[str]
    """Reference circuit components the circuit scores at least `min_share`."""
    missed: list[str]
    """Reference circuit components it scores below that."""
    min_share: float

    @property
    def recall(self) -> float:
        """Share of the reference circuit's components the circuit finds."""
        n = len(self.found) + len(self.missed)
        return len(self.found) / n if n else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "min_share": self.min_share,
            "roles": {
                role: {
                    head: {"score": score, "found": score >= self.min_share}
                    for head, score in heads.items()
                }
                for role, heads in self.roles.items()
            },
            "reference_circuit": {"found": self.found, "missed": self.missed},
            "recall": self.recall,
        }


def check_roles(
    reference: Reference, scores: dict[str, float], *, min_share: float = MIN_SHARE
) -> RoleCheck:
    """Which heads of each reference role, and which reference circuit components, `scores`
    (a ComponentView's) gives at least `min_share`."""
    roles = {
        role: {head: scores.get(head, 0.0) for head in heads}
        for role, heads in reference.roles.items()
    }
    circuit = reference.circuit
    return RoleCheck(
        roles=roles,
        found=[c for c in circuit if scores.get(c, 0.0) >= min_share],
        missed=[c for c in circuit if scores.get(c, 0.0) < min_share],
        min_share=min_share,
    )


def find_reference(model_spec: str, task: str) -> tuple[Reference | None, str]:
    """The model's stored causal reference of `task`, or None and why there is none."""
    from circuits.causal.reference import load_reference
    from circuits.errors import ModelSpecError

    try:
        reference = load_reference(model_spec, task)
    except ModelSpecError:
        return None, NO_REFERENCE
    except (ValueError, KeyError, TypeError) as err:
        return None, f"the causal reference of this model cannot be read ({err})"
    if reference is None:
        return None, NO_REFERENCE
    return reference, ""
