"""The token arrays a model's transcoders are trained and evaluated on, the window length, and
how many tokens a zoo model's set trains on.

Zoo models use the corpus they were trained on; a model compiled from a program (its directory
has an `input_domain.json`: vocabulary, BOS token, sequence length) uses uniformly random inputs
from its domain; any other model uses the default corpus if its tokenizer is the corpus
tokenizer (same vocabulary), and is refused otherwise.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from circuits.corpus.build import CorpusConfig, corpus_dir, load_corpus_tokenizer
from circuits.corpus.tokenizer import END_OF_TEXT
from circuits.models import ZOO_PREFIX
from transcoders.config import TrainConfig
from transcoders.errors import TranscoderError


@dataclass(frozen=True, kw_only=True)
class CorpusTokens:
    """Training and held-out tokens, and the id that separates documents."""

    train: np.ndarray
    """Training split, memory-mapped (uint16)."""
    val: np.ndarray
    """Held-out split (uint16)."""
    eot: int
    """End-of-text id: opens every window and separates documents."""


def corpus_config_for(spec: str) -> CorpusConfig:
    """The corpus of the zoo model `spec`, else the default corpus."""
    if spec.startswith(ZOO_PREFIX):
        from circuits.zoo.registry import zoo_model

        return zoo_model(spec.removeprefix(ZOO_PREFIX)).corpus
    return CorpusConfig()


INPUT_DOMAIN = "input_domain.json"
"""A compiled model's inputs: `{"vocab": [...], "bos": "BOS", "max_seq_len": 8}`."""


def input_domain(spec: str) -> dict[str, Any] | None:
    """The input domain of a compiled model directory, or None for other models."""
    if spec.startswith(ZOO_PREFIX):
        return None
    path = Path(spec).expanduser() / INPUT_DOMAIN
    if not path.exists():
        return None
    domain = json.loads(path.read_text())
    for key in ("vocab", "bos", "max_seq_len"):
        if key not in domain:
            raise TranscoderError(f"{path}: missing {key!r} (expected vocab, bos, max_seq_len)")
    return domain


def window_length(spec: str, bridge: Any) -> int:
    """Tokens per harvesting and evaluation window: the length a zoo model was trained on (its
    activations further out are out of distribution), a compiled model's BOS plus its longest
    input, else min(256, n_ctx)."""
    domain = input_domain(spec)
    if domain is not None:
        return domain["max_seq_len"] + 1
    if spec.startswith(ZOO_PREFIX):
        from circuits.zoo.registry import zoo_model

        return min(zoo_model(spec.removeprefix(ZOO_PREFIX)).train.seq_len, bridge.cfg.n_ctx)
    return min(256, bridge.cfg.n_ctx)


def training_tokens(given: int | None, spec: str) -> int:
    """`given`, else the count the zoo model `spec` registers, else the transcoders' default."""
    if given is not None:
        return given
    if spec.startswith(ZOO_PREFIX):
        from circuits.zoo.registry import zoo_model

        registered = zoo_model(spec.removeprefix(ZOO_PREFIX)).transcoder_tokens
        if registered is not None:
            return registered
    return TrainConfig().n_tokens


def load_corpus_tokens(spec: str, bridge: Any) -> CorpusTokens:
    """The cached corpus for `spec`, checked to share the model's tokenizer.

    A missing corpus is not built here: a corpus rebuilt by other code under the same config
    need not be the text the model was trained on.
    """
    domain = input_domain(spec)
    if domain is not None:
        return random_inputs(domain, bridge.tokenizer)
    path = corpus_dir(corpus_config_for(spec))
    if not (path / "corpus.json").exists():
        raise TranscoderError(
            f"the corpus of {spec} is not in the cache ({path}); build it with `circuits corpus "
            "build` (transcoders must be trained on the corpus the model was trained on)"
        )
    tokenizer = load_corpus_tokenizer(path)
    if tokenizer.get_vocab() != bridge.tokenizer.get_vocab():
        raise TranscoderError(
            f"the tokenizer of {spec} is not the corpus tokenizer ({path / 'tokenizer.json'}); "
            "transcoders can only be trained here for models of this project's corpus"
        )
    eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    assert isinstance(eot, int)
    return CorpusTokens(
        train=np.load(path / "train.npy", mmap_mode="r"), val=np.load(path / "val.npy"), eot=eot
    )


def random_inputs(
    domain: dict[str, Any], tokenizer: Any, *, n_train: int = 400_000, n_val: int = 80_000
) -> CorpusTokens:
    """Uniformly random full-length inputs of a compiled model, each opened by its BOS token
    (which also serves as the window opener), with a fixed seed. `n_val` leaves windows enough
    for the feature atlas's default scan of 65,536 tokens."""
    ids = [tokenizer.convert_tokens_to_ids(word) for word in domain["vocab"]]
    bos = tokenizer.convert_tokens_to_ids(domain["bos"])
    if any(not isinstance(i, int) for i in [*ids, bos]):
        raise TranscoderError(f"the tokenizer lacks some of {domain['vocab']} or {domain['bos']}")
    width = domain["max_seq_len"] + 1
    rng = np.random.default_rng(0)

    def draw(n_tokens: int) -> np.ndarray:
        rows = rng.choice(np.array(ids, dtype=np.uint16), size=(n_tokens // width, width))
        rows[:, 0] = bos
        return rows.reshape(-1)

    return CorpusTokens(train=draw(n_train), val=draw(n_val), eot=bos)
