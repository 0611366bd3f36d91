"""One transcoder: shapes, the sparsity of each activation kind, and its training behaviour."""

import pytest
import torch

from transcoders.activations import ACTIVATIONS, THRESHOLD_MOMENTUM, batch_topk
from transcoders.config import SPARSITY_DEFAULTS, TranscoderConfig, default_config
from transcoders.transcoder import Transcoder

D_MODEL, D_TRANSCODER = 16, 48
SPARSITY = {
    "topk": {"k": 5},
    "batchtopk": {"k": 5},
    "relu": {"l1_coefficient": 0.1},
    "jumprelu": {"l0_coefficient": 0.1},
}


def make(kind: str, **overrides) -> Transcoder:
    values = {"d_model": D_MODEL, "d_transcoder": D_TRANSCODER, **SPARSITY[kind], **overrides}
    return Transcoder(TranscoderConfig(kind=kind, **values))


@pytest.mark.parametrize("kind", list(SPARSITY))
@pytest.mark.parametrize("training", [True, False])
def test_every_kind_maps_inputs_to_sparse_nonnegative_features(kind, training) -> None:
    transcoder = make(kind).train(training)
    x = torch.randn(3, 7, D_MODEL)
    pre, features = transcoder.encode(x)
    assert pre.shape == features.shape == (3, 7, D_TRANSCODER)
    assert (features >= 0).all() and (features == 0).any()
    torch.testing.assert_close(features[features > 0], pre[features > 0])
    assert transcoder(x).shape == (3, 7, D_MODEL)


def test_forward_is_decoded_features_plus_skip_path() -> None:
    transcoder = make("topk", skip=True)
    with torch.no_grad():
        transcoder.W_skip.normal_()  # type: ignore[union-attr]
        transcoder.b_dec.normal_()
    x = torch.randn(4, D_MODEL)
    expected = transcoder.encode(x).features @ transcoder.W_dec + transcoder.b_dec
    torch.testing.assert_close(
        transcoder(x), expected + x @ transcoder.W_skip, rtol=1e-6, atol=1e-6
    )


def test_topk_has_exactly_k_active_features_per_token() -> None:
    transcoder = make("topk")
    with torch.no_grad():
        transcoder.b_enc.fill_(10.0)  # every pre-activation positive: more than k candidates
    features = transcoder.encode(torch.randn(64, D_MODEL)).features
    assert ((features > 0).sum(-1) == 5).all()


def test_batchtopk_keeps_k_per_token_on_average_and_learns_its_threshold() -> None:
    transcoder = make("batchtopk").train()
    with torch.no_grad():
        transcoder.b_enc.fill_(10.0)
    x = torch.randn(32, D_MODEL)
    features = transcoder.encode(x).features
    per_token = (features > 0).sum(-1)
    assert per_token.sum() == 5 * 32 and per_token.min() < per_token.max()
    assert transcoder.threshold is not None
    threshold = transcoder.threshold.clone()
    torch.testing.assert_close(threshold, features[features > 0].min().expand(D_TRANSCODER))

    second = transcoder.encode(torch.randn(32, D_MODEL)).features
    expected = (
        THRESHOLD_MOMENTUM * threshold[0] + (1 - THRESHOLD_MOMENTUM) * second[second > 0].min()
    )
    torch.testing.assert_close(transcoder.threshold, expected.expand(D_TRANSCODER))


def test_batchtopk_uses_the_learnt_threshold_at_inference() -> None:
    transcoder = make("batchtopk").train()
    transcoder.encode(torch.randn(32, D_MODEL))  # learns a threshold
    transcoder.eval()
    x = torch.randn(16, D_MODEL)
    pre, features = transcoder.encode(x)
    threshold = transcoder.threshold
    assert threshold is not None and (threshold > 0).all()
    torch.testing.assert_close(features, pre * (pre > threshold))
    assert not torch.equal(features, batch_topk(pre, 5))


def test_batchtopk_of_a_batch_keeps_the_largest_values_anywhere() -> None:
    pre = torch.tensor([[5.0, 4.0, 3.0], [0.5, -1.0, 6.0]])
    top2 = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 6.0]])  # k=1 x 2 tokens: 6 and 5
    top4 = torch.tensor([[5.0, 4.0, 3.0], [0.0, 0.0, 6.0]])  # the second token keeps only one
    top6 = torch.tensor([[5.0, 4.0, 3.0], [0.5, 0.0, 6.0]])  # negatives stay zero
    torch.testing.assert_close(batch_topk(pre, 1), top2)
    torch.testing.assert_close(batch_topk(pre, 2), top4)
    torch.testing.assert_close(batch_topk(pre, 3), top6)


def test_jumprelu_threshold_gets_the_rectangle_kernel_gradient() -> None:
    transcoder = make("jumprelu", jumprelu_bandwidth=0.1, jumprelu_init_threshold=0.5).train()
    pre = torch.tensor([[0.52, 0.3, 0.9, 0.46]])  # in the window: 0.52, 0.46
    activation = transcoder.activation
    threshold = activation.threshold[:4]
    out = activation(torch.cat([pre, torch.zeros(1, D_TRANSCODER - 4)], dim=-1))
    out.sum().backward()
    grad = activation.threshold.grad
    assert grad is not None
    # d/dt of z H(z - t) ~ -(t / eps) K((z - t) / eps), K the unit rectangle
    expected = torch.tensor([-0.5 / 0.1, 0.0, 0.0, -0.5 / 0.1])
    torch.testing.assert_close(grad[:4], expected)
    assert threshold.shape == (4,)


def test_jumprelu_l0_penalty_pushes_thresholds_up() -> None:
    transcoder = make("jumprelu", jumprelu_bandwidth=0.1, jumprelu_init_threshold=0.5).train()
    pre = torch.full((2, D_TRANSCODER), 0.52)
    pre[1] = 2.0  # active, but outside the window
    penalty = transcoder.activation.penalty(
        pre, transcoder.activation(pre), torch.ones(D_TRANSCODER)
    )
    assert penalty.item() == pytest.approx(0.1 * D_TRANSCODER)  # L0 = 48 per token
    penalty.backward()
    grad = transcoder.activation.threshold.grad
    assert grad is not None
    # coefficient x -(1 / eps) x (one token of two in the window) / 2 tokens
    torch.testing.assert_close(grad, torch.full((D_TRANSCODER,), -0.1 / 0.1 / 2))


def test_relu_penalty_weighs_features_by_decoder_norms() -> None:
    transcoder = make("relu")
    features = torch.rand(8, D_TRANSCODER)
    norms = torch.rand(D_TRANSCODER) + 0.5
    penalty = transcoder.activation.penalty(features, features, norms)
    torch.testing.assert_close(penalty, 0.1 * (features * norms).sum(-1).mean())


def test_decoder_rows_stay_unit_norm_through_a_step() -> None:
    transcoder = make("topk").train()
    opt = torch.optim.Adam(transcoder.parameters(), lr=0.1)
    x = torch.randn(32, D_MODEL)
    (transcoder(x) - x).pow(2).sum().backward()
    rows = transcoder.W_dec / transcoder.decoder_norms()[:, None]
    assert transcoder.W_dec.grad is not None
    along = (transcoder.W_dec.grad * rows).sum(-1)
    transcoder.before_step()
    left = (transcoder.W_dec.grad * rows).sum(-1)
    assert along.abs().max() > 1.0 and left.abs().max() < 1e-5 * along.abs().max()
    opt.step()
    transcoder.after_step()
    torch.testing.assert_close(transcoder.decoder_norms(), torch.ones(D_TRANSCODER))


def test_jumprelu_thresholds_stay_non_negative() -> None:
    transcoder = make("jumprelu")
    with torch.no_grad():
        transcoder.activation.threshold[:3] = -1.0
    transcoder.after_step()
    assert (transcoder.activation.threshold >= 0).all()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kind": "gated", "k": 4}, "kind: unknown 'gated'"),
        ({"kind": "topk"}, "k is required for kind 'topk'"),
        ({"kind": "relu", "k": 4, "l1_coefficient": 1.0}, "k is not used by kind 'relu'"),
        ({"kind": "jumprelu", "l0_coefficient": -1.0}, "l0_coefficient must be non-negative"),
        ({"kind": "topk", "k": 100}, "k must be at most d_transcoder 48"),
        ({"kind": "topk", "k": 0}, "k must be positive"),
        ({"kind": "topk", "k": 4, "d_transcoder": 0}, "d_transcoder must be positive"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(values, message) -> None:
    with pytest.raises(ValueError, match=message):
        TranscoderConfig(**{"d_model": D_MODEL, "d_transcoder": D_TRANSCODER, **values})


def test_config_round_trips_through_a_dict_and_refuses_unknown_keys() -> None:
    config = make("jumprelu", skip=True).config
    assert TranscoderConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown transcoder config keys: \['width'\]"):
        TranscoderConfig.from_dict({**config.to_dict(), "width": 3})


@pytest.mark.parametrize("kind", list(ACTIVATIONS))
def test_default_config_fills_the_sparsity_field_of_its_kind(kind) -> None:
    config = default_config(kind=kind, d_model=D_MODEL)
    (name,) = ACTIVATIONS[kind].params
    assert getattr(config, name) == SPARSITY_DEFAULTS[name]
    assert default_config(kind=kind, d_model=D_MODEL, d_transcoder=64).d_transcoder == 64


def test_sparse_training_path_matches_the_dense_one() -> None:
    from transcoders.train import dense_forward, sparse_forward

    transcoder = make("topk", skip=True).train()
    x = torch.randn(64, D_MODEL)
    results = []
    for forward in (dense_forward, sparse_forward):
        transcoder.zero_grad()
        out = forward(transcoder, x)
        assert out is not None
        out.recon.pow(2).sum().backward()
        grads = {n: p.grad.clone() for n, p in transcoder.named_parameters() if p.grad is not None}
        results.append((out.recon.detach(), int(out.active.sum()), grads))
    (dense, dense_l0, dense_grads), (sparse, sparse_l0, sparse_grads) = results
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-5)
    assert sparse_l0 == dense_l0 == 64 * 5
    assert (
        sparse_grads.keys() == dense_grads.keys() == {"W_enc", "b_enc", "W_dec", "b_dec", "W_skip"}
    )
    for name, grad in dense_grads.items():
        torch.testing.assert_close(sparse_grads[name], grad, rtol=1e-4, atol=1e-4, msg=name)


def test_only_fixed_count_kinds_take_the_sparse_path() -> None:
    from transcoders.train import sparse_forward

    x = torch.randn(8, D_MODEL)
    assert sparse_forward(make("topk"), x) is not None
    for kind in ("batchtopk", "relu", "jumprelu"):
        assert sparse_forward(make(kind).train(), x) is None


def test_auxk_loss_trains_the_encoder_of_dead_features_only() -> None:
    from transcoders.train import auxk_loss

    transcoder = make("topk")
    x = torch.randn(32, D_MODEL)
    with torch.no_grad():
        pre = transcoder.encode(x).pre
    dead = torch.zeros(D_TRANSCODER, dtype=torch.bool)
    dead[:10] = True
    error = torch.randn(32, D_MODEL)
    auxk_loss(transcoder, x, pre, error, dead, k_aux=4).backward()
    grad = transcoder.W_enc.grad
    assert grad is not None
    assert grad[:, :10].abs().sum() > 0 and grad[:, 10:].abs().sum() == 0
    assert auxk_loss(transcoder, x, pre, error, torch.zeros_like(dead), k_aux=4).item() == 0.0
