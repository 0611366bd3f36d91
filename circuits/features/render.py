"""Feature descriptions as plain text for terminals and reports."""

from circuits.features.description import Context, FeatureDescription
from circuits.features.labels import quote_token

CONTROL = str.maketrans({"\n": "↵", "\t": "→", "\r": "␍"})
"""Whitespace that would break a one-line context, shown as visible marks."""


def format_context(context: Context) -> str:
    """The context on one line, the active token marked «like this»."""
    pieces = [t.translate(CONTROL) for t in context.tokens]
    pieces[context.active] = f"«{pieces[context.active]}»"
    return "".join(pieces)


def format_tokens(pairs: list[tuple[str, float]]) -> str:
    return ", ".join(f"{quote_token(token)} {score:+.2f}" for token, score in pairs)


def render_description(desc: FeatureDescription) -> str:
    """A few lines a researcher reads in a terminal: label, statistics, tokens, contexts."""
    lines = [
        f"L{desc.layer}/F{desc.feature}  {desc.label}",
        f"  active on {desc.frequency:.3%} of scanned tokens, max activation "
        f"{desc.max_activation:.3f}",
        f"  promoted:    {format_tokens(desc.promoted)}",
        f"  suppressed:  {format_tokens(desc.suppressed)}",
        f"  input tokens: {format_tokens(desc.input_tokens)}",
        "  top contexts:" if desc.top_contexts else "  never active on the scanned tokens",
    ]
    lines += [f"  {c.activation:8.3f}  {format_context(c)}" for c in desc.top_contexts]
    return "\n".join(lines)
