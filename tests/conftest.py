"""Shared fixtures: a seeded torch, and a small corpus built in a temporary cache."""

from pathlib import Path

import pytest
import torch

from circuits.corpus.build import CorpusConfig, build_corpus
from tests.builders import tiny_bridge_of, tiny_gpt2_dir
from transcoders.corpus import CorpusTokens, load_corpus_tokens


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


@pytest.fixture(scope="session")
def tiny_model_dir(
    small_cache: Path, small_corpus_config: CorpusConfig, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A 2-layer, d_model 32 GPT-2 (ReLU MLPs) with random weights and the corpus tokenizer."""
    out = tmp_path_factory.getbasetemp() / "tiny-transcoder-model"
    return tiny_gpt2_dir(small_cache, small_corpus_config, out)


@pytest.fixture(scope="session")
def tiny_bridge(tiny_model_dir: Path):
    return tiny_bridge_of(tiny_model_dir)


@pytest.fixture(scope="session")
def small_tokens(small_cache: Path, small_corpus_config: CorpusConfig, tiny_bridge) -> CorpusTokens:
    """Train and validation tokens of the small corpus (the tiny model's tokenizer)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCUITS_CACHE", str(small_cache))
        mp.setattr("transcoders.corpus.corpus_config_for", lambda spec: small_corpus_config)
        return load_corpus_tokens("tiny-test-model", tiny_bridge)


@pytest.fixture
def single_thread():
    """One torch thread: on a machine shared with other jobs, two threads of tiny ops spend
    most of their time waiting for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
