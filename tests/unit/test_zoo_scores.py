"""IOI scores split the logit difference into the boost of IO and the boost of S, and the
accuracy by the order of the names."""

import pytest
import torch

from circuits.corpus.ioi import IOI
from circuits.corpus.vocab import NAMES
from circuits.models import load_tokenizer
from circuits.zoo.registry import zoo_path
from circuits.zoo.scores import EVAL_SEED, ioi_scores, single_token


def _heldout_name_ids(tokenizer) -> torch.Tensor:
    return torch.tensor([single_token(tokenizer, f" {name}") for name in NAMES.heldout])


def test_boosts_are_measured_against_the_names_the_prompt_leaves_out() -> None:
    tokenizer = load_tokenizer(zoo_path("default"))
    names = _heldout_name_ids(tokenizer)

    def copies_both_suppresses_neither(ids: torch.Tensor) -> torch.Tensor:
        """Every held-out name scores 1, a name seen once 4 and a name seen twice 2."""
        logits = torch.zeros(*ids.shape, len(tokenizer))
        for row, seq in enumerate(ids):
            logits[row, -1, names] = 1.0
            for name in names:
                seen = int((seq == name).sum())
                if seen:
                    logits[row, -1, name] = {1: 4.0, 2: 2.0}[seen]
        return logits

    prompts = IOI.heldout_prompts(20, EVAL_SEED)
    scores = ioi_scores(copies_both_suppresses_neither, tokenizer, prompts, NAMES.heldout)
    assert scores["io_boost"] == pytest.approx(3.0)
    assert scores["s_boost"] == pytest.approx(1.0)
    assert scores["logit_diff"] == pytest.approx(2.0)
    assert scores["accuracy"] == 1.0


def test_accuracy_is_split_by_the_order_of_the_names_in_the_intro() -> None:
    tokenizer = load_tokenizer(zoo_path("default"))
    names = _heldout_name_ids(tokenizer)

    def second_name_of_the_intro(ids: torch.Tensor) -> torch.Tensor:
        """Scores each name by where it first appears: the intro's second name always wins."""
        logits = torch.zeros(*ids.shape, len(tokenizer))
        for row, seq in enumerate(ids):
            for name in names:
                where = (seq == name).nonzero()
                if len(where):
                    logits[row, -1, name] = float(where[0, 0])
        return logits

    prompts = IOI.heldout_prompts(40, EVAL_SEED)
    n_io_first = sum(p.io_first for p in prompts)
    assert 0 < n_io_first < len(prompts)
    scores = ioi_scores(second_name_of_the_intro, tokenizer, prompts, NAMES.heldout)
    assert scores["accuracy_s_first"] == 1.0
    assert scores["accuracy_io_first"] == 0.0
    assert scores["accuracy"] == pytest.approx(1 - n_io_first / len(prompts))
