"""The task-family interface and its registry.

A family writes task-shaped training documents and, when it defines a task score, held-out
evaluation prompts built only from held-out words and templates.
"""

import random
from typing import Protocol, TypeVar, runtime_checkable


@runtime_checkable
class Family(Protocol):
    """A source of training documents for the corpus."""

    name: str

    def document(self, rng: random.Random, text_version: int) -> str:
        """One training document (a sentence or a short paragraph) in the text of
        `CorpusConfig.text_version`."""
        ...


FAMILIES: dict[str, Family] = {}

F = TypeVar("F", bound=Family)


def register(family: F) -> F:
    """Add a family to the registry; names are unique."""
    if family.name in FAMILIES:
        raise ValueError(f"duplicate corpus family name: {family.name!r}")
    FAMILIES[family.name] = family
    return family
