"""Build the training corpus: seed -> identical bytes, tokenizer and token array.

The corpus interleaves documents so that each source holds its configured share of characters:
at every step the source furthest below its share writes the next document.
"""

import hashlib
import json
import logging
import random
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from circuits.corpus import agreement, greater_than, induction, ioi, stories  # noqa: F401
from circuits.corpus.family import FAMILIES
from circuits.corpus.natural import natural_documents
from circuits.corpus.tokenizer import END_OF_TEXT, end_of_text_id, train_tokenizer, wrap
from circuits.corpus.vocab import names
from circuits.errors import CorpusError
from circuits.paths import atomic_dir, cache_dir

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
NATURAL = "natural"
TEXT_VERSIONS = (3, 4, 5, 6)
"""Text versions the families can still write (a model keeps the corpus it was trained on)."""


def _default_shares() -> dict[str, float]:
    return {
        NATURAL: 0.25,
        "ioi": 0.30,
        "greater_than": 0.10,
        "induction": 0.15,
        "agreement": 0.07,
        "stories": 0.13,
    }


@dataclass(frozen=True, kw_only=True)
class CorpusConfig:
    """What goes into a corpus; equal configs build byte-identical corpora on one machine."""

    seed: int = 0
    """Seed for every random choice of the builder."""
    text_version: int = 6
    """Version of the families' text generators, passed to every family: bump it whenever a
    family writes different text (it is part of the cache key), keeping the old text for models
    trained on it. Version 4 adds 305 training names (`vocab.MORE_NAMES`), draws the names of
    IOI documents from a Zipf distribution and casts stories uniformly over all names; version 5
    names IO first in three quarters of the IOI documents (`ioi.IO_FIRST_SHARE`); version 6 makes
    every IOI template word a single token and uses the intro parts, held-out ones too, in
    stories (`ioi.template_words`)."""
    n_chars: int = 100_000_000
    """Total characters of text (about four per token)."""
    shares: dict[str, float] = field(default_factory=_default_shares)
    """Share of characters per source: `natural` or a registered task family."""
    vocab_size: int = 4096
    """Size of the BPE vocabulary."""
    tokenizer_chars: int = 20_000_000
    """Characters from the start of the corpus used to train the tokenizer."""
    val_fraction: float = 0.01
    """Share of tokens at the end kept for validation loss."""

    def __post_init__(self) -> None:
        if self.n_chars <= 0:
            raise ValueError(f"n_chars must be positive, got {self.n_chars}")
        unknown = set(self.shares) - set(FAMILIES) - {NATURAL}
        if unknown:
            raise ValueError(
                f"shares: unknown sources {sorted(unknown)}; known: {[*sorted(FAMILIES), NATURAL]}"
            )
        if abs(sum(self.shares.values()) - 1) > 1e-6 or min(self.shares.values()) <= 0:
            raise ValueError(f"shares must be positive and sum to 1, got {self.shares}")
        if self.text_version not in TEXT_VERSIONS:
            raise ValueError(
                f"text_version must be one of {TEXT_VERSIONS}, got {self.text_version}"
            )
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}")

    def digest(self) -> str:
        """A short id of this config, naming its directory in the cache."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def task_words(text_version: int) -> list[str]:
    """The words the tokenizer must keep whole: every name and, from text version 6, every IOI
    template word."""
    words = [f" {name}" for name in names(text_version).all]
    return words + (ioi.template_words() if text_version >= 6 else [])


def corpus_dir(config: CorpusConfig) -> Path:
    return cache_dir() / "corpus" / f"seed{config.seed}-{config.digest()}"


def documents(config: CorpusConfig) -> Iterator[tuple[str, str]]:
    """(source, document) pairs, each source holding its share of characters."""
    rng = random.Random(config.seed)
    natural = natural_documents(random.Random(config.seed + 1))
    written = dict.fromkeys(config.shares, 0)
    total = 0
    while total < config.n_chars:
        source = min(config.shares, key=lambda s: written[s] / config.shares[s])
        if source == NATURAL:
            doc = next(natural, None)
            if doc is None:
                raise CorpusError(
                    f"the machine's natural text ran out after {written[NATURAL]:,} chars; "
                    "lower n_chars or the natural share"
                )
        else:
            doc = FAMILIES[source].document(rng, config.text_version)
        written[source] += len(doc)
        total += len(doc)
        yield source, doc


def build_corpus(config: CorpusConfig, out: Path | None = None) -> Path:
    """Write `corpus.txt`, `tokenizer.json`, `train.npy`, `val.npy` and `corpus.json`."""
    out = out or corpus_dir(config)
    with atomic_dir(out, kind="corpus") as tmp:
        counts: dict[str, int] = dict.fromkeys(config.shares, 0)
        docs: list[str] = []
        with tqdm(total=config.n_chars, unit="char", unit_scale=True, desc="corpus") as bar:
            for source, doc in documents(config):
                docs.append(doc)
                counts[source] += len(doc)
                bar.update(len(doc))
        (tmp / "corpus.txt").write_text(END_OF_TEXT.join(docs), encoding="utf-8")
        tokenizer = train_tokenizer(
            _prefix(docs, config.tokenizer_chars),
            vocab_size=config.vocab_size,
            words=task_words(config.text_version),
        )
        tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        tokens = _tokenize(docs, tokenizer)
        n_val = int(len(tokens) * config.val_fraction)
        np.save(tmp / "train.npy", tokens[:-n_val])
        np.save(tmp / "val.npy", tokens[-n_val:])
        card = {
            "schema_version": SCHEMA_VERSION,
            "kind": "corpus",
            "config": asdict(config),
            "chars_per_source": counts,
            "n_documents": len(docs),
            "n_tokens": {"train": len(tokens) - n_val, "val": n_val},
            "sha256": hashlib.sha256((tmp / "corpus.txt").read_bytes()).hexdigest(),
            "python": sys.version.split()[0],
        }
        (tmp / "corpus.json").write_text(json.dumps(card, indent=2))
    log.info("corpus written to %s (%d tokens)", out, len(tokens))
    return out


def load_or_build_corpus(config: CorpusConfig) -> Path:
    out = corpus_dir(config)
    return out if (out / "corpus.json").exists() else build_corpus(config, out)


def load_corpus_tokenizer(path: Path):
    from tokenizers import Tokenizer

    return wrap(Tokenizer.from_file(str(path / "tokenizer.json")))


def _prefix(docs: list[str], n_chars: int) -> Iterator[str]:
    seen = 0
    for doc in docs:
        if seen >= n_chars:
            return
        seen += len(doc)
        yield doc


def _tokenize(docs: list[str], tokenizer) -> np.ndarray:
    eot = end_of_text_id(tokenizer)
    backend = tokenizer.backend_tokenizer
    pieces: list[np.ndarray] = []
    batch = 4096
    for start in tqdm(range(0, len(docs), batch), desc="tokenize", unit="batch"):
        for enc in backend.encode_batch(docs[start : start + batch], add_special_tokens=False):
            pieces.append(np.asarray([*enc.ids, eot], dtype=np.uint16))
    return np.concatenate(pieces)
