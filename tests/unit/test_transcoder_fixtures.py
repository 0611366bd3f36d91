"""Fixtures of the transcoder tests: a tiny random GPT-2 on the small corpus's tokenizer.

Test modules bind them by assignment (`tiny_bridge = fixtures.tiny_bridge`), which keeps the
shared conftest untouched; the models are cached per process, so every module sees the same.
The one test here checks that the fixture model boots with the corpus vocabulary.
"""

import functools
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from circuits.corpus.build import CorpusConfig, corpus_dir, load_corpus_tokenizer
from circuits.models import load_model
from transcoders.config import HarvestConfig, TranscoderConfig
from transcoders.corpus import CorpusTokens, load_corpus_tokens
from transcoders.transcoder import Transcoder
from transcoders.transcoder_set import TranscoderSet

D_MODEL = 32
N_CTX = 64
SPARSITY = {
    "topk": {"k": 4},
    "batchtopk": {"k": 4},
    "relu": {"l1_coefficient": 1e-3},
    "jumprelu": {"l0_coefficient": 1e-3},
}


def _model_dir(cache: Path, config: CorpusConfig, out: Path) -> Path:
    if (out / "config.json").exists():  # built by another module's fixture in this session
        return out
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCUITS_CACHE", str(cache))
        tokenizer = load_corpus_tokenizer(corpus_dir(config))
    eot = tokenizer.bos_token_id
    gpt2 = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=N_CTX,
        n_embd=D_MODEL,
        n_layer=2,
        n_head=2,
        activation_function="relu",  # so that a relu transcoder can copy an MLP exactly
        bos_token_id=eot,
        eos_token_id=eot,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT2LMHeadModel(gpt2)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@functools.cache
def _bridge(model_dir: Path):
    return load_model(str(model_dir))


@pytest.fixture(scope="session")
def tiny_model_dir(
    small_cache: Path, small_corpus_config: CorpusConfig, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A 2-layer, d_model 32 GPT-2 (ReLU MLPs) with random weights and the corpus tokenizer."""
    out = tmp_path_factory.getbasetemp() / "tiny-transcoder-model"
    return _model_dir(small_cache, small_corpus_config, out)


@pytest.fixture(scope="session")
def tiny_bridge(tiny_model_dir: Path):
    return _bridge(tiny_model_dir)


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


def tiny_harvest(**overrides) -> HarvestConfig:
    """Windows of 32 tokens, 8 per forward, a buffer of 1024 rows."""
    values = {"seq_len": 32, "windows_per_forward": 8, "buffer_tokens": 1024, **overrides}
    return HarvestConfig(**values)


def tiny_transcoder(kind: str = "topk", **overrides) -> TranscoderConfig:
    """A transcoder of `kind` with 64 features for the tiny model."""
    values = {"d_model": D_MODEL, "d_transcoder": 64, **SPARSITY[kind], **overrides}
    return TranscoderConfig(kind=kind, **values)


def test_fixture_model_speaks_the_corpus_vocabulary(tiny_bridge, small_tokens) -> None:
    assert tiny_bridge.cfg.n_layers == 2 and tiny_bridge.cfg.d_model == D_MODEL
    assert tiny_bridge.tokenizer.bos_token_id == small_tokens.eot
    assert int(small_tokens.train.max()) < tiny_bridge.cfg.d_vocab


def exact_mlp_transcoders(bridge) -> TranscoderSet:
    """Relu transcoders equal to the tiny model's MLPs (d_transcoder = 4 d_model): a replacement
    without error, for checking the splicing and the metrics."""
    transcoders = []
    for block in bridge.original_model.transformer.h:
        config = TranscoderConfig(
            kind="relu",
            d_model=D_MODEL,
            d_transcoder=4 * D_MODEL,
            l1_coefficient=0.0,
            normalize_decoder=False,
        )
        transcoder = Transcoder(config)
        with torch.no_grad():  # HF Conv1D weights are [d_in, d_out]: x @ weight + bias
            transcoder.W_enc.copy_(block.mlp.c_fc.weight)
            transcoder.b_enc.copy_(block.mlp.c_fc.bias)
            transcoder.W_dec.copy_(block.mlp.c_proj.weight)
            transcoder.b_dec.copy_(block.mlp.c_proj.bias)
        transcoders.append(transcoder)
    return TranscoderSet(transcoders, model="tiny-test-model").eval()
