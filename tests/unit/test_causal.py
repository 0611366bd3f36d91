"""Causal patching, path patching and the baselines on the shipped model, in float64."""

import json

import pytest
import torch

from circuits.baselines.eap import edge_attribution_patching
from circuits.causal.compute import compute_reference
from circuits.causal.naming import LOGITS, component_edges, components, reads_before
from circuits.causal.patching import (
    output_change,
    patched_metrics,
    prompt_metric,
    record_run,
)
from circuits.causal.paths import (
    QK_HOOKS,
    QKV_HOOKS,
    injection_hooks,
    path_patched_metrics,
    receiver_gradients,
    split_qkv,
)
from circuits.causal.reference import Reference, load_reference
from circuits.tasks import build_prompt_set, load_task


@pytest.fixture(scope="module")
def prompt(ioi):
    return ioi.prompts[0]


@pytest.fixture(scope="module")
def outputs(bridge, prompt):
    return (
        record_run(bridge, torch.tensor(prompt.tokens))[0],
        record_run(bridge, torch.tensor(prompt.corrupt_tokens))[0],
    )


NAMES = [c.name for c in components(2, 4)]


@torch.no_grad()
def _injected_metrics(bridge, tokens, injections, metric, *, head_inputs=QKV_HOOKS):
    """The metric of `tokens` with, in copy i, `injections[i][receiver]` added to the input of
    each receiver it names: the injection points `receiver_gradients` differentiates at."""
    receivers = {r for copy in injections for r in copy}
    shape = (len(injections), len(tokens), bridge.cfg.d_model)
    stacked = {r: torch.zeros(shape, dtype=torch.float64) for r in receivers}
    for i, copy in enumerate(injections):
        for receiver, vector in copy.items():
            stacked[receiver][i] = vector
    hooks = injection_hooks(bridge.cfg.n_layers, stacked, head_inputs)
    with split_qkv(bridge):
        logits = bridge.run_with_hooks(tokens[None].expand(len(injections), -1), fwd_hooks=hooks)
    return torch.stack([metric(row) for row in logits])


def test_patching_every_direct_reader_equals_patching_the_sender(bridge, ioi, prompt, outputs):
    # adding the sender's change to the input of every component that reads it directly is the
    # same as changing the sender's output: this checks each injection point (q/k/v of every
    # head, each MLP, the final norm) against patching the output itself
    clean, corrupt = outputs
    tokens, metric = torch.tensor(prompt.tokens), prompt_metric(ioi, prompt)
    whole = patched_metrics(bridge, tokens, corrupt, [{n: None} for n in NAMES], metric)
    readers = [
        {
            r: output_change(bridge, s, clean, corrupt)
            for r in [*NAMES, LOGITS]
            if reads_before(s, r)
        }
        for s in NAMES
    ]
    torch.testing.assert_close(
        _injected_metrics(bridge, tokens, readers, metric), whole, rtol=0, atol=1e-10
    )
    unpatched = float(metric(bridge(tokens[None])[0]).detach())
    assert (whole - unpatched).abs().max() > 0.1  # the patches change the metric


def test_last_mlp_acts_only_directly(bridge, ioi, prompt, outputs):
    clean, corrupt = outputs
    tokens, metric = torch.tensor(prompt.tokens), prompt_metric(ioi, prompt)
    total = patched_metrics(bridge, tokens, corrupt, [{"MLP1": None}], metric)
    direct = path_patched_metrics(bridge, tokens, clean, corrupt, [("MLP1", LOGITS)], metric)
    torch.testing.assert_close(direct, total, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("receiver", "head_inputs"),
    [("L1H2", QKV_HOOKS), ("L1H2", QK_HOOKS), ("L0H1", QKV_HOOKS), ("MLP0", QKV_HOOKS),
     (LOGITS, QKV_HOOKS)],
)  # fmt: skip
def test_receiver_gradients_match_finite_differences(bridge, ioi, prompt, receiver, head_inputs):
    tokens, metric = torch.tensor(prompt.tokens), prompt_metric(ioi, prompt)
    grads = receiver_gradients(bridge, tokens, [receiver], metric, head_inputs=head_inputs)
    direction = torch.randn(len(tokens), bridge.cfg.d_model, dtype=torch.float64)
    eps = 1e-5
    up, down = _injected_metrics(
        bridge,
        tokens,
        [{receiver: eps * direction}, {receiver: -eps * direction}],
        metric,
        head_inputs=head_inputs,
    )
    torch.testing.assert_close(
        (up - down) / (2 * eps), (grads[receiver] * direction).sum(), rtol=1e-5, atol=1e-8
    )


def test_a_heads_input_gradient_is_its_qk_part_plus_its_value_part(bridge, ioi, prompt):
    tokens, metric = torch.tensor(prompt.tokens), prompt_metric(ioi, prompt)
    heads = ["L0H1", "L1H2"]
    whole = receiver_gradients(bridge, tokens, heads, metric)
    qk = receiver_gradients(bridge, tokens, heads, metric, head_inputs=QK_HOOKS)
    value = receiver_gradients(bridge, tokens, heads, metric, head_inputs=QKV_HOOKS[2:])
    for head in heads:
        torch.testing.assert_close(qk[head] + value[head], whole[head], rtol=0, atol=1e-10)
        assert qk[head].abs().max() > 1e-4 and value[head].abs().max() > 1e-4


def test_eap_ig_with_one_step_is_eap(bridge, ioi):
    eap = edge_attribution_patching(bridge, ioi)
    one_step = edge_attribution_patching(bridge, ioi, steps=1)
    assert eap.edges is not None and one_step.edges is not None
    for edge, value in eap.edges.items():
        assert one_step.edges[edge] == pytest.approx(value, abs=1e-10)


def test_eap_ig_embedding_edges_add_up_to_the_gap(bridge, ioi):
    # every path from the embeddings starts at one direct reader, so with integrated gradients
    # the embedding's edges sum to m(clean) - m(corrupt): 1 in units of the gap
    scores = edge_attribution_patching(bridge, ioi, steps=48)
    assert scores.edges is not None
    total = sum(v for e, v in scores.edges.items() if e.startswith("EMBED->"))
    assert total == pytest.approx(1.0, abs=0.03)


def test_reference_effects_and_circuit(bridge, ioi):
    reference = compute_reference(bridge, ioi, model_spec="zoo:tiny", threshold=0.1, command="test")
    assert set(reference.components) == set(NAMES)
    assert set(reference.edges) == {f"{s}->{r}" for s, r in component_edges(2, 4)}
    for name, effect in reference.components.items():
        assert effect.direct == reference.edges[f"{name}->{LOGITS}"]
        assert set(effect.by_position) == set(ioi.roles)
    assert reference.components["MLP1"].total == pytest.approx(
        reference.components["MLP1"].direct, abs=1e-9
    )
    inside = {n for n, e in reference.components.items() if max(abs(e.total), abs(e.direct)) >= 0.1}
    roles = {h for heads in reference.roles.values() for h in heads}
    assert set(reference.circuit) == inside | roles
    again = Reference.from_json(json.loads(json.dumps(reference.to_json())))
    assert again == reference


def test_shipped_references_are_current(bridge):
    # the stored reference must be what its command measures today
    stored = load_reference("zoo:tiny", "greater_than")
    assert stored is not None
    assert "--count 64" in stored.command
    prompts = build_prompt_set(
        load_task("tasks/greater_than.toml"), bridge.tokenizer, n_ctx=256, count=64
    )
    fresh = compute_reference(
        bridge, prompts, model_spec="zoo:tiny", threshold=stored.threshold, command=""
    )
    assert fresh.circuit == stored.circuit
    for name, effect in stored.components.items():
        assert fresh.components[name].total == pytest.approx(effect.total, abs=1e-4)


def test_reference_command_writes_a_loadable_file(tmp_path, capsys):
    from circuits.cli.main import main

    out = tmp_path / "ref" / "gt.json"
    code = main(["reference", "tasks/greater_than.toml", "--count", "3", "--out", str(out)])
    assert code == 0
    reference = Reference.from_json(json.loads(out.read_text()))
    assert reference.n_prompts == 3 and reference.model == "zoo:tiny"
    assert reference.command.startswith("circuits reference tasks/greater_than.toml")
    assert f"--out {out}" in reference.command
    assert "reference circuit" in capsys.readouterr().out


def test_reference_into_a_hub_model_needs_an_output_file(capsys):
    from circuits.cli.main import main

    assert main(["reference", "tasks/ioi.toml", "--model", "gpt2", "--into-model"]) == 1
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["tiny", "small", "medium"])
@pytest.mark.parametrize("task", ["ioi", "greater_than"])
def test_every_shipped_model_has_its_references(model, task):
    from circuits.zoo.registry import is_trained

    if not is_trained(model):
        pytest.skip(f"zoo model {model} is not trained here")
    reference = load_reference(f"zoo:{model}", task)
    assert reference is not None, f"run `circuits reference tasks/{task}.toml --model zoo:{model}`"
    assert reference.task == task and reference.n_prompts == 64
    assert reference.circuit and reference.circuit_edges
    assert reference.metric_clean > reference.metric_corrupt
