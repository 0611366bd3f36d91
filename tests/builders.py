"""Builders shared by the tests: the tiny random GPT-2 of the transcoder tests with its sizes,
configs and an exact replacement (the `tiny_model_dir` / `tiny_bridge` fixtures in
tests/conftest.py build on them), and hand-made circuits and run directories."""

import functools
import json
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from circuits.attribution.nodes import NodeKind
from circuits.corpus.build import CorpusConfig, corpus_dir, load_corpus_tokenizer
from circuits.models import load_model
from circuits.run.circuit import Circuit, CircuitEdge, CircuitNode
from circuits.run.components import component_view
from transcoders.config import HarvestConfig, TranscoderConfig
from transcoders.transcoder import Transcoder
from transcoders.transcoder_set import TranscoderSet

D_MODEL = 32
N_CTX = 64
SPARSITY = {
    "topk": {"k": 4},
    "batchtopk": {"k": 4},
    "relu": {"l1_coefficient": 1e-3},
    "jumprelu": {"l0_coefficient": 1e-3},
}


def tiny_gpt2_dir(cache: Path, config: CorpusConfig, out: Path) -> Path:
    """A 2-layer, d_model 32 GPT-2 (ReLU MLPs) with random weights and the corpus tokenizer,
    saved at `out` once per session."""
    if (out / "config.json").exists():  # built by another module's fixture in this session
        return out
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCUITS_CACHE", str(cache))
        tokenizer = load_corpus_tokenizer(corpus_dir(config))
    eot = tokenizer.bos_token_id
    gpt2 = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=N_CTX,
        n_embd=D_MODEL,
        n_layer=2,
        n_head=2,
        activation_function="relu",  # so that a relu transcoder can copy an MLP exactly
        bos_token_id=eot,
        eos_token_id=eot,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT2LMHeadModel(gpt2)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@functools.cache
def tiny_bridge_of(model_dir: Path):
    return load_model(str(model_dir))


def tiny_harvest(**overrides) -> HarvestConfig:
    """Windows of 32 tokens, 8 per forward, a buffer of 1024 rows."""
    values = {"seq_len": 32, "windows_per_forward": 8, "buffer_tokens": 1024, **overrides}
    return HarvestConfig(**values)


def tiny_transcoder(kind: str = "topk", **overrides) -> TranscoderConfig:
    """A transcoder of `kind` with 64 features for the tiny model."""
    values = {"d_model": D_MODEL, "d_transcoder": 64, **SPARSITY[kind], **overrides}
    return TranscoderConfig(kind=kind, **values)


def exact_mlp_transcoders(bridge) -> TranscoderSet:
    """Relu transcoders equal to the tiny model's MLPs (d_transcoder = 4 d_model): a replacement
    without error, for checking the splicing and the metrics."""
    transcoders = []
    for block in bridge.original_model.transformer.h:
        config = TranscoderConfig(
            kind="relu",
            d_model=D_MODEL,
            d_transcoder=4 * D_MODEL,
            l1_coefficient=0.0,
            normalize_decoder=False,
        )
        transcoder = Transcoder(config)
        with torch.no_grad():  # HF Conv1D weights are [d_in, d_out]: x @ weight + bias
            transcoder.W_enc.copy_(block.mlp.c_fc.weight)
            transcoder.b_enc.copy_(block.mlp.c_fc.bias)
            transcoder.W_dec.copy_(block.mlp.c_proj.weight)
            transcoder.b_dec.copy_(block.mlp.c_proj.bias)
        transcoders.append(transcoder)
    return TranscoderSet(transcoders, model="tiny-test-model").eval()


ROLE_POSITIONS = {"IO": 1, "S1": 3, "S1+1": 4, "S2": 6, "END": 8}
EXAMPLE = ["When", " Mary", " and", " John", " went", " to", " John", " gave", " a"]


def example_ioi_circuit() -> Circuit:
    """A hand-made 8-node IOI-shaped circuit over `EXAMPLE` (roles at `ROLE_POSITIONS`)."""
    nodes = [
        CircuitNode(kind=NodeKind.TOKEN, layer=-1, role="IO", label=" Mary"),
        CircuitNode(kind=NodeKind.TOKEN, layer=-1, role="S2", label=" John"),
        CircuitNode(kind=NodeKind.FEATURE, layer=0, role="S2", feature=17, label="repeated name"),
        CircuitNode(kind=NodeKind.ERROR, layer=0, role="S2"),
        CircuitNode(kind=NodeKind.FEATURE, layer=0, role="IO", feature=5, label="female name"),
        CircuitNode(
            kind=NodeKind.FEATURE, layer=1, role="END", feature=17, label="say the other name"
        ),
        CircuitNode(
            kind=NodeKind.FEATURE, layer=1, role="END", feature=230, label="inhibit subject"
        ),
        CircuitNode(kind=NodeKind.TARGET, layer=2, role="END", label="logit_diff", activation=3.1),
    ]
    edges = [
        CircuitEdge(source=0, target=4, weight=1.2),
        CircuitEdge(source=1, target=2, weight=0.9),
        CircuitEdge(source=2, target=6, weight=0.7, heads=[("L1H3", 0.82), ("L1H0", 0.11)]),
        CircuitEdge(source=3, target=6, weight=0.1),
        CircuitEdge(source=4, target=5, weight=1.5, heads=[("L1H1", 0.64)]),
        CircuitEdge(source=5, target=7, weight=2.0),
        CircuitEdge(source=6, target=7, weight=-0.8),
    ]
    return Circuit(
        task="ioi",
        model="zoo:tiny",
        metric="logit_diff",
        n_layers=2,
        roles=["IO", "S1", "S1+1", "S2", "END"],
        nodes=nodes,
        edges=edges,
        n_prompts=16,
        example_tokens=EXAMPLE,
    )


SMALL_CURVE = [[0, 0.0], [10, 0.5], [20, 1.0]]
BIG_CURVE = [[0, 0.0], [4, 0.6], [8, 0.9], [16, 0.95]]


def sized_circuit(task: str, model: str, n_layers: int) -> Circuit:
    """A small hand-made circuit of a model with `n_layers` layers."""
    last = n_layers - 1
    nodes = [
        CircuitNode(kind=NodeKind.TOKEN, layer=-1, role="IO", label=" Mary"),
        CircuitNode(
            kind=NodeKind.FEATURE, layer=0, role="S2", feature=3, influence=0.5, effect=1.5
        ),
        CircuitNode(
            kind=NodeKind.FEATURE, layer=last, role="END", feature=7, influence=0.3, effect=0.9
        ),
        CircuitNode(kind=NodeKind.ERROR, layer=last, role="END", influence=0.2, effect=0.6),
        CircuitNode(kind=NodeKind.TARGET, layer=n_layers, role="END", label="logit_diff"),
    ]
    edges = [
        CircuitEdge(
            source=0,
            target=1,
            weight=1.0,
            heads=[("L0H1", 0.8)],
            effect=0.8,
            head_effects={"L0H1": 0.64},
        ),
        CircuitEdge(
            source=1,
            target=2,
            weight=0.5,
            heads=[(f"L{last}H0", 0.6)],
            effect=0.4,
            head_effects={f"L{last}H0": 0.24},
        ),
        CircuitEdge(source=2, target=4, weight=2.0, effect=1.2),
        CircuitEdge(source=3, target=4, weight=1.0, effect=0.6),
    ]
    return Circuit(
        task=task,
        model=model,
        metric="logit_diff",
        n_layers=n_layers,
        roles=["IO", "S2", "END"],
        nodes=nodes,
        edges=edges,
        n_prompts=4,
        gap=3.0,
    )


def make_run(
    path: Path,
    *,
    model: str,
    n_layers: int,
    task: str = "ioi",
    curve: list | None = None,
    components: bool = True,
) -> Path:
    """A run directory as `circuits run` writes it (curve None: an older run without one)."""
    path.mkdir(parents=True)
    circuit = sized_circuit(task, model, n_layers)
    summary = {
        "task": task,
        "model": model,
        "metric": "logit_diff",
        "engine": "full",
        "n_prompts": 4,
        "mean_active_features": 200.0,
        "circuit_features": 2,
        "circuit_feature_share": 0.01,
        "circuit_nodes": len(circuit.nodes),
        "circuit_edges": len(circuit.edges),
        "replacement_score": 0.9,
        "completeness_score": 0.95,
        "validation.faithfulness": 0.9 if n_layers == 2 else 0.7,
        "validation.completeness": 0.1,
        "validation.model": 3.0,
        "validation.nothing": 0.0,
        "seconds": 1.0,
    }
    if curve is not None:
        summary["faithfulness_curve"] = curve
    (path / "summary.json").write_text(json.dumps(summary))
    (path / "circuit.json").write_text(json.dumps(circuit.to_json()))
    if components:
        view = component_view(circuit, n_heads=4)
        (path / "components.json").write_text(json.dumps(view.to_json()))
    (path / "graph.svg").write_text(f"<svg><!-- {model} --></svg>")
    return path
