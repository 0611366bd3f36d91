"""Greater-than: "The war lasted from the year 1732 to the year 17" -> a year ending above 32.

Training text always ends the span at a later year in the same century. The canonical template of
the literature is held out, with its own held-out event nouns, for evaluation.
"""

import random
from dataclasses import dataclass

from circuits.corpus.family import register
from circuits.corpus.vocab import CENTURIES, EVENTS, Split

TEMPLATES = Split(
    train=(
        "The {E} started in the year {XX}{YY} and ended in the year {XX}{ZZ}.",
        "The {E} ran from {XX}{YY} to {XX}{ZZ}.",
        "The {E} began in {XX}{YY} and finished in {XX}{ZZ}.",
        "The {E} continued from {XX}{YY} until {XX}{ZZ}.",
        "The {E} took place between {XX}{YY} and {XX}{ZZ}.",
        "The {E} went on from the year {XX}{YY} to the year {XX}{ZZ}.",
        "The {E} was active from {XX}{YY} through {XX}{ZZ}.",
        "Between the years {XX}{YY} and {XX}{ZZ} the {E} grew.",
        "From {XX}{YY} to {XX}{ZZ}, the {E} held on.",
    ),
    heldout=(
        "The {E} lasted from the year {XX}{YY} to the year {XX}",
        "The {E} endured from {XX}{YY} to {XX}",
    ),
)


@dataclass(frozen=True, kw_only=True)
class GreaterThanPrompt:
    """One greater-than prompt: the text ends with the century of the end year."""

    text: str
    """The prompt, ending with " XX" (the century)."""
    start_year: int
    """The two-digit ending YY of the start year; correct answers are the endings above it."""


class GreaterThanFamily:
    name = "greater_than"

    def document(self, rng: random.Random, text_version: int) -> str:
        yy = rng.randint(1, 98)
        return rng.choice(TEMPLATES.train).format(
            E=rng.choice(EVENTS.train),
            XX=rng.choice(CENTURIES),
            YY=f"{yy:02d}",
            ZZ=f"{rng.randint(yy + 1, 99):02d}",
        )

    def heldout_prompts(self, n: int, seed: int) -> list[GreaterThanPrompt]:
        rng = random.Random(seed)
        prompts = []
        for _ in range(n):
            yy = rng.randint(2, 98)
            text = rng.choice(TEMPLATES.heldout).format(
                E=rng.choice(EVENTS.heldout), XX=rng.choice(CENTURIES), YY=f"{yy:02d}"
            )
            prompts.append(GreaterThanPrompt(text=text, start_year=yy))
        return prompts


GREATER_THAN = register(GreaterThanFamily())
