"""One method's verdict on the components of a model for one task: what every benchmark
method (reference, baselines, transcoder circuits) produces and the scorers read."""

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class ComponentScores:
    method: str
    nodes: dict[str, float]
    """Component name -> score; larger magnitude = more important (sign as the method gives)."""
    edges: dict[str, float] | None
    """`"SENDER->RECEIVER"` -> score, for methods that score edges."""
    seconds: float
    """Wall time the method took."""
    units: str
    """What the scores measure, e.g. "share of the clean-corrupt gap"."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
