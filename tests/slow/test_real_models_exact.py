"""The engine's exactness contract on real weights (SmolLM2-135M, added with `circuits models
add smollm2-135m`), in float64: with attention patterns and norm scales frozen and every MLP
replaced by a transcoder plus its error, the frozen replay reproduces the model, and sampled
edges of the attribution graph of an IOI prompt equal the effect of removing their source.

The transcoders are random (the contract does not depend on what they learned); the checks are
those of tests/oracle/test_attribution_exact.py, whose helpers they import. About a minute on
one thread.
"""

from pathlib import Path

import pytest
import torch

from circuits.attribution.attribute import (
    AttributionConfig,
    attribute,
)
from circuits.attribution.replacement import ReplacementModel
from circuits.attribution.targets import logit_difference_target
from circuits.hub.registry import is_added
from tests.oracle.architectures import assert_edges_equal_removals
from transcoders.config import TranscoderConfig
from transcoders.transcoder import Transcoder
from transcoders.transcoder_set import TranscoderSet

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
TASK = Path(__file__).resolve().parents[2] / "tasks" / "ioi_real.toml"
RTOL = 1e-8
"""Relative to the largest value read: float64 through 30 real layers."""


@pytest.fixture(scope="module")
def model_and_prompt():
    if not is_added(MODEL):
        pytest.skip(f"{MODEL} is not added here; run `circuits models add {MODEL}` (93 MB)")
    from circuits.models import load_model
    from circuits.tasks.load import load_task
    from circuits.tasks.prompts import build_prompt_set

    torch.set_num_threads(1)
    bridge = load_model(f"zoo:{MODEL}", dtype=torch.float64)
    prompts = build_prompt_set(load_task(TASK), bridge.tokenizer, n_ctx=bridge.cfg.n_ctx, count=1)
    model = ReplacementModel(bridge, random_transcoders(bridge.cfg.n_layers, bridge.cfg.d_model))
    return bridge, model, prompts.prompts[0]


def random_transcoders(n_layers: int, d_model: int, *, d_transcoder: int = 32) -> TranscoderSet:
    """Random float64 TopK transcoders (k 2) for every layer, as in tests/oracle."""
    layers = []
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for _ in range(n_layers):
            config = TranscoderConfig(d_model=d_model, d_transcoder=d_transcoder, kind="topk", k=2)
            transcoder = Transcoder(config).double()
            with torch.no_grad():
                transcoder.b_dec.normal_(0.0, 0.1)
            layers.append(transcoder)
    return TranscoderSet(layers, model=MODEL)


def test_the_frozen_replay_of_real_weights_reproduces_the_model(model_and_prompt):
    bridge, model, prompt = model_and_prompt
    tokens = torch.tensor(prompt.tokens)
    trace = model.trace(tokens)
    with torch.no_grad():
        native = bridge(tokens[None])[0]
        replay = model.replay(trace)
    torch.testing.assert_close(replay.logits[0], trace.logits, rtol=1e-12, atol=1e-10)
    # the frozen pass differs from the native one only by the adapter's norm precision (the
    # native RMSNorm rounds through float32): measured 1.4e-5 on logits of magnitude ~30
    scale = float(native.abs().max())
    torch.testing.assert_close(trace.logits, native, rtol=0, atol=1e-6 * scale)


def test_edges_on_real_weights_equal_the_effect_of_removing_their_source(model_and_prompt):
    bridge, model, prompt = model_and_prompt
    tokens = torch.tensor(prompt.tokens)
    trace = model.trace(tokens)
    target = logit_difference_target(
        prompt.answers[0], prompt.wrong[0], bridge.cfg.d_vocab, name="IO - S", pos=-1
    )
    config = AttributionConfig(batch_size=64, max_edges_per_row=None, progress=False)
    graph = attribute(model, tokens, [target], config)
    index = graph.index
    assert index.n_features > 100
    total = graph.incoming() + graph.row_constants
    scale = float(graph.row_values.abs().max())
    torch.testing.assert_close(total, graph.row_values, rtol=RTOL, atol=RTOL * scale)

    errors = range(index.error_start, index.error_start + index.n_layers * index.n_pos, 7)
    features = range(index.feature_start, index.target_start, 11)
    columns = [*range(index.n_pos), *errors, *features]
    assert_edges_equal_removals(model, trace, graph, [target], columns, rtol=RTOL)
