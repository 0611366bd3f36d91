"""Transformers compiled from RASP programs (benchmarks/compiled/): the exported GPT-2
directories boot through the bridge and give tracr's outputs on every input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.compiled.verify import model_dirs, verify_model
from circuits.causal.naming import component_edges, parse_component
from circuits.models import load_model
from transcoders.corpus import input_domain, load_corpus_tokens, window_length

DIRS = model_dirs()


def test_there_are_at_least_three_programs():
    assert len(DIRS) >= 3


@pytest.mark.parametrize("model_dir", DIRS, ids=lambda d: d.name)
def test_exported_model_reproduces_tracr_on_every_input(model_dir):
    result = verify_model(model_dir, torch.float64)
    assert result.n_inputs == sum(3**n for n in range(1, 9))
    assert result.max_abs_error < 1e-4
    assert result.decoded_mismatches == 0
    assert result.rasp_mismatches == 0


@pytest.mark.parametrize("model_dir", DIRS, ids=lambda d: d.name)
def test_ground_truth_names_real_components(model_dir):
    truth = json.loads((model_dir / "ground_truth.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    possible = {f"{s}->{r}" for s, r in component_edges(config["n_layer"], config["n_head"])}
    assert truth["edges"] and set(truth["edges"]) <= possible
    for name in truth["nodes"]:
        component = parse_component(name)
        assert component.layer < config["n_layer"]


def test_compiled_models_train_transcoders_on_random_inputs():
    model_dir = next(d for d in DIRS if d.name == "prev_token")
    spec = str(model_dir)
    domain = input_domain(spec)
    assert domain is not None
    bridge = load_model(spec)
    width = window_length(spec, bridge)
    assert width == domain["max_seq_len"] + 1
    tokens = load_corpus_tokens(spec, bridge)
    rows = tokens.train.reshape(-1, width)
    assert (rows[:, 0] == tokens.eot).all()
    allowed = {bridge.tokenizer.convert_tokens_to_ids(w) for w in domain["vocab"]}
    assert set(np.unique(rows[:, 1:]).tolist()) == allowed


@pytest.mark.parametrize("kind", ["topk", "relu", "batchtopk", "jumprelu"])
def test_a_constant_mlp_gets_a_transcoder_with_no_active_features(kind):
    """prev_token's MLP is empty (tracr zero-fills it): its output never varies. Its transcoder
    must be that constant with no feature active, not features that cancel one another, and the
    scales and loss normaliser must not become 0/0."""
    from transcoders.config import SPARSITY_DEFAULTS, HarvestConfig, TrainConfig, TranscoderConfig
    from transcoders.harvest import activation_batches
    from transcoders.train import fit_to_batch, fold_scales, init_state, train_step

    spec = str(next(d for d in DIRS if d.name == "prev_token"))
    bridge = load_model(spec)
    tokens = load_corpus_tokens(spec, bridge)
    harvest = HarvestConfig(seq_len=9, windows_per_forward=8, buffer_tokens=1152)
    config = TrainConfig(n_tokens=6 * 144, batch_size=144, lr=1e-2, harvest=harvest)
    sparsity = {
        "topk": "k",
        "batchtopk": "k",
        "relu": "l1_coefficient",
        "jumprelu": "l0_coefficient",
    }
    name = sparsity[kind]
    tc = TranscoderConfig(
        kind=kind, d_model=bridge.cfg.d_model, d_transcoder=32, **{name: SPARSITY_DEFAULTS[name]}
    )
    state = init_state(bridge, tc, model=spec, seed=0)
    batches = activation_batches(bridge, tokens.train, harvest, batch_size=144, eot=tokens.eot)
    first = next(batches)
    assert first.mlp_out.abs().max() == 0
    fit_to_batch(state, first)
    for _ in range(config.n_steps):
        stats = train_step(state, next(batches), config)
    assert stats[0]["fvu"] == 0 and stats[0]["l0"] == 0
    transcoder = fold_scales(state)[0]
    for key, value in transcoder.tensors().items():
        assert torch.isfinite(value).all(), key
    x = next(batches).mlp_in[:, 0]
    assert transcoder(x).abs().max() == 0
    assert transcoder.encode(x)[1].count_nonzero() == 0


@pytest.mark.parametrize("model_dir", DIRS, ids=lambda d: d.name)
def test_shipped_task_file_is_what_the_generator_writes(model_dir):
    from benchmarks.compiled.task_files import task_file, task_path

    assert task_path(model_dir).read_text() == task_file(model_dir)


@pytest.mark.parametrize("model_dir", DIRS, ids=lambda d: d.name)
def test_task_answers_are_what_the_compiled_model_outputs(model_dir):
    """Clean prompts' answers are the model's outputs, corrupted prompts' the wrong tokens (for
    a numerical output: the corruption lowers the value the answer's logit holds)."""
    from benchmarks.compiled.task_files import task_path
    from circuits.tasks import build_prompt_set, load_task

    spec = load_task(task_path(model_dir))
    assert spec.default_model is not None
    assert Path(spec.default_model).resolve() == model_dir.resolve()  # relative to the file
    bridge = load_model(str(model_dir), dtype=torch.float64)
    prompts = build_prompt_set(spec, bridge.tokenizer, n_ctx=bridge.cfg.n_ctx).prompts
    assert len(prompts) == 32
    truth = json.loads((model_dir / "ground_truth.json").read_text())
    outputs = bridge.tokenizer.convert_tokens_to_ids(truth["output_tokens"])
    with torch.no_grad():
        clean = bridge(torch.tensor([p.tokens for p in prompts]))[:, -1, outputs]
        corrupt = bridge(torch.tensor([p.corrupt_tokens for p in prompts]))[:, -1, outputs]
    for p, c, k in zip(prompts, clean, corrupt, strict=True):
        if truth["output_kind"] == "numerical":
            assert p.answers == outputs and not p.wrong
            assert c[0] > k[0] + 0.1
        else:
            assert [outputs[int(c.argmax())]] == p.answers
            assert [outputs[int(k.argmax())]] == p.wrong


def test_positional_attention_has_no_qk_paths():
    """prev_token's one head attends by position alone: changing a token moves no attention,
    so every QK path is zero, while the path through the head's values carries the answer."""
    from benchmarks.compiled.task_files import task_path
    from circuits.baselines.eap import edge_attribution_patching
    from circuits.causal.qk_paths import qk_path_scores
    from circuits.tasks import build_prompt_set, load_task

    model_dir = next(d for d in DIRS if d.name == "prev_token")
    bridge = load_model(str(model_dir), dtype=torch.float64)
    spec = load_task(task_path(model_dir))
    prompt_set = build_prompt_set(spec, bridge.tokenizer, n_ctx=bridge.cfg.n_ctx, count=8)
    qk = qk_path_scores(bridge, prompt_set)
    assert qk and max(abs(v) for v in qk.values()) < 1e-6
    eap = edge_attribution_patching(bridge, prompt_set)
    assert eap.edges is not None and eap.edges["EMBED->L0H0"] > 0.5
