"""Local model directories: weights that do not fill their config, or hold NaN or inf, are refused
in one line naming the directory or file and the tensors, instead of loaded at random."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from circuits.cli.main import main
from circuits.errors import ModelSpecError
from circuits.models import load_hf_model, load_model, resolve_model_dir, weights_file
from transcoders.errors import TranscoderError
from transcoders.transcoder_set import default_transcoders_dir

WEIGHTS = "model.safetensors"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A copy of the shipped model's files (config, tokenizer, weights), to break."""
    shipped = resolve_model_dir("zoo:tiny")
    assert shipped is not None
    out = tmp_path / "model"
    out.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", WEIGHTS):
        shutil.copy(shipped / name, out / name)
    return out


def edit_config(model_dir: Path, **changes) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, **changes}))


def edit_weights(model_dir: Path, edit) -> None:
    tensors = load_file(str(model_dir / WEIGHTS))
    edit(tensors)
    save_file(tensors, str(model_dir / WEIGHTS), metadata={"format": "pt"})


def refusal(model_dir: Path) -> str:
    with pytest.raises(ModelSpecError) as info:
        load_model(str(model_dir))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_tied_embeddings_are_not_missing_weights(model_dir) -> None:
    hf_model = load_hf_model(model_dir, dtype=torch.float64)
    assert hf_model.lm_head.weight is hf_model.transformer.wte.weight
    assert hf_model.dtype == torch.float64 and not hf_model.training


def test_a_copy_of_the_shipped_model_loads_like_it(model_dir, bridge) -> None:
    copy = load_model(str(model_dir), dtype=torch.float64)
    tokens = torch.tensor([[0, 5, 7, 9]])
    torch.testing.assert_close(copy(tokens), bridge(tokens), rtol=0, atol=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_file_and_tensor(model_dir, bad) -> None:
    edit_weights(model_dir, lambda t: t["transformer.h.1.mlp.c_proj.weight"].__setitem__(3, bad))
    message = refusal(model_dir)
    assert message.startswith(f"{model_dir / WEIGHTS}: tensor transformer.h.1.mlp.c_proj.weight")
    assert "NaN or inf (128 of 65536 values)" in message


def test_config_with_more_layers_than_the_weights_is_refused(model_dir) -> None:
    edit_config(model_dir, n_layer=3)
    message = refusal(model_dir)
    assert message.startswith(f"{model_dir}: the weights do not match config.json")
    assert "missing from the weights: transformer.h.2.attn.c_attn.bias, " in message
    assert "and 9 more" in message


def test_tensors_the_config_has_no_place_for_are_refused(model_dir) -> None:
    edit_weights(model_dir, lambda t: t.update({"transformer.h.7.ln_1.weight": torch.ones(128)}))
    message = refusal(model_dir)
    assert "in the weights but not in the config: transformer.h.7.ln_1.weight)" in message


def test_shapes_that_do_not_match_the_config_are_refused_with_both(model_dir) -> None:
    edit_config(model_dir, n_inner=256)
    message = refusal(model_dir)
    assert (
        "of another shape: transformer.h.0.mlp.c_fc.bias: (512,) in the weights, (256,) by the "
        "config, " in message
    )


def test_truncated_weights_are_one_line(model_dir) -> None:
    intact = (model_dir / WEIGHTS).read_bytes()
    (model_dir / WEIGHTS).write_bytes(intact[: len(intact) // 2])
    assert refusal(model_dir).startswith(f"cannot load the model in {model_dir}: ")


def test_missing_weights_are_one_line(model_dir) -> None:
    (model_dir / WEIGHTS).unlink()
    assert "no file named model.safetensors" in refusal(model_dir)


def test_the_file_of_a_sharded_tensor_is_its_shard(tmp_path) -> None:
    shard = "model-00002-of-00002.safetensors"
    index = {"metadata": {}, "weight_map": {"transformer.wte.weight": shard}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert weights_file(tmp_path, "transformer.wte.weight") == tmp_path / shard
    assert weights_file(tmp_path, "other") == tmp_path / "model.safetensors.index.json"


def test_unknown_hub_name_names_the_flag_of_the_command(tmp_path, capsys) -> None:
    with pytest.raises(TranscoderError) as reading:
        default_transcoders_dir("no-such-org/no-such-model")
    assert "not a zoo model" in str(reading.value) and "pass --transcoders DIR" in str(
        reading.value
    )
    assert "--out" not in str(reading.value)
    with pytest.raises(TranscoderError, match="pass --out DIR to say where to write the set"):
        default_transcoders_dir("no-such-org/no-such-model", must_exist=False)
    args = ["run", "tasks/ioi.toml", "--model", "no-such-model", "--out", str(tmp_path / "o")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("circuits: error: 'no-such-model' is not a zoo model")
    assert err.count("\n") == 1 and "--out DIR" not in err
