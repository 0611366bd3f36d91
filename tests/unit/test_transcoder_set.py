"""Transcoder sets on disk: exact round trips, small files, and refusals that name the fix."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from circuits.paths import MARKER
from tests import builders
from tests.builders import tiny_transcoder
from transcoders.errors import TranscoderError
from transcoders.transcoder import Transcoder
from transcoders.transcoder_set import (
    CONFIG,
    WEIGHTS,
    TranscoderSet,
    default_transcoders_dir,
    load_transcoder_set,
    mlp_hooks,
    model_id,
    save_transcoder_set,
)


def trained_looking_set(kind: str = "jumprelu", d_model: int = builders.D_MODEL, n: int = 2):
    """A set with every tensor random (thresholds and skips included)."""
    overrides = {"d_model": d_model, "skip": True}
    tset = TranscoderSet(
        [Transcoder(tiny_transcoder(kind, **overrides)) for _ in range(n)],
        model="zoo:tiny",
        training={"tokens": 123, "val": {"fvu": [0.1, 0.2]}},
    )
    with torch.no_grad():
        for tensor in tset.state_dict().values():
            tensor.copy_(torch.rand_like(tensor))
    return tset.eval()


@pytest.mark.parametrize("kind", ["topk", "batchtopk", "relu", "jumprelu"])
def test_round_trip_is_exact(kind, tmp_path, tiny_bridge) -> None:
    tset = trained_looking_set(kind)
    save_transcoder_set(tset, tmp_path / "set")
    loaded = load_transcoder_set(tmp_path / "set", bridge=tiny_bridge)
    assert loaded.model == "zoo:tiny" and loaded.hooks == tset.hooks
    assert loaded.training_summary == tset.training_summary
    assert [t.config for t in loaded] == [t.config for t in tset]
    original, back = tset.state_dict(), loaded.state_dict()
    assert original.keys() == back.keys()
    for key in original:
        torch.testing.assert_close(back[key], original[key], rtol=0, atol=0, msg=key)
    x = torch.randn(5, builders.D_MODEL)
    torch.testing.assert_close(loaded[1](x), tset[1](x), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_files_are_half_the_size_and_load_as_float32(dtype, tmp_path) -> None:
    tset = trained_looking_set()
    full = save_transcoder_set(tset, tmp_path / "full")
    half = save_transcoder_set(tset, tmp_path / "half", dtype=dtype)
    full_size, half_size = (full / WEIGHTS).stat().st_size, (half / WEIGHTS).stat().st_size
    assert half_size < 0.55 * full_size
    loaded = load_transcoder_set(half)
    assert json.loads((half / CONFIG).read_text())["weights_dtype"] == dtype
    for key, value in tset.state_dict().items():
        back = loaded.state_dict()[key]
        assert back.dtype == torch.float32
        torch.testing.assert_close(back, value.to(getattr(torch, dtype)).float(), rtol=0, atol=0)


def test_set_of_another_width_is_refused_naming_both(tmp_path, tiny_bridge) -> None:
    save_transcoder_set(trained_looking_set(d_model=16), tmp_path / "set")
    with pytest.raises(TranscoderError, match=r"d_model 16 but the model has d_model 32"):
        load_transcoder_set(tmp_path / "set", bridge=tiny_bridge)


def test_set_of_another_depth_is_refused_naming_both(tmp_path, tiny_bridge) -> None:
    save_transcoder_set(trained_looking_set(n=3), tmp_path / "set")
    with pytest.raises(TranscoderError, match=r"has 3 layers but the model has n_layers 2"):
        load_transcoder_set(tmp_path / "set", bridge=tiny_bridge)


def test_hook_the_model_lacks_is_refused_naming_it(tmp_path, tiny_bridge) -> None:
    save_transcoder_set(trained_looking_set(), tmp_path / "set")
    config = json.loads((tmp_path / "set" / CONFIG).read_text())
    config["hooks"][1]["hook_out"] = "blocks.1.mlp.hook_nowhere"
    (tmp_path / "set" / CONFIG).write_text(json.dumps(config))
    with pytest.raises(TranscoderError, match=r"hook blocks\.1\.mlp\.hook_nowhere .*\(layer 1\)"):
        load_transcoder_set(tmp_path / "set", bridge=tiny_bridge)


def test_other_model_id_only_warns(tmp_path, caplog) -> None:
    save_transcoder_set(trained_looking_set(), tmp_path / "set")
    load_transcoder_set(tmp_path / "set", model="zoo:small")
    assert "trained on zoo:tiny, not on zoo:small" in caplog.text


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(extra=1), r"unknown keys \['extra'\]"),
        (lambda c: c.pop("hooks"), r"missing keys \['hooks'\]"),
        (lambda c: c.update(kind="zoo_model_card"), "not a transcoder set"),
        (lambda c: c.update(schema_version=99), "schema_version 99"),
        (lambda c: c["transcoders"][0].update(width=3), r"unknown transcoder config keys"),
        (lambda c: c["transcoders"][0].update(k=4), "k is not used by kind 'jumprelu'"),
    ],
)
def test_malformed_config_is_refused(edit, message, tmp_path) -> None:
    save_transcoder_set(trained_looking_set(), tmp_path / "set")
    config = json.loads((tmp_path / "set" / CONFIG).read_text())
    edit(config)
    (tmp_path / "set" / CONFIG).write_text(json.dumps(config))
    with pytest.raises(TranscoderError, match=message):
        load_transcoder_set(tmp_path / "set")


def test_weights_that_do_not_match_the_config_are_refused(tmp_path) -> None:
    path = save_transcoder_set(trained_looking_set(), tmp_path / "set")
    tensors = load_file(str(path / WEIGHTS))
    save_file({**tensors, "layers.7.W_enc": torch.zeros(1)}, str(path / WEIGHTS))
    with pytest.raises(TranscoderError, match=r"weights of no layer: \['layers\.7\.W_enc'\]"):
        load_transcoder_set(path)
    del tensors["layers.0.threshold"]
    save_file(tensors, str(path / WEIGHTS))
    with pytest.raises(TranscoderError, match=r"missing \['threshold'\]"):
        load_transcoder_set(path)


def test_saving_over_a_set_replaces_it_and_leaves_no_debris(tmp_path) -> None:
    save_transcoder_set(trained_looking_set(n=3), tmp_path / "set")
    save_transcoder_set(trained_looking_set(n=2), tmp_path / "set")
    assert load_transcoder_set(tmp_path / "set").n_layers == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == [MARKER, CONFIG, WEIGHTS]


def test_missing_set_says_how_to_train_one(tmp_path) -> None:
    with pytest.raises(TranscoderError, match="transcoders train"):
        load_transcoder_set(tmp_path / "nothing")


def test_registered_set_lives_in_the_model_directory(tiny_model_dir) -> None:
    spec = str(tiny_model_dir)
    assert default_transcoders_dir(spec, must_exist=False) == tiny_model_dir / "transcoders"
    with pytest.raises(TranscoderError, match=f"transcoders train --model {spec}"):
        default_transcoders_dir(spec)


def test_hub_models_have_no_registered_set() -> None:
    with pytest.raises(TranscoderError, match="--transcoders DIR"):
        default_transcoders_dir("gpt2")


def test_model_ids_resolve_zoo_aliases(tiny_model_dir) -> None:
    assert model_id("zoo:default") == "zoo:tiny"
    assert model_id(str(tiny_model_dir)) == tiny_model_dir.name
    assert model_id("gpt2") == "gpt2"


def test_hooks_name_the_mlp_of_each_layer() -> None:
    assert [(h.layer, h.hook_in, h.hook_out) for h in mlp_hooks(2)] == [
        (0, "blocks.0.mlp.hook_in", "blocks.0.mlp.hook_out"),
        (1, "blocks.1.mlp.hook_in", "blocks.1.mlp.hook_out"),
    ]


def test_truncated_weights_or_unparseable_config_is_a_clear_error(tmp_path) -> None:
    path = save_transcoder_set(trained_looking_set(), tmp_path / "set")
    weights = path / WEIGHTS
    intact = weights.read_bytes()
    weights.write_bytes(intact[: len(intact) // 2])
    with pytest.raises(TranscoderError, match=rf"cannot read {weights}"):
        load_transcoder_set(path)
    weights.write_bytes(intact)
    (path / CONFIG).write_text("{not json")
    with pytest.raises(TranscoderError, match=r"config\.json is not valid JSON"):
        load_transcoder_set(path)
