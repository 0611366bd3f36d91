"""Feature atlas on tiny random float64 models: the scan finds the strongest activations, the
lenses read the weights as the model computes, descriptions survive JSON."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from circuits.features import Context, FeatureDescription, FeatureError, build_atlas
from circuits.features.atlas import CONTEXT_AFTER, CONTEXT_BEFORE
from circuits.features.description import MAX_LABEL_CHARS
from circuits.features.lens import FeatureLens
from circuits.features.scan import scan_windows
from tests.oracle.architectures import D_VOCAB, random_bridge, random_transcoders

SEQ_LEN, N_TOKENS, TOP_K, EOT = 16, 480, 5, 0


def document_tokens(n: int = 3000, seed: int = 0) -> np.ndarray:
    """Random tokens (ids 1..D_VOCAB-1) in documents of 5-30 tokens separated by EOT."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, D_VOCAB, size=n)
    tokens[np.cumsum(rng.integers(5, 30, size=n))[: n // 5].clip(max=n - 1)] = EOT
    tokens[0] = EOT
    return tokens


def _perturb_norms(bridge) -> None:
    """Gains and biases away from 1 and 0, so that the lenses must apply them."""
    norms = [bridge.ln_final, *(block.ln2 for block in bridge.blocks)]
    with torch.no_grad():
        for norm in norms:
            module = norm._original_component
            module.weight.copy_(1 + 0.5 * torch.randn_like(module.weight))
            if getattr(module, "bias", None) is not None:
                module.bias.normal_(0.0, 0.3)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("feature-models")
    out = {}
    for architecture in ("gpt2", "llama"):
        bridge = random_bridge(architecture, root)
        torch.manual_seed(1)
        _perturb_norms(bridge)
        out[architecture] = bridge
    return out


@pytest.fixture(scope="module")
def tset():
    return random_transcoders("relu", skip=False, d_transcoder=32)


@pytest.fixture(scope="module")
def atlas(models, tset):
    return build_atlas(
        models["gpt2"],
        tset,
        document_tokens(),
        eot=EOT,
        seq_len=SEQ_LEN,
        n_tokens=N_TOKENS,
        top_k=TOP_K,
        progress=False,
    )


def brute_force_activations(bridge, tset, windows: torch.Tensor) -> list[torch.Tensor]:
    """Every feature's activation at every scanned token, `[n_rows, d_transcoder]` per layer,
    rows in (window, position) order from position 1."""
    names = [h.hook_in for h in tset.hooks]
    with torch.no_grad():
        _, cache = bridge.run_with_cache(windows.long(), names_filter=lambda n: n in names)
        return [
            t.encode(cache[name][:, 1:].reshape(-1, cache[name].shape[-1])).features
            for t, name in zip(tset, names, strict=True)
        ]


def test_top_contexts_are_the_highest_activations(models, tset, atlas) -> None:
    acts = brute_force_activations(models["gpt2"], tset, atlas.scan.windows)
    for found, layer_acts in zip(atlas.scan.layers, acts, strict=True):
        assert torch.equal(found.n_active, (layer_acts > 0).sum(0))
        expected = layer_acts.clamp(min=0).topk(TOP_K, dim=0).values.T  # [d_transcoder, k]
        torch.testing.assert_close(found.top_values.double(), expected, rtol=1e-6, atol=0.0)
        for feature in range(layer_acts.shape[1]):
            rows = found.top_rows[feature]
            valid = rows >= 0
            assert torch.equal(valid, found.top_values[feature] > 0)
            torch.testing.assert_close(
                layer_acts[rows[valid].long(), feature].float(), found.top_values[feature, valid]
            )


def test_scan_reads_whole_windows_from_document_starts(atlas) -> None:
    windows = atlas.scan.windows
    assert windows.shape == (N_TOKENS // SEQ_LEN, SEQ_LEN)
    assert (windows[:, 0] == EOT).all()
    assert atlas.scan.n_scanned == windows.shape[0] * (SEQ_LEN - 1)


def test_contexts_surround_the_active_token(atlas) -> None:
    some_shown = False
    for layer in range(atlas.n_layers):
        found = atlas.scan.layers[layer]
        for feature in range(atlas.d_transcoder(layer)):
            description = atlas[layer, feature]
            assert len(description.top_contexts) == int((found.top_rows[feature] >= 0).sum())
            rows = found.top_rows[feature].tolist()
            for context, row in zip(description.top_contexts, rows, strict=False):  # rows: -1 pad
                window, pos = atlas.scan.locate(row)
                assert context.tokens[context.active] == f"t{int(atlas.scan.windows[window, pos])}"
                assert context.active == min(pos, CONTEXT_BEFORE)
                assert len(context.tokens) <= CONTEXT_BEFORE + 1 + CONTEXT_AFTER
                some_shown = True
            if description.top_contexts:
                assert description.max_activation == description.top_contexts[0].activation
    assert some_shown


def _token_ids(pairs: list[tuple[str, float]]) -> list[int]:
    return [int(token.removeprefix("t")) for token, _ in pairs]


def layer_norm(x: torch.Tensor, module) -> torch.Tensor:
    """LayerNorm (centre, unit RMS, gain) or RMSNorm (unit RMS, gain) without the bias."""
    if isinstance(module, torch.nn.LayerNorm):
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + module.eps).sqrt() * module.weight
    eps = module.variance_epsilon
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt() * module.weight


def test_promoted_tokens_are_the_top_of_the_decoder_row_through_the_final_norm(
    atlas, models, tset
) -> None:
    bridge = models["gpt2"]
    for layer, feature in [(0, 3), (1, 17)]:
        row = tset[layer].W_dec[feature].detach()
        logits = layer_norm(row, bridge.ln_final._original_component) @ bridge.W_U
        description = atlas[layer, feature]
        top = logits.topk(len(description.promoted))
        assert _token_ids(description.promoted) == top.indices.tolist()
        assert [s for _, s in description.promoted] == pytest.approx(top.values.tolist())
        bottom = (-logits).topk(len(description.suppressed))
        assert _token_ids(description.suppressed) == bottom.indices.tolist()
        assert [s for _, s in description.suppressed] == pytest.approx((-bottom.values).tolist())


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
@pytest.mark.filterwarnings("ignore:A forward hook edited hook_scale")  # rounding-level, said
def test_logit_lens_is_the_direct_effect_on_the_logits_with_the_final_norm_frozen(
    architecture, models, tset
) -> None:
    bridge = models[architecture]
    ids = torch.tensor([[EOT, 5, 9, 14, 3, 22]])
    last = f"blocks.{bridge.cfg.n_layers - 1}.hook_resid_post"
    with torch.no_grad():
        _, cache = bridge.run_with_cache(ids, names_filter=lambda n: n == "ln_final.hook_scale")
    frozen = ("ln_final.hook_scale", lambda s, hook: cache["ln_final.hook_scale"])
    with torch.no_grad():  # through the same hooked path as the pushed run
        clean = bridge.run_with_hooks(ids, fwd_hooks=[frozen])
    lens = FeatureLens(bridge, tset)
    for layer, feature in [(0, 3), (1, 17)]:
        row = tset[layer].W_dec[feature].detach()

        def add_row(resid, hook, row=row):
            return resid + torch.cat([torch.zeros_like(resid[:, :-1]), row[None, None]], 1)

        with torch.no_grad():  # with the norm's scale frozen, the model is affine in the row
            pushed = bridge.run_with_hooks(ids, fwd_hooks=[(last, add_row), frozen])
        effect = (pushed - clean)[0, -1]
        scores = lens.logits(layer, torch.tensor([feature]))[0]
        # equal up to one positive factor (the frozen scale and the row's own RMS); to float32
        # rounding, as HF's RMSNorm normalises in float32 even in a float64 model
        torch.testing.assert_close(
            effect / effect.norm(), scores / scores.norm(), rtol=1e-5, atol=1e-7
        )


def test_input_tokens_are_the_normalised_embeddings_on_the_encoder_column(
    atlas, models, tset
) -> None:
    bridge = models["gpt2"]
    for layer, feature in [(0, 3), (1, 17)]:
        norm = bridge.blocks[layer].ln2._original_component
        scores = layer_norm(bridge.W_E, norm) @ tset[layer].W_enc[:, feature].detach()
        description = atlas[layer, feature]
        top = scores.topk(len(description.input_tokens))
        assert _token_ids(description.input_tokens) == top.indices.tolist()
        assert [s for _, s in description.input_tokens] == pytest.approx(top.values.tolist())


def test_descriptions_survive_a_json_round_trip(atlas) -> None:
    for key in [(0, 0), (1, 5)]:
        description = atlas[key]
        text = json.dumps(description.to_json())
        assert FeatureDescription.from_json(json.loads(text)) == description


def test_description_json_with_unknown_keys_is_refused(atlas) -> None:
    data = atlas[0, 0].to_json() | {"colour": "red"}
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        FeatureDescription.from_json(data)


def test_labels_are_short(atlas) -> None:
    labels = [d.label for d in atlas.describe((0, f) for f in range(32)).values()]
    assert all(0 < len(label) <= MAX_LABEL_CHARS for label in labels)
    assert all(label.startswith(("says ", "on ")) for label in labels)


def test_describe_keeps_the_order_asked(atlas) -> None:
    keys = [(1, 4), (0, 9), (1, 4), (0, 2)]
    described = atlas.describe(keys)
    assert list(described) == [(1, 4), (0, 9), (0, 2)]
    assert all(described[key].key == key for key in described)


def test_feature_outside_the_set_is_a_one_line_error(atlas) -> None:
    with pytest.raises(FeatureError, match=r"feature 32 does not exist in layer 1; .* 0\.\.31"):
        atlas[1, 32]
    with pytest.raises(FeatureError, match=r"layer 2 does not exist"):
        atlas[2, 0]


def test_context_index_must_point_into_its_tokens() -> None:
    with pytest.raises(ValueError, match="active must index tokens"):
        Context(tokens=["a", "b"], active=2, activation=1.0)


def test_scan_windows_are_fixed(tmp_path: Path) -> None:
    from circuits.features.scan import ScanSettings

    settings = ScanSettings(n_tokens=N_TOKENS, top_k=TOP_K, seq_len=SEQ_LEN)
    tokens = document_tokens()
    first = scan_windows(tokens, eot=EOT, settings=settings)
    assert torch.equal(first, scan_windows(tokens, eot=EOT, settings=settings))


def test_labels_of_every_feature_match_their_descriptions(atlas) -> None:
    labels = atlas.labels()
    assert len(labels) == len(atlas) == 2 * 32
    assert labels == {key: d.label for key, d in atlas.describe(labels).items()}
