"""The shipped task files on the shipped model: the behaviours show on their prompts."""

from pathlib import Path

import pytest
import torch

from circuits.models import load_model
from circuits.tasks import PromptSet, build_prompt_set, load_task
from circuits.zoo.registry import is_trained

pytestmark = pytest.mark.skipif(not is_trained("tiny"), reason="shipped model missing")

TASKS = Path(__file__).resolve().parents[2] / "tasks"


@pytest.fixture(scope="module")
def bridge():
    return load_model("zoo:tiny")


def metric_values(bridge, name: str) -> tuple[PromptSet, torch.Tensor]:
    prompts = build_prompt_set(
        load_task(TASKS / f"{name}.toml"), bridge.tokenizer, n_ctx=bridge.cfg.n_ctx
    )
    values = []
    with torch.no_grad():
        for prompt in prompts.prompts:
            logits = bridge(torch.tensor([prompt.tokens]))[0]
            values.append(prompts.metric_value(logits[prompt.position], prompt))
            target = prompts.target(logits, prompt)
            if prompts.spec.metric == "logit_diff":
                torch.testing.assert_close(target.value(logits), values[-1])
    return prompts, torch.stack(values)


def test_ioi_logit_difference_is_positive_on_the_shipped_prompts(bridge) -> None:
    _, values = metric_values(bridge, "ioi")
    assert values.mean() > 0


def test_greater_than_probability_difference_is_positive(bridge) -> None:
    _, values = metric_values(bridge, "greater_than")
    assert values.mean() > 0
