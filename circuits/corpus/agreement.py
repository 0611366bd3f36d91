"""Subject-verb agreement across a distracting noun: "The keys to the cabinet are"."""

import random

from circuits.corpus.family import register
from circuits.corpus.vocab import AGREEMENT_NOUNS, PLACES

_VERBS = (("is", "are"), ("was", "were"), ("has", "have"))
_LINKS = ("near the", "next to the", "behind the", "of the", "beside the", "with the")
_ENDINGS = ("here.", "old.", "ready.", "in the {P}.", "a problem.", "fine.")


class AgreementFamily:
    name = "agreement"

    def document(self, rng: random.Random, text_version: int) -> str:
        subject, distractor = rng.sample(AGREEMENT_NOUNS.train, 2)
        plural = rng.random() < 0.5
        noun = subject.split(":")[int(plural)]
        other = distractor.split(":")[int(rng.random() < 0.5)]
        verb = rng.choice(_VERBS)[int(plural)]
        ending = rng.choice(_ENDINGS).format(P=rng.choice(PLACES.train))
        return f"The {noun} {rng.choice(_LINKS)} {other} {verb} {ending}"


AGREEMENT = register(AgreementFamily())
