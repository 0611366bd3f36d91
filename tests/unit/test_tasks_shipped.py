"""The shipped task files: they build with the shipped model's tokenizer and use only held-out
corpus material, so evaluation never runs on text the zoo models were trained on."""

import re
from pathlib import Path

import pytest

from circuits.corpus import agreement, ioi
from circuits.corpus.greater_than import GREATER_THAN, TEMPLATES
from circuits.corpus.ioi import IOI
from circuits.corpus.vocab import (
    AGREEMENT_NOUNS,
    CENTURIES,
    EVENTS,
    INDUCTION_WORDS,
    NAMES,
    OBJECTS,
    PLACES,
    TWO_DIGITS,
)
from circuits.models import load_tokenizer, resolve_model_dir
from circuits.tasks import TaskSpec, build_prompt_set, load_task

TASKS = Path(__file__).resolve().parents[2] / "tasks"
SHIPPED = ("ioi", "greater_than", "induction", "agreement")

SINGULAR = {pair.split(":")[0] for pair in AGREEMENT_NOUNS.heldout}
PLURAL = {pair.split(":")[1] for pair in AGREEMENT_NOUNS.heldout}

ALLOWED: dict[str, dict[str, set[str]]] = {
    "ioi": {
        "IO": set(NAMES.heldout),
        "S": set(NAMES.heldout),
        "C": set(NAMES.heldout),
        "CLAUSE_OPENER": set(ioi.CLAUSE_OPENERS.heldout),
        "SENTENCE_OPENER": set(ioi.SENTENCE_OPENERS.heldout),
        "CONNECTOR": set(ioi.SENTENCE_CONNECTORS.heldout),
        "ACTIVITY": {
            a.replace("{P}", "{PLACE}").replace("{O2}", "{OBJECT2}") for a in ioi.ACTIVITIES.heldout
        },
        "VERB": set(ioi.VERBS.heldout),
        "DET": set(ioi.DETERMINERS),
        "OBJECT": set(OBJECTS.heldout),
        "OBJECT2": set(OBJECTS.heldout),
        "PLACE": set(PLACES.heldout),
        # structure, as circuits/corpus/ioi.py assembles its intro clauses
        "INTRO": {
            "{CLAUSE_OPENER} {PAIR} {ACTIVITY},",
            "{SENTENCE_OPENER} {PAIR} {ACTIVITY}{CONNECTOR}",
        },
        "PAIR": {"{IO} and {S}", "{S} and {IO}"},
    },
    "greater_than": {
        "EVENT": set(EVENTS.heldout),
        "XX": set(CENTURIES),
        "YY": set(TWO_DIGITS),
        "YY_CORRUPT": {"01"},
        # "The {EVENT} {SPAN}" must rebuild a held-out template (checked below)
        "SPAN": {t.removeprefix("The {E} ") for t in TEMPLATES.heldout},
        "SPAN_CORRUPT": {
            t.removeprefix("The {E} ").replace("{YY}", "{YY_CORRUPT}") for t in TEMPLATES.heldout
        },
    },
    "induction": {f"W{i}": set(INDUCTION_WORDS) for i in range(1, 9)},
    "agreement": {
        "SG": SINGULAR,
        "DSG": SINGULAR,
        "PL": PLURAL,
        "DPL": PLURAL,
        "VERB_SG": {sg for sg, _ in agreement._VERBS},
        "VERB_PL": {pl for _, pl in agreement._VERBS},
        "LINK": set(agreement._LINKS),
        "SUBJECT": {"{SG}", "{PL}"},
        "SUBJECT_CORRUPT": {"{SG}", "{PL}"},
        "DISTRACTOR": {"{DSG}", "{DPL}"},
        "VERB": {"{VERB_SG}", "{VERB_PL}"},
        "WRONG_VERB": {"{VERB_SG}", "{VERB_PL}"},
    },
}


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_model_dir("zoo:tiny"))


def shipped(name: str) -> TaskSpec:
    return load_task(TASKS / f"{name}.toml")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_filler_value_is_heldout_corpus_material(name) -> None:
    spec = shipped(name)
    allowed = ALLOWED[name]
    assert set(spec.fillers) == set(allowed), "declare each new filler's corpus split here"
    assert not spec.cases
    for filler, values in spec.fillers.items():
        leaked = set(values) - allowed[filler]
        assert not leaked, f"{name}.toml {filler}: not held-out material: {sorted(leaked)}"


def test_greater_than_templates_are_the_heldout_ones() -> None:
    spec = shipped("greater_than")
    for span in spec.fillers["SPAN"]:
        template = spec.template.replace("{SPAN}", span).replace("{EVENT}", "{E}")
        assert template in TEMPLATES.heldout


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_builds_with_the_shipped_tokenizer(name, tokenizer) -> None:
    spec = shipped(name)
    assert spec.default_model == "zoo:tiny" and spec.name == name
    prompts = build_prompt_set(spec, tokenizer, n_ctx=256)
    assert len(prompts) == spec.count == 20
    assert prompts.prompts == build_prompt_set(spec, tokenizer, n_ctx=256).prompts


def _alternatives(words) -> str:
    return "|".join(re.escape(w) for w in words)


def ioi_heldout_pattern() -> re.Pattern[str]:
    """Any prompt `circuits/corpus/ioi.py` makes from its held-out parts."""
    names = f"({_alternatives(NAMES.heldout)})"
    place, objects = _alternatives(PLACES.heldout), _alternatives(OBJECTS.heldout)
    activities = "|".join(
        re.escape(a).replace(r"\{P\}", f"({place})").replace(r"\{O2\}", f"({objects})")
        for a in ioi.ACTIVITIES.heldout
    )
    clause = f"({_alternatives(ioi.CLAUSE_OPENERS.heldout)}) {names} and {names} ({activities}),"
    sentence = (
        f"({_alternatives(ioi.SENTENCE_OPENERS.heldout)}) {names} and {names} ({activities})"
        f"({_alternatives(ioi.SENTENCE_CONNECTORS.heldout)})"
    )
    action = (
        f" (?P<s>{_alternatives(NAMES.heldout)}) ({_alternatives(ioi.VERBS.heldout)}) "
        f"({_alternatives(ioi.DETERMINERS)}) ({objects}) to"
    )
    return re.compile(f"(?:{clause}|{sentence}){action}")


def test_ioi_prompts_look_like_the_corpus_heldout_prompts(tokenizer) -> None:
    pattern = ioi_heldout_pattern()
    for corpus_prompt in IOI.heldout_prompts(50, seed=0):  # the pattern is the corpus's shape
        assert pattern.fullmatch(corpus_prompt.text), corpus_prompt.text
    prompts = build_prompt_set(shipped("ioi"), tokenizer, n_ctx=256, count=100).prompts
    for prompt in prompts:
        match = pattern.fullmatch(prompt.text)
        assert match, prompt.text
        intro = re.findall(r"\w+", prompt.text[: match.start("s")])
        io, s = prompt.answer_words[0].strip(), prompt.wrong_words[0].strip()
        assert sorted(w for w in intro if w in NAMES.heldout) == sorted([io, s])
        assert match["s"] == s
    kinds = {p.text.split(" ", 1)[0] in ioi.CLAUSE_OPENERS.heldout for p in prompts}
    assert kinds == {True, False}, "both intro kinds of the corpus appear"


def test_greater_than_prompts_look_like_the_corpus_heldout_prompts(tokenizer) -> None:
    prompts = build_prompt_set(shipped("greater_than"), tokenizer, n_ctx=256, count=50).prompts
    corpus = GREATER_THAN.heldout_prompts(50, seed=0)
    shape = re.compile(
        r"The (\w+) (lasted from the year|endured from) (\d\d)(\d\d) to( the year)? (\d\d)"
    )
    for text in [p.text for p in prompts] + [p.text for p in corpus]:
        match = shape.fullmatch(text)
        assert match and match[3] == match[6] and match[1] in EVENTS.heldout, text
    for prompt in prompts:
        match = shape.fullmatch(prompt.text)
        assert match is not None
        start = int(match[4])
        assert [int(w) for w in prompt.answer_words] == list(range(start + 1, 100))


def test_shipped_ground_truth_matches_the_reference() -> None:
    heads = shipped("ioi").ground_truth["gpt2"]["heads"]
    assert heads["name_mover"] == {"position": "END", "heads": ["9.9", "10.0", "9.6"]}
    assert heads["s_inhibition"]["heads"] == ["7.3", "7.9", "8.6", "8.10"]
    assert heads["previous_token"] == {"position": "S1+1", "heads": ["2.2", "4.11"]}
    gt = shipped("greater_than").ground_truth["gpt2"]
    assert gt["authors_code"]["heads"] == ["5.1", "5.5", "6.9", "7.10", "8.8", "8.11", "9.1"]
    assert gt["common_encoding"]["mlps"] == [8, 9, 10, 11]
