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
"""The names of IOI evaluation prompts: the held-out ones, and 87 training names that every text
version trains on (for the seen-names diagnostic)."""

MORE_NAMES = tuple(
    """
    Jennifer Christopher Kimberly Robert Amanda Matthew Michelle William Elizabeth Joseph Melissa
    Jason Ashley Joshua Stephanie Thomas Angela Richard Nicole Anthony Rebecca Andrew Christina
    Steven Patricia Timothy Julie Jeffrey Samantha Charles Cynthia Justin Christine Nicholas
    Brittany Jonathan Lauren Brandon Andrea Kenneth Danielle Jacob Tiffany Gregory Katherine
    Stephen Tammy Patrick Sandra Aaron Crystal Benjamin Lori Kyle Shannon Jeremy Pamela Tyler
    Brenda Zachary Donna Ronald Sara Donald Erin Sean Deborah Jose Victoria Alexander Jamie
    Nathan Teresa Gary Kathleen Samuel Dawn Keith Tracy Bryan Courtney Douglas Barbara Shawn
    Jacqueline Todd Kayla Travis Denise Jesse April Chad Catherine Bradley Kristen Austin Erica
    Larry Kathryn Cody Cheryl Raymond Debra Jordan Robin Craig Taylor Dennis Margaret Juan
    Vanessa Jerry Alicia Christian Allison Derek Natalie Dustin Kristin Randy Leslie Terry
    Michele Phillip Theresa Troy Holly Carlos Alexis Jeffery Melanie Marcus Dana Jared Cindy Joel
    Jill Shane Alyssa Tony Valerie Vincent Tara Corey Stacy Luis Diane Antonio Katie Dylan
    Jasmine Philip Veronica Brett Carrie Rodney Rhonda Curtis Stacey Johnny Alexandra Alex
    Chelsea Russell Kathy Erik Carolyn Derrick Lindsey Gabriel Ann Brent Renee Nathaniel Brianna
    Bruce Morgan Danny Kim Ricky Cassandra Cory Janet Cameron Kelsey Billy Sherry Mitchell Brooke
    Wesley Tonya Trevor Kristina Allen Heidi Lawrence Sheila Bobby Laurie Gerald Lindsay Jesus
    Brandy Randall Tamara Wayne Erika Jimmy Anne Evan Melinda Jon Brandi Seth Deanna Adrian
    Abigail Caleb Tanya Casey Madison Marc Carla Miguel Suzanne Jay Regina Andre Sabrina Willie
    Debbie Manuel Colleen Terri Logan Connie Albert Caitlin Devin Jenna Roy Natasha Micheal
    Felicia Darren Whitney Mario Lee Janice Mike Marissa Darrell Shelby Blake Brittney Jeremiah
    Katrina Ricardo Misty Jorge Haley Dale Kara Calvin Lynn Ethan Marie Garrett Tracey Edwin
    Alison Glenn Virginia Frederick Annette Barry Meghan Lucas Kaitlyn Francisco Katelyn Lance
    Miranda Hunter Christy Isaac Cathy Brad Kendra Connor Anita Chase Bonnie Dean Shelly Noah
    Wanda Reginald Martha Sherri Harold Monique Spencer Krista Roberto
    """.split()  # noqa: SIM905
)
"""305 common first names that text version 4 adds to the training names: the first 154 of
Faker 40.54's en_US female and male first names (MIT licence) by descending weight, leaving out
names of `NAMES` and names with other characters than letters, interleaved and de-duplicated.
With only 87 training names, the embeddings of the held-out names formed a class of their own,
and the IOI mechanism learnt to suppress the repeated name on the training class only."""


def names(text_version: int) -> Split:
    """The names of a corpus text version: from version 4 on, `MORE_NAMES` train too."""
    if text_version < 4:
        return NAMES
    return Split(train=MORE_NAMES + NAMES.train, heldout=NAMES.heldout)


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
