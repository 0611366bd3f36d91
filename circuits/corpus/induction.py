"""Induction: a random sequence of words, then the same sequence again.

The second copy is predictable only by attending to the token after the previous occurrence of
the current token, the induction mechanism.
"""

import random

from circuits.corpus.family import register
from circuits.corpus.vocab import INDUCTION_WORDS, NAMES


class InductionFamily:
    name = "induction"

    def document(self, rng: random.Random) -> str:
        pool = INDUCTION_WORDS + NAMES.all
        words = " ".join(rng.choice(pool) for _ in range(rng.randint(6, 16)))
        return f"{words}. {words}."


INDUCTION = register(InductionFamily())
