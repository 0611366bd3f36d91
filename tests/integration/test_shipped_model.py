"""The shipped default model: loads through the bridge, matches HF, and does the tasks."""

import pytest
import torch
from transformers import GPT2LMHeadModel

from circuits.models import load_model
from circuits.zoo.card import read_card
from circuits.zoo.registry import is_trained, zoo_path
from circuits.zoo.scores import task_scores

pytestmark = pytest.mark.skipif(not is_trained("default"), reason="shipped model missing")


@pytest.fixture(scope="module")
def bridge():
    return load_model("zoo:default")


def test_bridge_logits_match_the_hf_model(bridge) -> None:
    hf = GPT2LMHeadModel.from_pretrained(zoo_path("default"), attn_implementation="eager")
    ids = bridge.to_tokens("When Mary and John went to the store, John gave a drink to")
    with torch.no_grad():
        torch.testing.assert_close(bridge(ids), hf(ids).logits, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def scores(bridge) -> dict[str, float]:
    return task_scores(lambda ids: bridge(ids), bridge.tokenizer, n_prompts=200)


def test_bridge_scores_match_the_model_card(scores) -> None:
    card = read_card(zoo_path("default"))
    for key, value in card["scores"].items():
        assert scores[key] == pytest.approx(value, abs=1e-2), key


def test_shipped_model_does_greater_than_on_heldout_prompts(scores) -> None:
    assert scores["greater_than.prob_diff"] >= 0.5


def test_shipped_model_does_ioi_on_heldout_prompts(scores) -> None:
    assert scores["ioi.logit_diff"] >= 2.0
    assert scores["ioi.accuracy"] >= 0.9
    assert scores["ioi.accuracy_io_first"] >= 0.9 and scores["ioi.accuracy_s_first"] >= 0.9


def test_shipped_model_does_ioi_on_new_templates_with_seen_names(scores) -> None:
    assert scores["ioi.logit_diff_seen_names"] >= 2.0
    assert scores["ioi.accuracy_seen_names"] >= 0.9
