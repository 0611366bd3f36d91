"""Short stories about two people, over every name, place, object and event, held-out ones too.

They give every task word a trained embedding without showing held-out words in task-shaped text,
and each story names its two people several times, so copying a name from context pays off.
Held-out names appear nowhere else, so they need this exposure for a copying mechanism learnt on
training names to move them too (without it, held-out names were never predicted in IOI
prompts). Held-out IOI verbs appear here too, in sentences that are not IOI-shaped, so that they
are known words; from text version 6 so do the IOI intro parts, with one name and a companion
who is not named ("Before Mary and a friend left the store, Mary smiled.").
"""

import random

from circuits.corpus.family import register
from circuits.corpus.ioi import VERBS, intro_template
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

_COMPANIONS = ("a friend", "the others", "two friends", "the children", "a neighbour")
_AFTER_INTRO = ("{A} smiled.", "{A} went home.", "it started to rain.", "{A} {V} the {O}.")
_INTRO_SHARE = 0.3
"""From text version 6, the share of sentences that use an IOI intro."""


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
            if text_version >= 6 and rng.random() < _INTRO_SHARE:
                sentences.append(_intro_sentence(rng, cast))
                continue
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


def _intro_sentence(rng: random.Random, cast: list[str]) -> str:
    """An IOI intro over all parts with one named person, then a sentence that is no transfer."""
    template = f"{intro_template(rng, lambda split: split.all)} {rng.choice(_AFTER_INTRO)}"
    return template.format(
        A=rng.choice(cast),
        B=rng.choice(_COMPANIONS),
        O=rng.choice(OBJECTS.all),
        O2=rng.choice(OBJECTS.all),
        P=rng.choice(PLACES.all),
        V=rng.choice(VERBS.all),
    )


STORIES = register(StoriesFamily())
