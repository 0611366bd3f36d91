"""The compiled-program benchmark end to end: each program ships a transcoder set, and on the
previous-token program every method, ours included, finds exactly the one head that does it."""

import pytest
import torch

from benchmarks.compiled.verify import model_dirs
from transcoders.transcoder_set import default_transcoders_dir, load_transcoder_set

DIRS = model_dirs()


@pytest.fixture
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("model_dir", DIRS, ids=lambda d: d.name)
def test_every_compiled_program_ships_a_transcoder_set(model_dir):
    from circuits.models import load_model

    bridge = load_model(str(model_dir))
    tset = load_transcoder_set(default_transcoders_dir(str(model_dir)), bridge=bridge)
    assert len(tset) == bridge.cfg.n_layers


@pytest.mark.usefixtures("single_thread")
def test_prev_token_circuit_is_its_one_head(tmp_path):
    from benchmarks.compiled_ground_truth import evaluate_program, render

    row = evaluate_program("prev_token", 4, tmp_path)
    assert row["truth"]["nodes"] == ["L0H0"]
    assert abs(row["truth"]["faithfulness"] - 1.0) < 1e-4
    ours = row["methods"][0]
    assert ours["method"] == "transcoder circuit"
    assert ours["scores"]["MLP0"] == 0  # the empty MLP: no feature is ever active
    for method in row["methods"]:
        assert method["node_auc"] == 1.0, method["method"]
        assert method["recall"] == 1.0, method["method"]
    assert (tmp_path / "compiled_circuits" / "prev_token.json").exists()
    report = {"commit": "x", "machine": {"cpu": "cpu", "torch_threads": 1}, "programs": [row]}
    assert "| prev_token | transcoder circuit | 1.000 |" in render(report)


def test_transcoders_eval_scores_a_compiled_model_without_tasks(capsys):
    import json

    from transcoders.cli.main import main

    model_dir = next(d for d in DIRS if d.name == "frac_prevs")
    args = ["eval", "--model", str(model_dir), "--json", "--n-tokens", "2048", "--threads", "1"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert "tasks" not in report
    fvu = [layer["fvu"] for layer in report["isolated"]]
    assert fvu[0] < 1e-4  # MLP0 computes is_x; MLP1 is empty (FVU undefined)
    assert report["isolated"][1]["l0"] == 0
