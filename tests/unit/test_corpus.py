"""The corpus builder: deterministic, held-out words kept out of task-shaped training text."""

import collections
import hashlib
import itertools
import json
import random
import re

import pytest

from circuits.corpus.build import CorpusConfig, corpus_dir, documents
from circuits.corpus.family import FAMILIES
from circuits.corpus.greater_than import GREATER_THAN
from circuits.corpus.greater_than import TEMPLATES as GT_TEMPLATES
from circuits.corpus.ioi import (
    ACTIVITIES,
    CLAUSE_OPENERS,
    IOI,
    SENTENCE_CONNECTORS,
    SENTENCE_OPENERS,
    VERBS,
    make_prompt,
    template_words,
)
from circuits.corpus.natural import roff_to_text
from circuits.corpus.stories import STORIES
from circuits.corpus.vocab import EVENTS, MORE_NAMES, NAMES, OBJECTS, PLACES, names


def _text(config: CorpusConfig) -> str:
    return "\x00".join(doc for _, doc in documents(config))


def test_same_seed_gives_identical_text() -> None:
    config = CorpusConfig(n_chars=200_000)
    assert _text(config) == _text(config)


def test_different_seed_gives_different_text() -> None:
    seed0, seed1 = CorpusConfig(n_chars=50_000, seed=0), CorpusConfig(n_chars=50_000, seed=1)
    assert _text(seed0) != _text(seed1)


def test_sources_hold_their_share_of_characters() -> None:
    config = CorpusConfig(n_chars=300_000)
    counts: dict[str, int] = {}
    for source, doc in documents(config):
        counts[source] = counts.get(source, 0) + len(doc)
    total = sum(counts.values())
    for source, share in config.shares.items():
        assert counts[source] / total == pytest.approx(share, abs=0.02)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z]+", text))


def _template_prefix(template: str) -> str:
    return template.split("{")[0]


@pytest.mark.parametrize("text_version", [3, 4, 6])
def test_ioi_training_text_never_uses_heldout_words_or_templates(text_version: int) -> None:
    rng = random.Random(0)
    docs = [IOI.document(rng, text_version) for _ in range(3000)]
    words = set().union(*map(_words, docs))
    for split in (NAMES, PLACES, OBJECTS):
        assert not words & set(split.heldout)
    text = "\n".join(docs)
    for verb in VERBS.heldout:
        assert f" {verb} " not in text
    for opener in CLAUSE_OPENERS.heldout + SENTENCE_OPENERS.heldout:
        assert not any(doc.startswith(f"{opener} ") for doc in docs)
    for activity in ACTIVITIES.heldout:
        assert _template_prefix(activity) not in text
    for connector in SENTENCE_CONNECTORS.heldout:
        assert connector not in text


def test_ioi_training_covers_many_templates() -> None:
    rng = random.Random(0)
    fillers = {w: "X" for split in (NAMES, PLACES, OBJECTS) for w in split.train}
    shapes = set()
    for _ in range(3000):
        text = make_prompt(rng, heldout=False).text
        shapes.add(re.sub(r"[A-Za-z]+", lambda m: fillers.get(m[0], m[0]), text))
    assert len(shapes) > 1000  # the former 16 intros x 12 actions gave at most 384


def test_ioi_eval_prompts_use_only_heldout_words() -> None:
    for prompt in IOI.heldout_prompts(200, seed=1):
        assert prompt.io.strip() in NAMES.heldout and prompt.s.strip() in NAMES.heldout
        assert prompt.io != prompt.s
        assert prompt.text.endswith(" to")
        assert prompt.text.count(prompt.s) == 2 and prompt.text.count(prompt.io) == 1


def test_greater_than_training_years_always_increase() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        doc = GREATER_THAN.document(rng, 4)
        years = [int(y) for y in re.findall(r"\b1\d{3}\b", doc)]
        assert len(years) == 2 and years[1] > years[0] and years[0] // 100 == years[1] // 100
        assert not _words(doc) & set(EVENTS.heldout)
        assert "lasted" not in doc and "endured" not in doc


def test_greater_than_eval_prompts_use_heldout_templates() -> None:
    prefixes = {_template_prefix(t) for t in GT_TEMPLATES.heldout}
    for prompt in GREATER_THAN.heldout_prompts(100, seed=1):
        assert prompt.text.startswith(tuple(prefixes))
        assert f"{prompt.start_year:02d} to " in prompt.text


def test_heldout_names_are_trained_by_the_stories_family() -> None:
    rng = random.Random(0)
    stories = " ".join(STORIES.document(rng, CorpusConfig().text_version) for _ in range(3000))
    assert set(NAMES.heldout) <= _words(stories)


def test_text_version_4_trains_more_names_and_keeps_the_heldout_ones() -> None:
    assert names(3) == NAMES
    assert names(4).train == MORE_NAMES + NAMES.train and names(4).heldout == NAMES.heldout
    assert len(set(names(4).all)) == len(names(4).all) == 412


def _name_counts(docs: list[str], pool: tuple[str, ...]) -> collections.Counter[str]:
    words = (w for doc in docs for w in re.findall(r"[A-Za-z]+", doc))
    wanted = set(pool)
    return collections.Counter(w for w in words if w in wanted)


def test_ioi_names_follow_zipf_from_text_version_4() -> None:
    rng = random.Random(0)
    counts = _name_counts([IOI.document(rng, 4) for _ in range(5000)], names(4).train)
    ranked = [n for n, _ in counts.most_common()]
    # Weight 1/rank over 392 names: the top name is drawn ~2x as often as the second, and the
    # top 10 names carry about half of all draws; uniform names would give each about 0.26%.
    assert counts[ranked[0]] > 1.5 * counts[ranked[1]]
    assert sum(counts[n] for n in ranked[:10]) > 0.4 * counts.total()
    assert len(counts) > 0.9 * len(names(4).train)  # rare names still occur


@pytest.mark.parametrize(("text_version", "share"), [(3, 0.5), (4, 0.5), (5, 0.75), (6, 0.75)])
def test_ioi_documents_name_io_first_at_the_version_share(text_version: int, share: float) -> None:
    rng = random.Random(0)
    io_first = 0
    for _ in range(4000):
        doc = IOI.document(rng, text_version)
        intro = re.findall(r"[A-Z][a-z]+", doc.split(",")[0].split(". ")[0])
        io = re.findall(r" to ([A-Z][a-z]+)\.", doc)[0]
        io_first += intro[-2] == io  # "... A and B ..." is the end of the intro's names
    assert io_first / 4000 == pytest.approx(share, abs=0.03)


@pytest.mark.parametrize(
    ("text_version", "share"), [(3, 0.5), (4, 20 / 412), (5, 20 / 412), (6, 20 / 412)]
)
def test_story_casts_draw_heldout_names_at_the_version_share(
    text_version: int, share: float
) -> None:
    rng = random.Random(0)
    docs = [STORIES.document(rng, text_version) for _ in range(4000)]
    counts = _name_counts(docs, names(text_version).all)
    heldout = sum(counts[n] for n in NAMES.heldout)
    assert heldout / counts.total() == pytest.approx(share, abs=0.03)


def test_roff_is_reduced_to_prose() -> None:
    source = ".TH LS 1\n.SH NAME\nls \\- list directory contents, in \\fBlong\\fR format and more\n"
    assert roff_to_text(source) == "ls - list directory contents, in long format and more"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_chars", 0),
        ("shares", {"ioi": 1.0, "poetry": 0.0}),
        ("shares", {"ioi": 0.5}),
        ("val_fraction", 0.9),
        ("text_version", 2),
    ],
)
def test_bad_corpus_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field.split("_")[0]):
        CorpusConfig(**{field: value})  # type: ignore[arg-type]


def test_built_corpus_records_its_sources(small_cache, small_corpus_config, monkeypatch) -> None:
    monkeypatch.setenv("CIRCUITS_CACHE", str(small_cache))
    card = json.loads((corpus_dir(small_corpus_config) / "corpus.json").read_text())
    assert card["kind"] == "corpus" and card["schema_version"] == 1
    assert set(card["chars_per_source"]) == set(small_corpus_config.shares)
    assert card["n_tokens"]["train"] > 50_000


def test_documents_stream_is_lazy() -> None:
    head = list(itertools.islice(documents(CorpusConfig()), 5))
    assert len(head) == 5


# The first 200 documents of each family (seed 0) in the text versions that shipped models were
# trained on; a change to a generator must add a text version rather than alter these.
_FROZEN_TEXT = {
    (3, "ioi"): "4aa4e0d034cf4e95",
    (3, "stories"): "062e8bd21bf7ad43",
    (3, "induction"): "0c58360c32e5b747",
    (4, "ioi"): "dd8cb3e3209cfe42",
    (4, "stories"): "c0875a6250f74dfb",
    (4, "induction"): "42547e39bc40f9ab",
    (5, "ioi"): "4f714fd0e138680d",
    (5, "stories"): "c0875a6250f74dfb",
    (5, "greater_than"): "0f48fb6c2ab960ea",
    (5, "agreement"): "7af6d2dbef38461a",
}


@pytest.mark.parametrize(("text_version", "family"), list(_FROZEN_TEXT))
def test_released_text_versions_are_frozen(text_version: int, family: str) -> None:
    rng = random.Random(0)
    text = "\x00".join(FAMILIES[family].document(rng, text_version) for _ in range(200))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    assert digest == _FROZEN_TEXT[text_version, family]


def test_text_version_6_stories_use_every_intro_part_without_a_transfer() -> None:
    rng = random.Random(0)
    stories = [STORIES.document(rng, 6) for _ in range(4000)]
    text = " ".join(stories)
    for opener in CLAUSE_OPENERS.heldout + SENTENCE_OPENERS.heldout:
        assert f" {opener} " in text  # inside a story
        assert any(story.startswith(f"{opener} ") for story in stories)  # starting one
    for part in SENTENCE_CONNECTORS.heldout + tuple(map(_template_prefix, ACTIVITIES.heldout)):
        assert part in text
    # One person is named in an intro, so no story sentence is IOI-shaped.
    cast = "|".join(names(6).all)
    assert not re.search(rf"\b(?:{cast}) and (?:{cast})\b", text)
    assert not re.search(rf"(?<!belongs) to (?:{cast})\b", text)


def test_template_words_keep_openers_whole_at_the_start_of_a_document() -> None:
    words = template_words()
    assert {"Before", " Before", "That", " evening", " Eventually", " mailed"} <= set(words)
    assert "When" in words and " soon" in words and "soon" not in words
