"""Each published transcoder format, written here with its own key names, shapes and dtypes,
loads into a set whose output equals the format's own formula, written out below without the
loaders (to 1e-6)."""

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from transcoders.formats import detect, load_any

D, F, N_LAYERS, K = 16, 40, 2, 5
TOL = {"rtol": 1e-6, "atol": 1e-6}


def rand(*shape: int, dtype: torch.dtype = torch.float32, scale: float = 0.3) -> torch.Tensor:
    """Weights of the size real sets have (outputs of order one, so float32 keeps 1e-6)."""
    return (scale * torch.randn(*shape)).to(dtype)


def relu_jump(pre: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Gemma Scope's and SAELens' JumpReLU."""
    return torch.relu(pre) * (pre > threshold)


def check(path: Path, name: str, formulas: list, **kwargs) -> None:
    """The set at `path` is detected as `name` and layer L computes `formulas[L]`."""
    assert detect(path).name == name
    tset = load_any(path, **kwargs)
    assert tset.n_layers == len(formulas)
    x = torch.randn(64, D)
    for layer, formula in enumerate(formulas):
        with torch.no_grad():
            torch.testing.assert_close(tset[layer](x), formula(x), **TOL)


# circuit-tracer (per-layer): W_enc [F, d] used as F.linear; TopK keeps negative values.
@pytest.mark.parametrize("activation", ["relu", "jumprelu", "topk"])
@pytest.mark.parametrize("skip", [False, True])
def test_circuit_tracer_layers_compute_its_formula(tmp_path, activation, skip) -> None:
    formulas = []
    offset = -3.0 if activation == "topk" else 0.0  # topk: most of the k largest are negative
    for i in range(N_LAYERS):
        t = {"W_enc": rand(F, D), "W_dec": rand(F, D), "b_enc": rand(F) + offset}
        t["b_dec"] = rand(D)
        if activation == "jumprelu":
            t["activation_function.threshold"] = rand(F)  # some negative: x * (x > t) as is
        if skip:
            t["W_skip"] = rand(D, D, scale=0.1)
        save_file(t, str(tmp_path / f"layer_{i}.safetensors"))

        def formula(x, t=t):
            pre = x @ t["W_enc"].T + t["b_enc"]
            if activation == "relu":
                f = torch.relu(pre)
            elif activation == "jumprelu":
                f = pre * (pre > t["activation_function.threshold"])
            else:
                idx = pre.topk(K, dim=-1).indices
                f = torch.zeros_like(pre).scatter(-1, idx, 1.0) * pre
            y = f @ t["W_dec"] + t["b_dec"]
            return y + x @ t["W_skip"].T if skip else y

        formulas.append(formula)
    config = {
        "model_kind": "transcoder_set",
        "model_name": "some/model",
        "feature_input_hook": "hook_resid_mid",
        "feature_output_hook": "mlp.hook_out",
    }
    if activation == "topk":
        config |= {"activation": "topk", "k": K}
    elif activation == "relu":
        config["activation"] = "relu"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    check(tmp_path, "circuit-tracer", formulas)
    tset = load_any(tmp_path)
    assert tset.hooks[1].hook_in == "blocks.1.hook_resid_mid"
    if activation == "topk":
        assert bool((tset[0].encode(torch.randn(8, D)).features < 0).any())
    assert tset.model == "some/model"


def gemma_scope_layer(gs2: bool, skip: bool) -> tuple[dict[str, torch.Tensor], object]:
    prefix = "w" if gs2 else "W"
    t = {
        f"{prefix}_enc": rand(D, F),
        f"{prefix}_dec": rand(F, D),
        "b_enc": rand(F),
        "b_dec": rand(D),
        "threshold": rand(F, scale=0.2),
    }
    if skip:
        t["affine_skip_connection"] = rand(D, D, scale=0.1)

    def formula(x):
        pre = x @ t[f"{prefix}_enc"] + t["b_enc"]
        y = relu_jump(pre, t["threshold"]) @ t[f"{prefix}_dec"] + t["b_dec"]
        return y + x @ t["affine_skip_connection"] if skip else y

    return t, formula


def test_gemma_scope_npz_files_compute_their_jumprelu(tmp_path) -> None:
    formulas = []
    for i in range(N_LAYERS):
        t, formula = gemma_scope_layer(gs2=False, skip=False)
        folder = tmp_path / f"layer_{i}" / "width_16k" / "average_l0_71"
        folder.mkdir(parents=True)
        np.savez(folder / "params.npz", **{k: v.numpy() for k, v in t.items()})
        formulas.append(formula)
    check(tmp_path, "gemma-scope", formulas)
    assert load_any(tmp_path).hooks[0].hook_in == "blocks.0.ln2.hook_normalized"


@pytest.mark.parametrize("skip", [False, True])
def test_gemma_scope_2_files_compute_their_jumprelu_and_affine_skip(tmp_path, skip) -> None:
    formulas = []
    for i in range(N_LAYERS):
        t, formula = gemma_scope_layer(gs2=True, skip=skip)
        folder = tmp_path / f"layer_{i}_width_16k_l0_small"
        folder.mkdir()
        save_file(t, str(folder / "params.safetensors"))
        formulas.append(formula)
    check(tmp_path, "gemma-scope-2", formulas)


def test_circuit_tracer_config_may_list_gemma_scope_2_files(tmp_path) -> None:
    formulas, files = [], []
    for i in range(N_LAYERS):
        t, formula = gemma_scope_layer(gs2=True, skip=True)
        save_file(t, str(tmp_path / f"gs2_{i}.safetensors"))
        formulas.append(formula)
        files.append(f"gs2_{i}.safetensors")
    config = {
        "model_kind": "transcoder_set",
        "model_name": "google/gemma-3-270m",
        "feature_input_hook": "ln2.hook_normalized",
        "feature_output_hook": "hook_mlp_out",
        "transcoders": files,
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    check(tmp_path, "circuit-tracer", formulas)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sparsify_skip_transcoders_compute_their_formula(tmp_path, dtype) -> None:
    formulas = []
    for i in range(N_LAYERS):
        t = {
            "encoder.weight": rand(F, D, dtype=dtype),
            "encoder.bias": rand(F, dtype=dtype),
            "W_dec": rand(F, D, dtype=dtype),
            "b_dec": rand(D, dtype=dtype),
            "W_skip": rand(D, D, dtype=dtype, scale=0.1),
        }
        folder = tmp_path / f"layers.{i}.mlp"
        folder.mkdir()
        save_file(t, str(folder / "sae.safetensors"))
        cfg = {"activation": "topk", "expansion_factor": 32, "normalize_decoder": True}
        cfg |= {"num_latents": F, "k": K, "multi_topk": False, "skip_connection": True}
        cfg |= {"transcode": True, "d_in": D}
        (folder / "cfg.json").write_text(json.dumps(cfg))
        w = {k: v.float() for k, v in t.items()}

        def formula(x, w=w):
            pre = torch.relu(x @ w["encoder.weight"].T + w["encoder.bias"])
            values, idx = pre.topk(K, dim=-1)
            f = torch.zeros_like(pre).scatter(-1, idx, values)
            return f @ w["W_dec"] + w["b_dec"] + x @ w["W_skip"].T

        formulas.append(formula)
    check(tmp_path, "sparsify", formulas)
    assert load_any(tmp_path).hooks[1].hook_out == "blocks.1.mlp.hook_out"


@pytest.mark.parametrize("architecture", ["transcoder", "skip_transcoder", "jumprelu_transcoder"])
def test_saelens_transcoders_compute_their_formula(tmp_path, architecture) -> None:
    formulas = []
    for i in range(N_LAYERS):
        t = {"W_enc": rand(D, F), "b_enc": rand(F), "W_dec": rand(F, D), "b_dec": rand(D)}
        if architecture == "jumprelu_transcoder":
            t["threshold"] = rand(F, scale=0.2)
        if architecture == "skip_transcoder":
            t["W_skip"] = rand(D, D, scale=0.1)  # [d_out, d_in]
        folder = tmp_path / f"blocks.{i}.hook_mlp_out"
        folder.mkdir()
        save_file(t, str(folder / "sae_weights.safetensors"))
        cfg = {"architecture": architecture, "d_in": D, "d_sae": F, "d_out": D}
        cfg |= {"dtype": "float32", "apply_b_dec_to_input": False, "normalize_activations": "none"}
        cfg["metadata"] = {
            "model_name": "gpt2",
            "hook_name": f"blocks.{i}.ln2.hook_normalized",
            "hook_name_out": f"blocks.{i}.hook_mlp_out",
        }
        (folder / "cfg.json").write_text(json.dumps(cfg))

        def formula(x, t=t):
            pre = x @ t["W_enc"] + t["b_enc"]
            f = relu_jump(pre, t["threshold"]) if "threshold" in t else torch.relu(pre)
            y = f @ t["W_dec"] + t["b_dec"]
            return y + x @ t["W_skip"].T if "W_skip" in t else y

        formulas.append(formula)
    check(tmp_path, "saelens", formulas)


def write_dunefsky(folder: Path, monkeypatch, layers: int = N_LAYERS) -> list:
    """Pickles as `torch.save({"cfg": LanguageModelSAERunnerConfig, "state_dict": ...})`
    writes them: the config class is faked in sys.modules while saving, then removed."""
    package, module = types.ModuleType("sae_training"), types.ModuleType("sae_training.config")
    cfg_class = type("LanguageModelSAERunnerConfig", (), {"__module__": "sae_training.config"})
    module.LanguageModelSAERunnerConfig = cfg_class  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sae_training", package)
    monkeypatch.setitem(sys.modules, "sae_training.config", module)
    formulas = []
    for i in range(layers):
        cfg = cfg_class()
        cfg.__dict__.update(
            {"d_in": D, "d_sae": F, "hook_point": f"blocks.{i}.ln2.hook_normalized"}
        )
        cfg.__dict__.update({"is_transcoder": True, "dtype": torch.float32, "device": "cuda"})
        t = {"W_enc": rand(D, F), "b_enc": rand(F), "W_dec": rand(F, D), "b_dec": rand(D)}
        t["b_dec_out"] = rand(D)
        name = f"final_sparse_autoencoder_gpt2-small_blocks.{i}.ln2.hook_normalized_{F}.pt"
        torch.save({"cfg": cfg, "state_dict": dict(t)}, folder / name)

        def formula(x, t=t):
            f = torch.relu((x - t["b_dec"]) @ t["W_enc"] + t["b_enc"])
            return f @ t["W_dec"] + t["b_dec_out"]

        formulas.append(formula)
    monkeypatch.delitem(sys.modules, "sae_training.config")
    monkeypatch.delitem(sys.modules, "sae_training")
    return formulas


def test_dunefsky_pickles_compute_their_formula_without_their_code(tmp_path, monkeypatch) -> None:
    formulas = write_dunefsky(tmp_path, monkeypatch)
    check(tmp_path, "dunefsky", formulas)
    hooks = load_any(tmp_path).hooks[1]
    assert (hooks.hook_in, hooks.hook_out) == (
        "blocks.1.ln2.hook_normalized",
        "blocks.1.hook_mlp_out",
    )
