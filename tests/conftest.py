"""Shared fixtures: a seeded torch, and a small corpus built in a temporary cache."""

from pathlib import Path

import pytest
import torch

from circuits.corpus.build import CorpusConfig, build_corpus


@pytest.fixture(autouse=True)
def seeded() -> None:
    torch.manual_seed(0)


SMALL_CORPUS = CorpusConfig(n_chars=300_000, tokenizer_chars=300_000, vocab_size=2048)


@pytest.fixture(scope="session")
def small_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding SMALL_CORPUS, built once per session."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCUITS_CACHE", str(cache))
        from circuits.corpus.build import corpus_dir

        build_corpus(SMALL_CORPUS, corpus_dir(SMALL_CORPUS))
    return cache


@pytest.fixture(scope="session")
def small_corpus_config() -> CorpusConfig:
    return SMALL_CORPUS
