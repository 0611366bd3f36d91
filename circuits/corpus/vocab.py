"""Word lists for the synthetic task families, each split into training and held-out parts.

Held-out words never appear in the task-shaped training text of their family; evaluation prompts
use only them. They do appear in the generic `stories` family, so their embeddings are trained and
the task score measures a general mechanism rather than a memorised string.
"""

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Split:
    """A word list divided into a training part and an evaluation-only part."""

    train: tuple[str, ...]
    """Words that appear in task-shaped training text."""
    heldout: tuple[str, ...]
    """Words reserved for evaluation prompts of this family."""

    def __post_init__(self) -> None:
        overlap = set(self.train) & set(self.heldout)
        if overlap:
            raise ValueError(f"train and heldout overlap: {sorted(overlap)}")

    @property
    def all(self) -> tuple[str, ...]:
        return self.train + self.heldout


def _split(words: str, n_heldout: int) -> Split:
    items = tuple(words.split())
    return Split(train=items[:-n_heldout], heldout=items[-n_heldout:])


NAMES = _split(
    """
    Mary John Alice Bob Sarah David Emma James Laura Michael Anna Peter Kate Paul Lisa Mark Susan
    Tom Jane Steve Rachel Chris Linda Kevin Helen Brian Amy Daniel Nancy Eric Julia Frank Karen
    George Diana Henry Ruth Jack Sophie Adam Grace Ben Claire Dan Emily Fred Irene Greg Jessica
    Ian Joan Jeff Lucy Joe Maria Ken Megan Luke Nina Matt Olivia Max Paula Nick Rose Oscar Sally
    Ryan Tina Sam Vera Ted Wendy Tim Zoe Victor Ella Walter Hannah Carl Molly Roger Amber Simon
    Leah Neil Ivy Owen Jenny Harry Clara Louis Kelly Bill Monica Scott Carol Phil Heather Alan
    Sharon Arthur Gina Edward Beth Martin Stella
    """,
    n_heldout=20,
)

PLACES = _split(
    """
    store park school office garden station library market beach hospital restaurant museum
    church theater airport kitchen bakery hotel farm river lake bank cafe gym mall zoo house
    stadium harbor bridge forest castle village
    """,
    n_heldout=6,
)

OBJECTS = _split(
    """
    drink book ring bone basketball snack letter key computer kiss bottle necklace pencil apple
    gift map ticket coin camera hat cake flower lamp cup watch knife box shirt bag phone toy
    candle radio jacket clock
    """,
    n_heldout=6,
)

EVENTS = _split(
    """
    war expedition reign drought festival project voyage dynasty famine campaign journey siege
    rebellion empire trial treaty strike migration alliance occupation partnership crusade
    revolution experiment tournament pilgrimage apprenticeship construction mission program
    """,
    n_heldout=6,
)

AGREEMENT_NOUNS = _split(
    """
    key:keys dog:dogs author:authors teacher:teachers car:cars picture:pictures friend:friends
    student:students bird:birds house:houses doctor:doctors tree:trees letter:letters
    window:windows farmer:farmers road:roads painter:painters boat:boats singer:singers
    lamp:lamps pilot:pilots flower:flowers nurse:nurses horse:horses
    """,
    n_heldout=5,
)

INDUCTION_WORDS = tuple(
    """
    apple river stone cloud mirror candle garden thunder violin pepper rocket ladder marble
    saddle button needle anchor basket feather helmet jungle kettle lantern magnet orbit pillow
    quartz ribbon shadow tunnel umbrella velvet whistle yellow zipper bamboo canyon dolphin
    engine falcon glacier harvest island jacket kernel lemon meadow nectar oyster parrot quiver
    raven summit tiger unicorn vessel walnut oxygen zenith blanket copper desert ember fossil
    granite hollow ivory jasper koala lizard mango noodle olive pebble quilt rumble silver tulip
    """.split()  # noqa: SIM905
)
"""Words for the induction family (random sequences repeated once)."""

TWO_DIGITS = tuple(f"{n:02d}" for n in range(100))
"""Year endings "00".."99": each must be one token."""

CENTURIES = tuple(str(c) for c in range(11, 20))
"""Year beginnings "11".."19" (a leading space is part of the token, " 17"): one token each."""
