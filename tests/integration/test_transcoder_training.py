"""Training transcoder sets: the loss falls, an interrupted run resumes to identical weights."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor

from circuits.errors import CheckpointError
from tests.builders import tiny_harvest, tiny_transcoder
from transcoders.config import TrainConfig
from transcoders.evaluate import reconstruction_on_tokens
from transcoders.harvest import activation_batches
from transcoders.train import (
    CHECKPOINT,
    fit_to_batch,
    init_state,
    lr_at,
    train_step,
    train_transcoders,
)
from transcoders.transcoder_set import CONFIG, WEIGHTS, load_transcoder_set

pytestmark = pytest.mark.usefixtures("single_thread")


def micro_config(**overrides) -> TrainConfig:
    """12 steps of 128 rows; the 1024-row buffer holds 8 steps, so chunks turn over mid-run."""
    values = {
        "n_tokens": 12 * 128,
        "batch_size": 128,
        "lr": 3e-3,
        "warmup_steps": 2,
        "checkpoint_every": 5,
        "dead_after_tokens": 256,
        "harvest": tiny_harvest(),
        **overrides,
    }
    return TrainConfig(**values)


@pytest.mark.parametrize("kind", ["topk", "batchtopk", "relu", "jumprelu"])
def test_training_lowers_the_reconstruction_error(kind, tiny_bridge, small_tokens) -> None:
    config = micro_config(n_tokens=40 * 128)
    state = init_state(tiny_bridge, tiny_transcoder(kind), model="tiny", seed=0)
    batches = activation_batches(
        tiny_bridge, small_tokens.train, config.harvest, batch_size=128, eot=small_tokens.eot
    )
    first = next(batches)
    fit_to_batch(state, first)
    fvu = [s["fvu"] for s in train_step(state, first, config)]
    for _ in range(config.n_steps - 1):
        last = train_step(state, next(batches), config)
    assert all(s["fvu"] < 0.7 * f for s, f in zip(last, fvu, strict=True)), (fvu, last)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"dead_after_tokens": 128, "resample_at": (0.5,)}],
    ids=["plain", "resampling after the interruption"],
)
def test_resumed_run_gives_identical_weights(
    overrides, tiny_bridge, small_tokens, tmp_path
) -> None:
    config = micro_config(**overrides)
    transcoder = tiny_transcoder("batchtopk")
    common = {"model": "tiny", "eot": small_tokens.eot, "progress": False}

    straight = train_transcoders(
        tiny_bridge,
        small_tokens.train,
        transcoder,
        config,
        out=tmp_path / "straight",
        work=tmp_path / "w1",
        **common,
    )
    assert straight is not None

    out, work = tmp_path / "resumed", tmp_path / "w2"
    stopped = train_transcoders(
        tiny_bridge,
        small_tokens.train,
        transcoder,
        config,
        out=out,
        work=work,
        stop_after=10,
        **common,
    )
    assert stopped is None and not out.exists()
    assert json.loads((work / CHECKPOINT / "state.json").read_text())["step"] == 10
    resumed = train_transcoders(
        tiny_bridge, small_tokens.train, transcoder, config, out=out, work=work, **common
    )
    assert resumed == out and not (work / CHECKPOINT).exists()

    a, b = load_file(str(straight / WEIGHTS)), load_file(str(out / WEIGHTS))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_summary_records_tokens_and_held_out_fvu(tiny_bridge, small_tokens, tmp_path) -> None:
    config = micro_config(n_tokens=4 * 128)
    out = train_transcoders(
        tiny_bridge,
        small_tokens.train,
        tiny_transcoder(),
        config,
        out=tmp_path / "set",
        model="tiny",
        eot=small_tokens.eot,
        work=tmp_path / "w",
        val_tokens=small_tokens.val,
        progress=False,
    )
    assert out is not None
    summary = json.loads((out / CONFIG).read_text())["training"]
    assert summary["tokens"] == 4 * 128 and summary["steps"] == 4
    loaded = load_transcoder_set(out, bridge=tiny_bridge)
    assert loaded.training_summary == summary
    stats = reconstruction_on_tokens(
        loaded,
        tiny_bridge,
        small_tokens.val,
        eot=small_tokens.eot,
        n_tokens=summary["val"]["tokens"] // 31 * 32,
        seq_len=32,
    )
    assert summary["val"]["fvu"] == pytest.approx([s.fvu for s in stats], rel=1e-6)
    assert summary["val"]["l0"] == pytest.approx([s.l0 for s in stats], rel=1e-6)


def test_checkpoint_of_another_configuration_is_refused(tiny_bridge, small_tokens, tmp_path):
    config = micro_config()
    common = {
        "out": tmp_path / "set",
        "work": tmp_path / "w",
        "model": "tiny",
        "eot": small_tokens.eot,
        "progress": False,
    }
    train_transcoders(
        tiny_bridge, small_tokens.train, tiny_transcoder(), config, stop_after=5, **common
    )
    with pytest.raises(CheckpointError, match="--fresh"):
        train_transcoders(tiny_bridge, small_tokens.train, tiny_transcoder(k=8), config, **common)
    with pytest.raises(CheckpointError, match="--fresh"):
        train_transcoders(
            tiny_bridge,
            small_tokens.train,
            tiny_transcoder(),
            dataclasses.replace(config, lr=1e-3),
            **common,
        )


def test_learning_rate_warms_up_then_decays_to_zero() -> None:
    config = TrainConfig(
        n_tokens=100,
        batch_size=1,
        lr=1.0,
        warmup_steps=10,
        decay_fraction=0.2,
        schedule="linear",
        harvest=tiny_harvest(),
    )
    assert lr_at(config, 0) == pytest.approx(0.1)
    assert lr_at(config, 50) == 1.0
    assert lr_at(config, 90) == pytest.approx(0.5)
    cosine = dataclasses.replace(config, schedule="cosine")
    assert lr_at(cosine, 90) == pytest.approx(0.5)
    assert lr_at(cosine, 85) == pytest.approx(0.5 * (1 + 2**-0.5))


def test_resampling_revives_dead_features_on_the_worst_reconstructed_tokens(
    tiny_bridge, small_tokens
) -> None:
    from transcoders.train import resample_dead

    config = micro_config(n_tokens=20 * 128, dead_after_tokens=128, resample_at=(0.5,))
    state = init_state(tiny_bridge, tiny_transcoder("topk"), model="tiny", seed=0)
    batches = activation_batches(
        tiny_bridge, small_tokens.train, config.harvest, batch_size=128, eot=small_tokens.eot
    )
    first = next(batches)
    fit_to_batch(state, first)
    for _ in range(4):
        train_step(state, next(batches), config)
    state.idle_tokens[:, :8] = config.dead_after_tokens  # the first 8 features of each layer
    acts = next(batches)
    dead_before = (state.idle_tokens >= config.dead_after_tokens).sum(-1).tolist()
    counts = resample_dead(state, acts, config)
    assert counts == dead_before and min(counts) >= 8
    for layer, transcoder in enumerate(state.tset):
        assert (state.idle_tokens[layer] < config.dead_after_tokens).all()
        rows = transcoder.W_dec[:8]
        torch.testing.assert_close(rows.norm(dim=-1), torch.ones(8))
        assert (transcoder.b_enc[:8] == 0).all()
        moments = state.opt.state[transcoder.W_dec]["exp_avg"]
        assert (moments[:8] == 0).all()
        x = acts.mlp_in[:, layer] * state.in_scale[layer]
        assert transcoder.encode(x)[1][:, :8].count_nonzero() > 0  # they fire again


@pytest.mark.parametrize("centered", [True, False])
def test_centered_init_starts_every_pre_activation_centred(
    centered, tiny_bridge, small_tokens
) -> None:
    """With the centred init, each feature's mean pre-activation on the first batch is zero, so
    none starts on the silent side of every input; without it, the mean input decides."""
    state = init_state(tiny_bridge, tiny_transcoder("topk"), model="tiny", seed=0)
    config = micro_config()
    first = next(
        activation_batches(
            tiny_bridge, small_tokens.train, config.harvest, batch_size=128, eot=small_tokens.eot
        )
    )
    fit_to_batch(state, first, centered=centered)
    for layer, transcoder in enumerate(state.tset):
        x = first.mlp_in[:, layer] * state.in_scale[layer]
        pre = transcoder.encode(x).pre.detach()
        mean_pre, spread = pre.mean(0), pre.std(0)
        largest_offset = (mean_pre.abs() / spread).max().item()
        if centered:
            assert largest_offset < 1e-4
        else:
            assert largest_offset > 0.3


def test_a_few_hundred_steps_beat_the_best_linear_map_on_a_sparse_problem() -> None:
    """Inputs and outputs are two random dictionaries read by the same sparse codes (3 of 32
    active, in 16 dimensions): no linear map recovers the code from the input, a transcoder can."""
    from transcoders.config import TranscoderConfig
    from transcoders.harvest import Activations
    from transcoders.train import TrainState
    from transcoders.transcoder import Transcoder
    from transcoders.transcoder_set import TranscoderSet, mlp_hooks

    generator = torch.Generator().manual_seed(0)
    d_model, n_true, active, batch = 16, 32, 3, 512

    def draw(n: int, d_in: Tensor, d_out: Tensor) -> Activations:
        codes = torch.zeros(n, n_true)
        rows = torch.arange(n)[:, None]
        chosen = torch.rand(n, n_true, generator=generator).topk(active, dim=-1).indices
        codes[rows, chosen] = torch.rand(n, active, generator=generator) + 0.5
        return Activations(mlp_in=(codes @ d_in)[:, None], mlp_out=(codes @ d_out)[:, None])

    d_in, d_out = (torch.randn(n_true, d_model, generator=generator) for _ in range(2))
    torch.manual_seed(0)
    config = TrainConfig(n_tokens=300 * batch, batch_size=batch, lr=1e-2, warmup_steps=10)
    transcoder = TranscoderConfig(kind="topk", d_model=d_model, d_transcoder=128, k=active)
    tset = TranscoderSet([Transcoder(transcoder)], model="synthetic", hooks=mlp_hooks(1))
    state = TrainState(
        tset=tset,
        opt=torch.optim.Adam(tset.parameters(), lr=0.0),
        idle_tokens=torch.zeros(1, 128, dtype=torch.int64),
        in_scale=torch.ones(1),
        out_scale=torch.ones(1),
        variance=torch.ones(1),
    )
    fit_to_batch(state, draw(batch, d_in, d_out))
    for _ in range(config.n_steps):
        train_step(state, draw(batch, d_in, d_out), config)

    test = draw(4096, d_in, d_out)
    x, y = test.mlp_in[:, 0] * state.in_scale[0], test.mlp_out[:, 0] * state.out_scale[0]
    variance = (y - y.mean(0)).pow(2).sum()
    ones = torch.ones(len(x), 1)
    linear = torch.linalg.lstsq(torch.cat([x, ones], 1), y).solution  # fitted on the test set
    linear_fvu = (y - torch.cat([x, ones], 1) @ linear).pow(2).sum() / variance
    with torch.no_grad():
        transcoder_fvu = (y - tset[0](x)).pow(2).sum() / variance
    assert linear_fvu > 0.3, linear_fvu  # the problem is not linear
    assert transcoder_fvu < 0.5 * linear_fvu, (transcoder_fvu, linear_fvu)
