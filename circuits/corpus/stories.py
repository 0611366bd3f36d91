"""Short stories about two people, over every name, place, object and event, held-out ones too.

They give every task word a trained embedding without showing held-out words in task-shaped text,
and each story names its two people several times, so copying a name from context pays off.
Held-out names appear nowhere else, so they need this exposure for a copying mechanism learnt on
training names to move them too (without it, held-out names were never predicted in IOI
prompts). Held-out IOI verbs appear here too, in sentences that are not IOI-shaped, so that they
are known words.
"""

import random

from circuits.corpus.family import register
from circuits.corpus.ioi import VERBS
from circuits.corpus.vocab import EVENTS, OBJECTS, PLACES, names


def heldout_name_share(text_version: int) -> float:
    """How often a cast member is a held-out name. Up to text version 3 half of them were, four
    times as often per name as any training name, and the held-out names' embeddings drifted
    into a class of their own; from version 4 casts are uniform over all names."""
    if text_version < 4:
        return 0.5
    return len(names(text_version).heldout) / len(names(text_version).all)


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

    def document(self, rng: random.Random, text_version: int) -> str:
        people, share = names(text_version), heldout_name_share(text_version)
        cast: list[str] = []
        while len(cast) < 2:
            pool = people.heldout if rng.random() < share else people.train
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
