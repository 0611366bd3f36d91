"""The format registry: detection by content, one-line refusals (unknown formats, CLTs, unsafe
pickles, sets that do not fit the model, hub names without the network), and the export to
circuit-tracer's format read back."""

import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from tests.unit.test_transcoder_formats import D, F, rand, write_dunefsky
from transcoders.config import TranscoderConfig
from transcoders.errors import TranscoderError
from transcoders.formats import Format, detect, load_any, register
from transcoders.formats.export import export
from transcoders.formats.registry import formats
from transcoders.transcoder import Transcoder
from transcoders.transcoder_set import TranscoderSet, load_transcoder_set, save_transcoder_set


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def fake_bridge(d_model: int = D, n_layers: int = 2, norm: str = "LN") -> SimpleNamespace:
    """What the loaders read of a TransformerBridge: its config and hook names."""
    hooks = [
        f"blocks.{i}.{h}"
        for i in range(n_layers)
        for h in ("mlp.hook_in", "mlp.hook_out", "hook_mlp_out", "ln2.hook_normalized")
    ]
    cfg = SimpleNamespace(d_model=d_model, n_layers=n_layers, normalization_type=norm)
    return SimpleNamespace(cfg=cfg, hook_dict=dict.fromkeys(hooks))


def circuit_tracer_dir(path: Path, n_layers: int = 2, hook_in: str = "mlp.hook_in") -> Path:
    path.mkdir(exist_ok=True)
    for i in range(n_layers):
        t = {"W_enc": rand(F, D), "W_dec": rand(F, D), "b_enc": rand(F), "b_dec": rand(D)}
        save_file(t, str(path / f"layer_{i}.safetensors"))
    config = {"model_kind": "transcoder_set", "model_name": "m", "feature_input_hook": hook_in}
    config["feature_output_hook"] = "mlp.hook_out"
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    return path


def test_registering_a_second_format_of_a_name_is_refused() -> None:
    existing = formats()["circuit-tracer"]
    with pytest.raises(ValueError, match="duplicate transcoder format: 'circuit-tracer'"):
        register(Format(name="circuit-tracer", summary="", detect=bool, load=existing.load))


def test_a_directory_of_no_known_format_is_refused_naming_what_it_holds(tmp_path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(TranscoderError, match="in no known transcoder format") as err:
        load_any(tmp_path)
    assert "weights.bin" in one_line(err)


def test_cross_layer_transcoders_are_detected_and_refused(tmp_path) -> None:
    save_file({"W_enc_0": rand(F, D)}, str(tmp_path / "W_enc_0.safetensors"))
    save_file({"W_dec_0": rand(F, 2, D)}, str(tmp_path / "W_dec_0.safetensors"))
    assert detect(tmp_path).name == "circuit-tracer-clt"
    with pytest.raises(TranscoderError, match="CLTs are not supported yet") as err:
        load_any(tmp_path)
    one_line(err)


class Payload:
    """Pickles as a call of os.system: loading it the unsafe way would run a shell command."""

    def __reduce__(self):
        import os

        return (os.system, ("echo this must never run",))


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path) -> None:
    name = "final_sparse_autoencoder_gpt2-small_blocks.0.ln2.hook_normalized_40.pt"
    torch.save({"cfg": Payload(), "state_dict": {"W_enc": rand(D, F)}}, tmp_path / name)
    with pytest.raises(TranscoderError, match="without running code") as err:
        load_any(tmp_path)
    assert "system" in one_line(err)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_plain_pickle_in_place_of_torch_save_is_refused(tmp_path) -> None:
    name = "final_sparse_autoencoder_gpt2-small_blocks.0.ln2.hook_normalized_40.pt"
    (tmp_path / name).write_bytes(pickle.dumps({"cfg": Payload(), "state_dict": {}}))
    with pytest.raises(TranscoderError, match="not read") as err:
        load_any(tmp_path)
    one_line(err)


def test_dunefsky_sets_need_a_layer_norm_model(tmp_path, monkeypatch) -> None:
    write_dunefsky(tmp_path, monkeypatch)
    assert load_any(tmp_path, bridge=fake_bridge()).n_layers == 2
    with pytest.raises(TranscoderError, match="normalization is RMS") as err:
        load_any(tmp_path, bridge=fake_bridge(norm="RMS"))
    one_line(err)


@pytest.mark.parametrize(
    ("bridge", "message"),
    [
        (fake_bridge(d_model=2 * D), f"d_model {D} but the model has d_model {2 * D}"),
        (fake_bridge(n_layers=3), "2 layers but the model has n_layers 3"),
    ],
)
def test_a_set_that_does_not_fit_the_model_is_refused_naming_both(tmp_path, bridge, message):
    circuit_tracer_dir(tmp_path)
    with pytest.raises(TranscoderError, match=message) as err:
        load_any(tmp_path, bridge=bridge)
    one_line(err)


def test_a_hook_the_model_lacks_is_refused(tmp_path) -> None:
    circuit_tracer_dir(tmp_path, hook_in="hook_resid_mid")
    with pytest.raises(TranscoderError, match=r"hook blocks\.0\.hook_resid_mid") as err:
        load_any(tmp_path, bridge=fake_bridge())
    one_line(err)


@pytest.mark.parametrize(("norm", "hook"), [("LN", "mlp.hook_in"), ("RMS", "ln2.hook_normalized")])
def test_transformer_lens_ln2_hook_normalized_maps_to_the_same_values(tmp_path, norm, hook):
    """An unfolded HookedTransformer's LayerNorm hook_normalized is after the weight and bias
    (the MLP input); RMSNorm's is before the weight, as the bridge's is."""
    circuit_tracer_dir(tmp_path, hook_in="ln2.hook_normalized")
    tset = load_any(tmp_path, bridge=fake_bridge(norm=norm))
    assert tset.hooks[0].hook_in == f"blocks.0.{hook}"


def test_misshapen_tensors_are_refused_naming_the_layer(tmp_path) -> None:
    circuit_tracer_dir(tmp_path)
    t = {"W_enc": rand(F, D), "W_dec": rand(F, D), "b_enc": rand(F + 1), "b_dec": rand(D)}
    save_file(t, str(tmp_path / "layer_1.safetensors"))
    with pytest.raises(TranscoderError, match=r"\(layer 1\): b_enc has shape \(41,\)") as err:
        load_any(tmp_path)
    one_line(err)


def test_unexpected_tensors_are_refused_rather_than_ignored(tmp_path) -> None:
    folder = tmp_path / "layer_0" / "width_16k" / "average_l0_10"
    folder.mkdir(parents=True)
    t = {"W_enc": rand(D, F), "W_dec": rand(F, D), "b_enc": rand(F), "b_dec": rand(D)}
    t |= {"threshold": rand(F), "W_skip": rand(D, D)}
    np.savez(folder / "params.npz", **{k: v.numpy() for k, v in t.items()})
    with pytest.raises(TranscoderError, match=r"unexpected tensors \['W_skip'\]") as err:
        load_any(tmp_path)
    one_line(err)


def test_two_files_for_one_layer_are_refused(tmp_path) -> None:
    for l0 in (10, 20):
        folder = tmp_path / "layer_0" / "width_16k" / f"average_l0_{l0}"
        folder.mkdir(parents=True)
        t = {"W_enc": rand(D, F), "W_dec": rand(F, D), "b_enc": rand(F), "b_dec": rand(D)}
        t["threshold"] = rand(F)
        np.savez(folder / "params.npz", **{k: v.numpy() for k, v in t.items()})
    with pytest.raises(TranscoderError, match=r"layer 0 has 2 params\.npz files") as err:
        load_any(tmp_path)
    one_line(err)


def test_sparse_autoencoders_are_not_taken_for_transcoders(tmp_path) -> None:
    folder = tmp_path / "layers.0.mlp"
    folder.mkdir()
    t = {"encoder.weight": rand(F, D), "encoder.bias": rand(F), "W_dec": rand(F, D)}
    save_file(t | {"b_dec": rand(D)}, str(folder / "sae.safetensors"))
    (folder / "cfg.json").write_text('{"d_in": 16, "k": 5, "transcode": false}')
    with pytest.raises(TranscoderError, match="a sparse autoencoder, not a transcoder") as err:
        load_any(tmp_path)
    one_line(err)


def test_a_hub_name_without_the_network_is_one_line(monkeypatch) -> None:
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("Name or service not known\nmore detail")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(TranscoderError, match="cannot fetch EleutherAI/some-set") as err:
        load_any("EleutherAI/some-set")
    assert "Name or service not known" in one_line(err)


def a_set(kind: str, skip: bool) -> TranscoderSet:
    extra = {"topk": {"k": 5}, "relu": {"l1_coefficient": 0.0}, "jumprelu": {"l0_coefficient": 0.1}}
    transcoders = []
    for _ in range(2):
        config = TranscoderConfig(kind=kind, d_model=D, d_transcoder=F, skip=skip, **extra[kind])
        t = Transcoder(config)
        with torch.no_grad():
            for p in t.parameters():
                p.copy_(rand(*p.shape))
        transcoders.append(t.eval())
    return TranscoderSet(transcoders, model="zoo:test")


@pytest.mark.parametrize(("kind", "skip"), [("topk", False), ("relu", True), ("jumprelu", True)])
def test_export_to_circuit_tracer_reads_back_the_same_set(tmp_path, kind, skip) -> None:
    tset = a_set(kind, skip)
    export(tset, "circuit-tracer", tmp_path / "ct")
    back = load_any(tmp_path / "ct")
    assert back.hooks == tset.hooks and back.model == "zoo:test"
    assert [t.config.kind for t in back] == [kind, kind]  # topk: by the topk_relu extension
    x = rand(64, D, scale=1.0)
    for layer in range(2):
        with torch.no_grad():
            torch.testing.assert_close(back[layer](x), tset[layer](x), rtol=1e-6, atol=1e-6)


def test_our_own_sets_still_load_as_before_through_load_any(tmp_path) -> None:
    tset = a_set("topk", skip=True)
    save_transcoder_set(tset, tmp_path / "set")
    assert detect(tmp_path / "set").name == "transcoder-set"
    direct, via = load_transcoder_set(tmp_path / "set"), load_any(tmp_path / "set")
    assert [t.config for t in via] == [t.config for t in direct]
    for a, b in zip(direct, via, strict=True):
        for name, value in a.tensors().items():
            assert torch.equal(value, b.tensors()[name]), name
