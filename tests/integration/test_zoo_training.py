"""Zoo training: an interrupted run resumed from its checkpoint ends with the same weights."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from circuits.errors import CheckpointError
from circuits.zoo.registry import ZooModel, ZooTrainConfig
from circuits.zoo.train import CHECKPOINT, default_work_dir, lr_at, train


@pytest.fixture
def micro_spec(small_corpus_config) -> ZooModel:
    config = ZooTrainConfig(
        n_steps=12, batch_size=2, seq_len=32, warmup_steps=3, checkpoint_every=4, eval_every=6
    )
    return ZooModel(
        name="micro",
        n_layers=2,
        d_model=32,
        n_heads=2,
        n_ctx=64,
        train=config,
        corpus=small_corpus_config,
    )


@pytest.mark.parametrize("ema_decay", [0.0, 0.9], ids=["last-weights", "moving-average"])
def test_resumed_run_gives_the_same_weights(
    micro_spec, small_cache, tmp_path, monkeypatch, ema_decay
) -> None:
    monkeypatch.setenv("CIRCUITS_CACHE", str(small_cache))
    micro_spec = dataclasses.replace(
        micro_spec, train=dataclasses.replace(micro_spec.train, ema_decay=ema_decay)
    )
    straight = train(micro_spec, tmp_path / "straight", progress=False)
    assert straight is not None

    interrupted = tmp_path / "interrupted"
    assert train(micro_spec, interrupted, stop_after=7, progress=False) is None
    work = default_work_dir(interrupted)  # the checkpoint lives in the cache, not in the output
    assert json.loads((work / CHECKPOINT / "step.json").read_text()) == {"step": 7}
    assert not interrupted.exists()
    resumed = train(micro_spec, interrupted, progress=False)
    assert resumed is not None and not (work / CHECKPOINT).exists()

    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_moving_average_is_what_gets_saved(micro_spec, small_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("CIRCUITS_CACHE", str(small_cache))
    last = train(micro_spec, tmp_path / "last", progress=False)
    averaged_spec = dataclasses.replace(
        micro_spec, train=dataclasses.replace(micro_spec.train, ema_decay=0.5)
    )
    averaged = train(averaged_spec, tmp_path / "averaged", progress=False)
    assert last is not None and averaged is not None
    a = load_file(str(last / "model.safetensors"))
    b = load_file(str(averaged / "model.safetensors"))
    # same batches and updates: the saved weights differ only by the average's lag
    difference = a["transformer.h.0.mlp.c_fc.weight"] - b["transformer.h.0.mlp.c_fc.weight"]
    assert 0 < difference.abs().max() < 0.05
    with pytest.raises(CheckpointError, match="moving average"):
        train(micro_spec, tmp_path / "switched", stop_after=4, progress=False)
        train(averaged_spec, tmp_path / "switched", progress=False)


def test_finished_model_has_a_card_with_scores(micro_spec, small_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("CIRCUITS_CACHE", str(small_cache))
    out = train(micro_spec, tmp_path / "m", work=tmp_path / "work", progress=False)
    assert out is not None
    assert not (tmp_path / "work" / CHECKPOINT).exists()
    card = json.loads((out / "card.json").read_text())
    assert card["tokens_seen"] == 12 * 2 * 32
    assert {"ioi.logit_diff", "ioi.accuracy", "greater_than.prob_diff"} <= set(card["scores"])
    assert "# Zoo model `micro`" in (out / "card.md").read_text()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [6, 12]


def test_checkpoint_of_another_config_is_refused(micro_spec, small_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("CIRCUITS_CACHE", str(small_cache))
    out = tmp_path / "m"
    train(micro_spec, out, stop_after=4, progress=False)
    wider = dataclasses.replace(micro_spec, d_model=64)
    with pytest.raises(CheckpointError, match="delete it"):
        train(wider, out, progress=False)


def test_moving_average_decay_must_be_below_one() -> None:
    with pytest.raises(ValueError, match="ema_decay"):
        ZooTrainConfig(ema_decay=1.0)


def test_learning_rate_warms_up_then_decays() -> None:
    config = ZooTrainConfig(n_steps=100, lr=1.0, warmup_steps=10, decay_fraction=0.2)
    assert lr_at(config, 0) == pytest.approx(0.1)
    assert lr_at(config, 50) == 1.0
    assert lr_at(config, 99) == pytest.approx(1 - 0.9 * 19 / 20)
