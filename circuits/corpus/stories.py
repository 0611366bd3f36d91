"""Short stories about two people, over every name, place, object and event, held-out ones too.

They give every task word a trained embedding without showing held-out words in task-shaped text,
and each story names its two people several times, so copying a name from context pays off.
Held-out names appear nowhere else, so a cast member is held-out with probability
`HELDOUT_NAME_SHARE`: enough exposure that a copying mechanism learnt on training names also
moves held-out ones (without it, held-out names were never predicted in IOI prompts). Held-out IOI
verbs appear here too, in sentences that are not IOI-shaped, so that they are known words.
"""

import random

from circuits.corpus.family import register
from circuits.corpus.ioi import VERBS
from circuits.corpus.vocab import EVENTS, NAMES, OBJECTS, PLACES

HELDOUT_NAME_SHARE = 0.5

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
    "{A} {V} the {O} yesterday.",
)


class StoriesFamily:
    name = "stories"

    def document(self, rng: random.Random) -> str:
        cast: list[str] = []
        while len(cast) < 2:
            pool = NAMES.heldout if rng.random() < HELDOUT_NAME_SHARE else NAMES.train
            if (name := rng.choice(pool)) not in cast:
                cast.append(name)
        sentences = []
        for _ in range(rng.randint(3, 6)):
            sentences.append(
                rng.choice(_SENTENCES).format(
                    A=rng.choice(cast),
                    O=rng.choice(OBJECTS.all),
                    P=rng.choice(PLACES.all),
                    E=rng.choice(EVENTS.all),
                    V=rng.choice(VERBS.all),
                )
            )
        return " ".join(sentences)


STORIES = register(StoriesFamily())
