"""Short labels for features, readable at a glance in a node of a circuit diagram.

The rule, in order:

1. `says "X"` when the feature's logit lens stands out: its top promoted token X scores at least
   STANDOUT_GAP standard deviations (of the row's scores over the vocabulary) above the second
   token. Such a feature mainly writes one token, and that is what it does in a circuit.
2. `on "Y"` otherwise, Y being the token the feature fires on in most of its top contexts
   (ties go to the token of the stronger context).
3. `says "X"?` for a feature never active on the scanned text, whose only evidence is its
   decoder.

Tokens are quoted as JSON strings (`" Mary"`, `"\\n"`) and shortened with an ellipsis so that
a label never exceeds MAX_LABEL_CHARS.
"""

import json
from collections import Counter
from collections.abc import Sequence

from circuits.features.description import MAX_LABEL_CHARS

STANDOUT_GAP = 1.0
"""Gap between the first and second promoted scores, in standard deviations of the row, from
which a feature is labelled by what it says. On the shipped tiny model about 10% of features
pass; the gap of a typical feature is 0.2-0.3."""


def quote_token(token: str, max_chars: int | None = None) -> str:
    """`token` as a JSON string, its text cut with an ellipsis to fit `max_chars` in all (the
    text is cut before quoting, so no escape is cut in two)."""
    quoted = json.dumps(token, ensure_ascii=False)
    if max_chars is None or len(quoted) <= max_chars:
        return quoted
    for n in range(len(token) - 1, 0, -1):
        cut = json.dumps(token[:n], ensure_ascii=False)[:-1] + '…"'
        if len(cut) <= max_chars:
            return cut
    return '"…"'


def feature_label(*, promoted: str, gap: float, active_tokens: Sequence[str]) -> str:
    """The label of a feature (see the module docstring): `promoted` is its top promoted
    token, `gap` its standout gap, `active_tokens` the tokens of its top contexts where it
    fires, strongest first."""
    if gap >= STANDOUT_GAP or not active_tokens:
        prefix, suffix = "says ", "" if active_tokens else "?"
        budget = MAX_LABEL_CHARS - len(prefix) - len(suffix)
        return prefix + quote_token(promoted, budget) + suffix
    counts = Counter(active_tokens)
    best = max(counts.values())
    token = next(t for t in active_tokens if counts[t] == best)  # the strongest of the commonest
    return "on " + quote_token(token, MAX_LABEL_CHARS - 3)
