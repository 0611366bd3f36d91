"""Fixtures shared by the unit tests that patch and attribute the shipped model."""

import pytest
import torch

from circuits.models import load_model
from circuits.tasks import build_prompt_set, load_task


@pytest.fixture(scope="session")
def bridge():
    """The shipped model (zoo:tiny) in float64, so that exact identities hold to 1e-10."""
    return load_model("zoo:tiny", dtype=torch.float64)


@pytest.fixture(scope="session")
def ioi(bridge):
    """Four IOI prompts for it."""
    return build_prompt_set(load_task("tasks/ioi.toml"), bridge.tokenizer, n_ctx=256, count=4)
