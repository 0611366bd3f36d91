"""The corpus tokenizer: task words are single tokens, years split into two-digit pieces."""

import pytest

from circuits.corpus.build import corpus_dir, load_corpus_tokenizer, task_words
from circuits.corpus.tokenizer import check_single_tokens, forced_tokens
from circuits.errors import CorpusError


@pytest.fixture(scope="module")
def tokenizer(small_cache, small_corpus_config):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCUITS_CACHE", str(small_cache))
        return load_corpus_tokenizer(corpus_dir(small_corpus_config))


def test_every_task_word_is_one_token(tokenizer, small_corpus_config) -> None:
    check_single_tokens(tokenizer, forced_tokens(task_words(small_corpus_config.text_version)))


def test_years_split_into_century_and_two_digits(tokenizer) -> None:
    pieces = tokenizer.convert_ids_to_tokens(tokenizer.encode(" 1732", add_special_tokens=False))
    assert pieces == ["Ġ17", "32"]


def test_multi_token_word_is_reported_with_its_pieces(tokenizer) -> None:
    with pytest.raises(CorpusError, match="Supercalifragilistic"):
        check_single_tokens(tokenizer, [" Supercalifragilistic"])
