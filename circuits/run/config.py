"""How `circuits run` runs a task: engine, prompt count, circuit size limits."""

from dataclasses import dataclass

ENGINES = ("full", "recursive")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """How a task is run."""

    engine: str = "full"
    """`full` (every edge of every prompt) or `recursive` (expanded from the metric)."""
    count: int | None = None
    """Prompts (default: the task file's count)."""
    node_threshold: float = 0.99
    """Features and errors are added by score until they hold this share of the total score
    (or the feature cap below is reached, which usually comes first)."""
    edge_threshold: float = 0.98
    """Share of the influence-weighted edge mass kept among kept nodes."""
    max_feature_share: float = 0.05
    """At most this share of the mean number of active features per prompt becomes circuit
    features (the strongest by influence)."""
    head_share: float = 0.1
    """Heads carrying at least this share of an edge (in magnitude: a head that opposes the
    edge carries a negative share) are named on it."""
    refine: int = 2
    """Re-rank the strongest `refine` x (feature cap) nodes by resampling each alone on the real
    model (0: first-order scores only)."""
    curve_points: int = 12
    """Sizes on the faithfulness-against-size curve."""
    min_gap: float = 0.05
    """Smallest |clean - corrupted| task metric, averaged over the prompts on the real model (in
    the metric's units), that a run measures against; a smaller gap is refused."""

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        for name in ("node_threshold", "edge_threshold", "max_feature_share", "head_share"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not self.min_gap > 0:
            raise ValueError(f"min_gap must be positive, got {self.min_gap}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if self.refine < 0:
            raise ValueError(f"refine must be >= 0, got {self.refine}")
