"""Splicing transcoders into a model and the metrics of `transcoders eval`.

The reference replacement is exact: the tiny model's MLPs are ReLU MLPs, which are relu
transcoders, so a set built from their weights must leave every metric at its ideal value.
"""

import math

import pytest
import torch

from circuits.zoo.train import document_starts
from tests import builders
from tests.builders import exact_mlp_transcoders, tiny_transcoder
from transcoders.evaluate import (
    eval_windows,
    evaluate_transcoders,
    language_model_metrics,
    loss_recovered,
    reconstruction_on_tokens,
    task_metrics,
)
from transcoders.splice import spliced_logits
from transcoders.transcoder import Transcoder
from transcoders.transcoder_set import TranscoderSet

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def held_out(small_tokens):
    """Tokens with many document starts (the small corpus's val split is one document)."""
    return small_tokens.train[-50_000:]


@pytest.fixture(scope="module")
def windows(held_out, small_tokens):
    return eval_windows(held_out, eot=small_tokens.eot, n_tokens=8 * 32, seq_len=32)


def random_set() -> TranscoderSet:
    return TranscoderSet([Transcoder(tiny_transcoder()) for _ in range(2)], model="tiny").eval()


def test_exact_transcoders_reproduce_the_model(tiny_bridge, windows) -> None:
    tset = exact_mlp_transcoders(tiny_bridge)
    with torch.no_grad():
        original = tiny_bridge(windows)
    torch.testing.assert_close(
        spliced_logits(tiny_bridge, tset, windows), original, rtol=1e-4, atol=1e-4
    )


def test_exact_transcoders_recover_all_the_loss(tiny_bridge, windows) -> None:
    report = language_model_metrics(tiny_bridge, exact_mlp_transcoders(tiny_bridge), windows)
    assert report["n_tokens"] == 8 * 30
    for part in [report["all_layers"], *report["per_layer"]]:
        assert part["ce_spliced"] == pytest.approx(report["ce_original"], abs=1e-5)
        assert part["kl"] == pytest.approx(0.0, abs=1e-6)
        assert part["loss_recovered"] == pytest.approx(1.0, abs=1e-3)
        assert part["ce_zero"] != pytest.approx(report["ce_original"], abs=1e-4)
    for stats in report["isolated"] + report["spliced"]:
        assert stats["fvu"] == pytest.approx(0.0, abs=1e-8)
        assert 0 < stats["l0"] < 4 * builders.D_MODEL


def test_random_transcoders_lose_loss(tiny_bridge, windows) -> None:
    report = language_model_metrics(tiny_bridge, random_set(), windows)
    every = report["all_layers"]
    # On a random model the MLPs barely matter, so loss recovered is far from 1 either way.
    assert every["kl"] > 1e-4 and every["loss_recovered"] != pytest.approx(1.0, abs=0.05)
    assert all(s["fvu"] > 0.1 for s in report["isolated"])


def test_position_zero_keeps_its_mlp_output(tiny_bridge, windows) -> None:
    with torch.no_grad():
        original = tiny_bridge(windows)
    spliced = spliced_logits(tiny_bridge, random_set(), windows)
    torch.testing.assert_close(spliced[:, 0], original[:, 0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(spliced[:, 1:], original[:, 1:], atol=1e-4)


def test_zero_ablation_equals_zeroing_the_mlp_output_by_hand(tiny_bridge, windows) -> None:
    def zero_after_bos(tensor, hook):
        return torch.cat([tensor[:, :1], torch.zeros_like(tensor[:, 1:])], dim=1)

    hooks = [(f"blocks.{i}.mlp.hook_out", zero_after_bos) for i in range(2)]
    with torch.no_grad():
        by_hand = tiny_bridge.run_with_hooks(windows, fwd_hooks=hooks)
    zeroed = spliced_logits(tiny_bridge, random_set(), windows, replacement="zero")
    torch.testing.assert_close(zeroed, by_hand, rtol=0, atol=0)


def test_loss_recovered_is_the_share_of_the_gap_closed() -> None:
    assert loss_recovered(2.0, 2.0, 4.0) == 1.0
    assert loss_recovered(2.0, 4.0, 4.0) == 0.0
    assert loss_recovered(2.0, 3.5, 4.0) == pytest.approx(0.25)
    assert math.isnan(loss_recovered(2.0, 3.0, 2.0))


def test_reconstruction_stats_count_dead_and_dense_features(
    tiny_bridge, held_out, small_tokens
) -> None:
    tset = random_set()
    with torch.no_grad():
        tset[0].b_enc[:3] = 1e3  # always among the top k: dense
        tset[0].b_enc[3:10] = -1e3  # never: dead
    stats = reconstruction_on_tokens(
        tset, tiny_bridge, held_out, eot=small_tokens.eot, n_tokens=4 * 32, seq_len=32
    )
    assert stats[0].n_tokens == 4 * 31
    assert stats[0].l0 == pytest.approx(4.0)
    assert stats[0].dense_fraction >= 3 / 64
    assert stats[0].dead_fraction >= 7 / 64


def test_task_scores_of_exact_transcoders_match_the_model(tiny_bridge) -> None:
    tasks = task_metrics(tiny_bridge, exact_mlp_transcoders(tiny_bridge), n_prompts=4)
    assert {"ioi.logit_diff", "greater_than.prob_diff"} <= set(tasks)
    for row in tasks.values():
        assert row["spliced"] == pytest.approx(row["original"], rel=1e-3, abs=1e-5)
        for ratio in (row["ratio"], *row["ratio_by_layer"]):
            assert ratio == pytest.approx(1.0, rel=1e-3) or math.isnan(ratio)
        assert len(row["ratio_by_layer"]) == tiny_bridge.cfg.n_layers


def test_report_is_json_ready(tiny_bridge, held_out, small_tokens) -> None:
    import json

    report = evaluate_transcoders(
        tiny_bridge,
        random_set(),
        held_out,
        eot=small_tokens.eot,
        n_tokens=64,
        seq_len=32,
        n_prompts=None,
    )
    assert json.loads(json.dumps(report))["model"] == "tiny"
    assert "tasks" not in report and len(report["per_layer"]) == 2


def test_per_layer_stats_use_the_longer_window(tiny_bridge, held_out, small_tokens) -> None:
    tset = random_set()
    report = evaluate_transcoders(
        tiny_bridge,
        tset,
        held_out,
        eot=small_tokens.eot,
        n_tokens=2 * 32,
        n_isolated_tokens=16 * 32,
        seq_len=32,
        n_prompts=None,
    )
    assert report["n_tokens"] == 2 * 30 and report["n_isolated_tokens"] == 16 * 31
    expected = reconstruction_on_tokens(
        tset, tiny_bridge, held_out, eot=small_tokens.eot, n_tokens=16 * 32, seq_len=32
    )
    assert [s["dead_fraction"] for s in report["isolated"]] == [s.dead_fraction for s in expected]
    assert report["spliced"][0]["n_tokens"] == 2 * 31


def test_per_layer_window_stops_at_the_held_out_windows(tiny_bridge, small_tokens) -> None:
    held_out = small_tokens.train[-3_000:]
    report = evaluate_transcoders(
        tiny_bridge,
        random_set(),
        held_out,
        eot=small_tokens.eot,
        n_tokens=2 * 32,
        n_isolated_tokens=10**9,
        seq_len=32,
        n_prompts=None,
    )
    # every window opening at a document start, position 0 left out (windows may overlap)
    every_window = len(document_starts(held_out, small_tokens.eot, 32)) * 31
    assert 2 * 31 < report["n_isolated_tokens"] == every_window


def test_isolated_stats_are_those_of_harvested_activations(
    tiny_bridge, held_out, small_tokens, windows
) -> None:
    tset = random_set()
    report = language_model_metrics(tiny_bridge, tset, windows)
    harvested = reconstruction_on_tokens(
        tset, tiny_bridge, held_out, eot=small_tokens.eot, n_tokens=8 * 32, seq_len=32
    )
    for got, expected in zip(report["isolated"], harvested, strict=True):
        assert got["n_tokens"] == expected.n_tokens == 8 * 31  # position 0 left out in both
        assert got["fvu"] == pytest.approx(expected.fvu, rel=1e-5)
        assert got["l0"] == pytest.approx(expected.l0, rel=1e-6)
        assert got["dead_fraction"] == expected.dead_fraction
