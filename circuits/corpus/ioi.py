"""Indirect-object identification: "When Mary and John went to the store, John gave a drink to"
-> " Mary".

Templates are built from an intro clause (introducing A and B) and an action clause (the subject S,
one of A and B, gives an object to the other, the indirect object IO). Intros, actions, names,
places and objects each have held-out members that training text never uses.
"""

import random
from dataclasses import dataclass

from circuits.corpus.family import register
from circuits.corpus.vocab import NAMES, OBJECTS, PLACES, Split

INTROS = Split(
    train=(
        "When {A} and {B} went to the {P},",
        "After {A} and {B} arrived at the {P},",
        "While {A} and {B} were working at the {P},",
        "Then, {A} and {B} went to the {P}.",
        "{A} and {B} had a long argument at the {P}. Afterwards,",
        "The {P} was busy when {A} and {B} arrived, so",
        "Yesterday {A} and {B} spent the day at the {P}, and",
        "As {A} and {B} walked to the {P},",
        "{A} and {B} met at the {P}. Later,",
        "Since {A} and {B} were hungry at the {P},",
        "Once {A} and {B} had cleaned the {P},",
        "On Sunday, {A} and {B} visited the {P}, where",
        "{A} and {B} found a {O2} at the {P}. Then",
        "It was late, and {A} and {B} were still at the {P}.",
        "Because {A} and {B} liked the {P},",
        "In the morning {A} and {B} walked into the {P}, and",
    ),
    heldout=(
        "When {A} and {B} got a {O2} at the {P},",
        "Before {A} and {B} left the {P},",
        "The day {A} and {B} opened the {P},",
        "After a long day at the {P}, {A} and {B} sat down, and",
    ),
)

ACTIONS = Split(
    train=(
        "{S} gave a {O} to",
        "{S} handed the {O} to",
        "{S} passed a {O} to",
        "{S} threw the {O} to",
        "{S} sent a {O} to",
        "{S} brought a {O} to",
        "{S} offered the {O} to",
        "{S} lent a {O} to",
        "{S} showed the {O} to",
        "{S} sold a {O} to",
        "{S} decided to give a {O} to",
        "{S} wanted to hand the {O} to",
    ),
    heldout=(
        "{S} mailed a {O} to",
        "{S} returned the {O} to",
        "{S} tossed a {O} to",
        "{S} delivered the {O} to",
    ),
)


_REPLIES = ("thanked", "smiled at", "waved to", "said goodbye to", "hugged")


@dataclass(frozen=True, kw_only=True)
class IOIPrompt:
    """One IOI prompt: the text ends right before the indirect object."""

    text: str
    """The prompt, ending with " to"."""
    io: str
    """The indirect object, a name (the correct answer, written with a leading space)."""
    s: str
    """The subject, the repeated name (the wrong answer, written with a leading space)."""


def make_prompt(rng: random.Random, *, heldout: bool) -> IOIPrompt:
    """Sample one prompt from the training or the held-out part of every word list."""

    def pick(split: Split) -> tuple[str, ...]:
        return split.heldout if heldout else split.train

    a, b = rng.sample(pick(NAMES), 2)
    s, io = (a, b) if rng.random() < 0.5 else (b, a)
    o, o2 = rng.sample(pick(OBJECTS), 2)
    intro = rng.choice(pick(INTROS)).format(A=a, B=b, P=rng.choice(pick(PLACES)), O2=o2)
    action = rng.choice(pick(ACTIONS)).format(S=s, O=o)
    return IOIPrompt(text=f"{intro} {action}", io=f" {io}", s=f" {s}")


class IOIFamily:
    name = "ioi"

    def document(self, rng: random.Random) -> str:
        prompt = make_prompt(rng, heldout=False)
        doc = f"{prompt.text}{prompt.io}."
        if rng.random() < 0.5:  # the receiver answers: the other name again
            doc += f"{prompt.io} {rng.choice(_REPLIES)}{prompt.s}."
        return doc

    def heldout_prompts(self, n: int, seed: int) -> list[IOIPrompt]:
        rng = random.Random(seed)
        return [make_prompt(rng, heldout=True) for _ in range(n)]


IOI = register(IOIFamily())
