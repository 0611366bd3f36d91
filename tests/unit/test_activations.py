"""Transcoder activation kinds: sparsity patterns on hand-made pre-activations."""

import pytest
import torch

from transcoders.activations import ACTIVATIONS, ActivationKind, register
from transcoders.cli.main import main


def test_topk_keeps_the_k_largest_positive_values() -> None:
    pre = torch.tensor([[3.0, -1.0, 2.0, 0.5], [-2.0, -1.0, -3.0, 4.0]])
    out = ACTIVATIONS["topk"].build(k=2)(pre)
    torch.testing.assert_close(out, torch.tensor([[3.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 4.0]]))


def test_jumprelu_passes_only_values_above_their_threshold() -> None:
    pre = torch.tensor([1.0, 1.0, 0.2])
    out = ACTIVATIONS["jumprelu"].build(threshold=torch.tensor([0.5, 1.5, 0.1]))(pre)
    torch.testing.assert_close(out, torch.tensor([1.0, 0.0, 0.2]))


def test_duplicate_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        register(ActivationKind(name="relu", summary="", build=lambda: torch.relu))


def test_kinds_command_lists_every_kind(capsys) -> None:
    assert main(["kinds"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == list(ACTIVATIONS)
