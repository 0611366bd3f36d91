"""What a researcher reads about one transcoder feature: a label, where it fires, what it does.

A `FeatureDescription` is plain data (token strings and floats), serialised to JSON for reports,
graph files and the viewer; `FeatureAtlas` (atlas.py) computes them.
"""

from dataclasses import dataclass
from typing import Any

MAX_LABEL_CHARS = 30
"""Labels are short enough to sit in a node of a circuit diagram."""

_CONTEXT_KEYS = {"tokens", "active", "activation"}
_DESCRIPTION_KEYS = {
    "layer",
    "feature",
    "label",
    "frequency",
    "max_activation",
    "top_contexts",
    "promoted",
    "suppressed",
    "input_tokens",
}


@dataclass(frozen=True, kw_only=True)
class Context:
    """A stretch of held-out text around one token where the feature fired."""

    tokens: list[str]
    """The text, one decoded string per token."""
    active: int
    """Index in `tokens` of the token where the feature fired with `activation`."""
    activation: float
    """The feature's activation at that token."""

    def __post_init__(self) -> None:
        if not 0 <= self.active < len(self.tokens):
            raise ValueError(
                f"active must index tokens (0..{len(self.tokens) - 1}), got {self.active}"
            )

    def to_json(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "active": self.active, "activation": self.activation}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Context":
        _check_keys(data, _CONTEXT_KEYS, "context")
        return cls(
            tokens=[str(t) for t in data["tokens"]],
            active=int(data["active"]),
            activation=float(data["activation"]),
        )


@dataclass(frozen=True, kw_only=True)
class FeatureDescription:
    """Everything the project knows about one feature, in readable form."""

    layer: int
    """Transformer block whose MLP the feature's transcoder replaces."""
    feature: int
    """Index of the feature in that transcoder (0..d_transcoder-1)."""
    label: str
    """A short name (at most MAX_LABEL_CHARS): `says " Mary"`, `on " gave"`; see labels.py."""
    frequency: float
    """Share of the scanned held-out tokens where the feature is active (> 0)."""
    max_activation: float
    """Largest activation on the scanned tokens (0 if never active)."""
    top_contexts: list[Context]
    """The strongest activations, strongest first, each with the text around it."""
    promoted: list[tuple[str, float]]
    """Output tokens the decoder row pushes up most (logit lens of the row), highest first."""
    suppressed: list[tuple[str, float]]
    """Output tokens the decoder row pushes down most, lowest first."""
    input_tokens: list[tuple[str, float]]
    """Tokens whose embedding drives the feature's encoder most (direct path), highest first."""

    def __post_init__(self) -> None:
        if len(self.label) > MAX_LABEL_CHARS:
            raise ValueError(
                f"label must have at most {MAX_LABEL_CHARS} characters, got {self.label!r}"
            )
        if not 0.0 <= self.frequency <= 1.0:
            raise ValueError(f"frequency must lie in [0, 1], got {self.frequency}")

    @property
    def key(self) -> tuple[int, int]:
        """(layer, feature), the feature's address in its transcoder set."""
        return (self.layer, self.feature)

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "feature": self.feature,
            "label": self.label,
            "frequency": self.frequency,
            "max_activation": self.max_activation,
            "top_contexts": [c.to_json() for c in self.top_contexts],
            "promoted": [[t, s] for t, s in self.promoted],
            "suppressed": [[t, s] for t, s in self.suppressed],
            "input_tokens": [[t, s] for t, s in self.input_tokens],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FeatureDescription":
        """The description `to_json` wrote; unknown or missing keys are refused."""
        _check_keys(data, _DESCRIPTION_KEYS, "feature description")
        return cls(
            layer=int(data["layer"]),
            feature=int(data["feature"]),
            label=str(data["label"]),
            frequency=float(data["frequency"]),
            max_activation=float(data["max_activation"]),
            top_contexts=[Context.from_json(c) for c in data["top_contexts"]],
            promoted=_pairs(data["promoted"]),
            suppressed=_pairs(data["suppressed"]),
            input_tokens=_pairs(data["input_tokens"]),
        )


def _pairs(rows: list[Any]) -> list[tuple[str, float]]:
    return [(str(token), float(score)) for token, score in rows]


def _check_keys(data: Any, expected: set[str], what: str) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"a {what} must be a JSON object, got {type(data).__name__}")
    unknown, missing = set(data) - expected, expected - set(data)
    if unknown or missing:
        raise ValueError(
            f"{what} has unknown keys {sorted(unknown)} and misses {sorted(missing)}; "
            "write it with to_json"
        )
