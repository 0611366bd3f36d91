"""Indirect-object identification: "When Mary and John went to the store, John gave a drink to"
-> " Mary".

A prompt is an intro clause that introduces A and B, then an action clause in which the subject
S (one of them) hands an object to the other, the indirect object IO. Both clauses are assembled
from parts (openers, activities, connectors, verbs), so training sees thousands of templates and a
model has to learn the mechanism rather than a few sentence shapes. Every part, name, place and
object has held-out members that training text never uses; evaluation prompts use only those, so
each evaluation template is unseen as a whole.

From text version 4 the two names of a training document follow a Zipf distribution over the
training names: a few are common, most are rare, as in natural text, so the mechanism has to work
on names it has seldom seen in IOI text. With uniform names the held-out names, never seen in IOI
text, formed a class of their own and the repeated one was not suppressed; with Zipf names the
tiny model went from 2.54 to 4.39 logit difference on held-out names (same seed). From text
version 5 three quarters of the training documents name IO first (`IO_FIRST_SHARE`). From text
version 6 every word of every part is a single token and stories use the intro parts, held-out
ones too (`template_words`).
"""

import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from circuits.corpus.family import register
from circuits.corpus.vocab import NAMES, OBJECTS, PLACES, Split, names

CLAUSE_OPENERS = Split(
    train=("When", "After", "While", "Because", "Since", "As", "Once", "As soon as", "Just after"),
    heldout=("Before", "Whenever"),
)
"""Subordinating openers: "When A and B went to the store," + action."""

SENTENCE_OPENERS = Split(
    train=("Yesterday", "Today", "On Sunday", "In the morning", "Last week", "One day", "Then"),
    heldout=("On Friday", "That evening"),
)
"""Main-clause openers: "Yesterday A and B went to the store. Then" + action."""

ACTIVITIES = Split(
    train=(
        "went to the {P}",
        "arrived at the {P}",
        "were working at the {P}",
        "walked to the {P}",
        "were hungry at the {P}",
        "had cleaned the {P}",
        "visited the {P}",
        "found a {O2} at the {P}",
        "were sitting in the {P}",
        "met at the {P}",
        "got lost near the {P}",
        "waited outside the {P}",
        "had a long argument at the {P}",
        "spent the day at the {P}",
    ),
    heldout=("left the {P}", "opened the {P}", "looked for a {O2} at the {P}"),
)

SENTENCE_CONNECTORS = Split(
    train=(". Then", ". Later,", ". Afterwards,", ", and", ", so", ". After that,"),
    heldout=(". Soon,", ". Eventually,"),
)

VERBS = Split(
    train=(
        "gave",
        "handed",
        "passed",
        "threw",
        "sent",
        "brought",
        "offered",
        "lent",
        "showed",
        "sold",
        "read",
        "taught",
        "paid",
        "slid",
        "kicked",
        "rolled",
        "described",
        "explained",
        "wanted to give",
        "decided to hand",
    ),
    heldout=("mailed", "returned", "tossed", "delivered", "carried"),
)
"""Verbs of transfer: "S <verb> a drink to"."""

DETERMINERS = ("a", "the")


def template_words() -> list[str]:
    """Every word of every template part, as the tokenizer meets it: with a leading space, and
    the first word of an opener also without one (it starts a document).

    Up to text version 5 the held-out intro words occurred nowhere in training text, so the
    tokenizer cut them into pieces ("That evening" -> T h at even ing, ". Eventually," -> five
    tokens) and held-out prompts were several tokens longer and full of untrained fragments.
    `small` solved IOI on training templates with training or held-out names (100%) but only
    61-80% of held-out ones; held-out openers and connectors alone cost it up to 30 points.
    From version 6 these words are single tokens and appear in stories, as held-out names do.
    """
    openers = CLAUSE_OPENERS.all + SENTENCE_OPENERS.all
    parts = openers + ACTIVITIES.all + SENTENCE_CONNECTORS.all + VERBS.all
    words = {f" {w}" for part in parts for w in re.findall(r"[A-Za-z]+", part)}
    words |= {opener.split()[0] for opener in openers}
    return sorted(words)


@dataclass(frozen=True, kw_only=True)
class IOIPrompt:
    """One IOI prompt: the text ends right before the indirect object."""

    text: str
    """The prompt, ending with " to"."""
    io: str
    """The indirect object, a name (the correct answer, written with a leading space)."""
    s: str
    """The subject, the repeated name (the wrong answer, written with a leading space)."""
    io_first: bool
    """Whether the intro names IO before S ("A and B ..., B gave ... to" -> A): there the wrong
    answer is the nearer name, so a model leaning on recency fails these prompts only."""


def intro_template(rng: random.Random, pick: Callable[[Split], tuple[str, ...]]) -> str:
    """An intro template with {A}, {B}, {P} and perhaps {O2} left to fill."""
    if rng.random() < 0.5:  # after a subordinate clause only a comma reads well
        opener, connector = rng.choice(pick(CLAUSE_OPENERS)), ","
    else:
        opener = rng.choice(pick(SENTENCE_OPENERS))
        connector = rng.choice(pick(SENTENCE_CONNECTORS))
    return f"{opener} {{A}} and {{B}} {rng.choice(pick(ACTIVITIES))}{connector}"


def make_prompt(
    rng: random.Random,
    *,
    heldout: bool,
    heldout_names: bool | None = None,
    pair: tuple[str, str] | None = None,
    io_first_share: float | None = None,
) -> IOIPrompt:
    """Sample one prompt from the training or the held-out part of every list.

    `heldout_names` (default: `heldout`) picks the names separately, to tell a mechanism that
    fails on new templates from one that fails on new names; `pair` gives the two names instead.
    `io_first_share` is the probability that the intro names IO first (default: even odds, drawn
    as up to text version 4).
    """

    def pick(split: Split) -> tuple[str, ...]:
        return split.heldout if heldout else split.train

    use_heldout = heldout if heldout_names is None else heldout_names
    a, b = pair or rng.sample(NAMES.heldout if use_heldout else NAMES.train, 2)
    if io_first_share is None:
        s, io = (a, b) if rng.random() < 0.5 else (b, a)
    else:
        s, io = (b, a) if rng.random() < io_first_share else (a, b)
    o, o2 = rng.sample(pick(OBJECTS), 2)
    intro = intro_template(rng, pick).format(A=a, B=b, P=rng.choice(pick(PLACES)), O2=o2)
    action = f"{s} {rng.choice(pick(VERBS))} {rng.choice(DETERMINERS)} {o} to"
    return IOIPrompt(text=f"{intro} {action}", io=f" {io}", s=f" {s}", io_first=io == a)


IO_FIRST_SHARE = 0.75
"""From text version 5, the share of training documents whose intro names IO first. With even
odds every model preferred the second name of the intro ("A and B ..., B gave ... to" -> B, the
nearer name): right on S-first prompts, wrong on up to 40% of IO-first ones (tiny: held-out
IO +3.75 / S +2.20 above absent names when IO came first, +6.50 / -1.62 when S did). At 0.75
tiny seed 2 is right on 99% of IO-first prompts, but seeds 0 and 1 only on 70%: the share is
not shown to help on average (docs/zoo.md, "Status of the zoo")."""

_REPLIES = ("thanked", "smiled at", "waved to", "said goodbye to", "hugged")


@cache
def _zipf_ranking(text_version: int) -> tuple[tuple[str, ...], list[float]]:
    """The training names in a fixed random order and the cumulative weights 1/rank."""
    train = names(text_version).train
    ranked = tuple(random.Random(0).sample(train, len(train)))
    return ranked, list(itertools.accumulate(1 / rank for rank in range(1, len(ranked) + 1)))


def zipf_pair(rng: random.Random, text_version: int) -> tuple[str, str]:
    """Two different training names, each drawn with weight 1/rank."""
    ranked, cum_weights = _zipf_ranking(text_version)
    while True:
        a, b = rng.choices(ranked, cum_weights=cum_weights, k=2)
        if a != b:
            return a, b


class IOIFamily:
    name = "ioi"

    def document(self, rng: random.Random, text_version: int) -> str:
        pair = zipf_pair(rng, text_version) if text_version >= 4 else None
        io_first_share = IO_FIRST_SHARE if text_version >= 5 else None
        prompt = make_prompt(rng, heldout=False, pair=pair, io_first_share=io_first_share)
        doc = f"{prompt.text}{prompt.io}."
        if rng.random() < 0.5:  # the receiver answers: the other name again
            doc += f"{prompt.io} {rng.choice(_REPLIES)}{prompt.s}."
        return doc

    def heldout_prompts(self, n: int, seed: int) -> list[IOIPrompt]:
        rng = random.Random(seed)
        return [make_prompt(rng, heldout=True) for _ in range(n)]

    def heldout_template_prompts(self, n: int, seed: int) -> list[IOIPrompt]:
        """Held-out templates, places and objects with training names: a diagnostic."""
        rng = random.Random(seed)
        return [make_prompt(rng, heldout=True, heldout_names=False) for _ in range(n)]


IOI = register(IOIFamily())
