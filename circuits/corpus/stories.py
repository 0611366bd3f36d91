"""Short stories about two people, over every name, place, object and event, held-out ones too.

They give every task word a trained embedding without showing held-out words in task-shaped text,
and each story names its two people several times, so copying a name from context pays off.
"""

import random

from circuits.corpus.family import register
from circuits.corpus.vocab import EVENTS, NAMES, OBJECTS, PLACES

_SENTENCES = (
    "{A} likes the {O}.",
    "{A} lives near the {P}.",
    "{A} read about the {E}.",
    "Everyone knows {A}.",
    "{A} is a good friend.",
    "The {O} belongs to {A}.",
    "{A} smiled.",
    "{A} bought a new {O} yesterday.",
    "{A} works at the {P} every day.",
    "The {E} was long, and {A} wrote a book about it.",
    "A letter from {A} arrived.",
    "{A} said hello.",
)


class StoriesFamily:
    name = "stories"

    def document(self, rng: random.Random) -> str:
        cast = rng.sample(NAMES.all, 2)
        sentences = []
        for _ in range(rng.randint(3, 6)):
            sentences.append(
                rng.choice(_SENTENCES).format(
                    A=rng.choice(cast),
                    O=rng.choice(OBJECTS.all),
                    P=rng.choice(PLACES.all),
                    E=rng.choice(EVENTS.all),
                )
            )
        return " ".join(sentences)


STORIES = register(StoriesFamily())
