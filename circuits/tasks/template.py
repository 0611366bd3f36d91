"""Templates: text with `{NAME}` placeholders, rendered with the character span of every filler.

A filler's value may itself hold placeholders ("went to the {PLACE}"); rendering expands them
recursively and records where each filler landed, so roles can point at "the second S".
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""`{NAME}`: letters, digits and underscores, not starting with a digit."""

MAX_DEPTH = 32
"""Nesting limit; cycles are rejected when a task file loads, this only guards the recursion."""


def placeholders(template: str) -> list[str]:
    """The filler names in `template`, in order, repeats included."""
    return PLACEHOLDER.findall(template)


def brace_problem(template: str) -> str | None:
    """Why `template` has a brace that is not part of a `{NAME}` placeholder, or None."""
    rest = PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        return (
            f"{template!r} has a brace outside a {{NAME}} placeholder (names are letters, digits "
            "and _); fix the placeholder"
        )
    return None


def literal_parts(template: str) -> list[str]:
    """The text between placeholders: `"a {X} b {Y}"` -> `["a ", " b ", ""]`."""
    return PLACEHOLDER.split(template)[::2]


@dataclass(frozen=True, kw_only=True)
class Occurrence:
    """Where one filler landed in a rendered text."""

    filler: str
    """The filler's name."""
    number: int
    """1 for the filler's first occurrence in the text, 2 for the second, ..."""
    start: int
    """First character of the rendered value."""
    end: int
    """One past its last character."""


@dataclass(frozen=True, kw_only=True)
class Rendered:
    """A rendered template."""

    text: str
    occurrences: tuple[Occurrence, ...]
    """Every filler occurrence, nested ones included, ordered by start (outer before inner)."""
    slots: tuple[int, ...]
    """Start character of each top-level placeholder of the template, in template order."""

    def find(self, filler: str, number: int) -> Occurrence | None:
        for occurrence in self.occurrences:
            if occurrence.filler == filler and occurrence.number == number:
                return occurrence
        return None


def render(template: str, value_of: Callable[[str], str]) -> Rendered:
    """Fill `template`, asking `value_of(name)` for each filler's (unrendered) value."""
    pieces: list[str] = []
    spans: list[tuple[int, int, str]] = []  # (start, -end, filler): sorts outer before inner
    slots: list[int] = []
    length = 0

    def expand(text: str, depth: int) -> None:
        nonlocal length
        assert depth < MAX_DEPTH, f"fillers nested deeper than {MAX_DEPTH}: {text!r}"
        for i, piece in enumerate(PLACEHOLDER.split(text)):
            if i % 2 == 0:
                pieces.append(piece)
                length += len(piece)
                continue
            start = length
            if depth == 0:
                slots.append(start)
            expand(value_of(piece), depth + 1)
            spans.append((start, -length, piece))

    expand(template, 0)
    counts: dict[str, int] = {}
    occurrences = []
    for start, neg_end, filler in sorted(spans):
        counts[filler] = counts.get(filler, 0) + 1
        occurrences.append(
            Occurrence(filler=filler, number=counts[filler], start=start, end=-neg_end)
        )
    return Rendered(text="".join(pieces), occurrences=tuple(occurrences), slots=tuple(slots))
