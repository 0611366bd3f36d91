"""Transcoder set files that are corrupt, truncated or from another config: one line naming the
file, the tensor and the fix."""

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from tests.unit.test_transcoder_set import trained_looking_set
from transcoders.errors import TranscoderError
from transcoders.transcoder_set import CONFIG, WEIGHTS, load_transcoder_set, save_transcoder_set


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_transcoder_set(trained_looking_set(), tmp_path / "set")


def refusal(path: Path) -> str:
    with pytest.raises(TranscoderError) as info:
        load_transcoder_set(path)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_non_finite_weights_are_refused_naming_the_file_and_tensor(tmp_path, bad, dtype) -> None:
    path = save_transcoder_set(trained_looking_set(), tmp_path / "set", dtype=dtype)
    tensors = load_file(str(path / WEIGHTS))
    tensors["layers.1.b_enc"][[2, 5]] = bad
    save_file(tensors, str(path / WEIGHTS))
    assert refusal(path) == (
        f"{path / WEIGHTS}: tensor layers.1.b_enc holds NaN or inf (2 of 64 values); the set is "
        "corrupt: train it again"
    )


def test_config_of_another_width_names_file_tensor_and_both_shapes(saved) -> None:
    config = json.loads((saved / CONFIG).read_text())
    config["transcoders"][1]["d_transcoder"] = 128
    (saved / CONFIG).write_text(json.dumps(config))
    message = refusal(saved)
    assert message.startswith(
        f"{saved / WEIGHTS}: tensor layers.1.W_dec has shape (64, 32) but {saved / CONFIG} "
        "implies (128, 32) (d_model 32, d_transcoder 128)"
    )


def test_missing_tensor_names_the_file_and_layer(saved) -> None:
    tensors = load_file(str(saved / WEIGHTS))
    del tensors["layers.1.W_skip"]
    save_file(tensors, str(saved / WEIGHTS))
    message = refusal(saved)
    assert message.startswith(f"{saved / WEIGHTS}: layer 1: transcoder weights do not match")
    assert "missing ['W_skip']" in message


@pytest.mark.parametrize("keep", [0, 7, 100, -10])
def test_truncated_weights_are_one_line(saved, keep) -> None:
    intact = (saved / WEIGHTS).read_bytes()
    (saved / WEIGHTS).write_bytes(intact[:keep])
    message = refusal(saved)
    assert message.startswith(f"cannot read {saved / WEIGHTS}: ")
    assert message.endswith("the file is missing or truncated: save or train the set again")


def test_missing_weights_file_is_one_line(saved) -> None:
    (saved / WEIGHTS).unlink()
    assert refusal(saved).startswith(f"cannot read {saved / WEIGHTS}: ")


@pytest.mark.parametrize(
    "text", [b"\xff\xfe not utf-8", b'{"kind": "transcoder_set", "schema_ver', b""]
)
def test_unparseable_config_is_one_line(saved, text) -> None:
    (saved / CONFIG).write_bytes(text)
    assert refusal(saved).startswith(f"{saved / CONFIG} is not valid JSON: ")
