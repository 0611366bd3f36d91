"""Permutation: a random list of words, then the same words in another order.

In the second copy each next word is one of those not yet repeated, so predicting it takes two
steps over any token: copy the words seen once and suppress the words already seen twice. IOI
needs the same two steps over names (copy the indirect object, suppress the repeated subject);
induction alone teaches only the first, and on IOI text only the training names learn the
second, so held-out names were copied whether repeated or not. The words are drawn without
replacement from induction's pool (ten words are in it twice, such as "apple", an induction word and
an object).
"""

import random

from circuits.corpus.family import register
from circuits.corpus.induction import POOL


class PermutationFamily:
    name = "permutation"

    def document(self, rng: random.Random) -> str:
        words = rng.sample(POOL, rng.randint(2, 8))
        again = rng.sample(words, len(words))
        return f"{' '.join(words)}. {' '.join(again)}."


PERMUTATION = register(PermutationFamily())
