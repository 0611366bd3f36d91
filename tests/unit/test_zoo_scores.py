"""IOI scores split the logit difference into the boost of IO and the boost of S."""

import pytest
import torch

from circuits.corpus.ioi import IOI
from circuits.corpus.vocab import NAMES
from circuits.models import load_tokenizer
from circuits.zoo.registry import zoo_path
from circuits.zoo.scores import EVAL_SEED, ioi_scores, single_token


def test_boosts_are_measured_against_the_names_the_prompt_leaves_out() -> None:
    tokenizer = load_tokenizer(zoo_path("default"))
    names = torch.tensor([single_token(tokenizer, f" {name}") for name in NAMES.heldout])

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
