"""Induction: a random sequence of words, then the same sequence again.

The second copy is predictable only by attending to the token after the previous occurrence of
the current token, the induction mechanism.
"""

import random
from functools import cache

from circuits.corpus.family import register
from circuits.corpus.vocab import AGREEMENT_NOUNS, EVENTS, INDUCTION_WORDS, OBJECTS, PLACES, names


@cache
def _pool(text_version: int) -> tuple[str, ...]:
    return (
        INDUCTION_WORDS
        + names(text_version).all
        + PLACES.all
        + OBJECTS.all
        + EVENTS.all
        + tuple(w for pair in AGREEMENT_NOUNS.all for w in pair.split(":"))
    )


class InductionFamily:
    name = "induction"

    def document(self, rng: random.Random, text_version: int) -> str:
        words = " ".join(rng.sample(_pool(text_version), rng.randint(10, 30)))
        return f"{words}. {words}."


INDUCTION = register(InductionFamily())
