"""Transformers compiled from RASP programs (benchmarks/compiled/): the exported GPT-2
directories boot through the bridge and give tracr's outputs on every input."""

import json

import numpy as np
import pytest
import torch

from benchmarks.compiled.verify import model_dirs, verify_model
from circuits.components.naming import component_edges, parse_component
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
