"""Zoo model cards record the model's transcoder set."""

import json
import shutil

from circuits.models import resolve_model_dir
from circuits.zoo.card import read_card, record_transcoders


def test_transcoder_figures_are_recorded_in_both_views(tmp_path) -> None:
    shipped = resolve_model_dir("zoo:tiny")
    assert shipped is not None
    shutil.copy(shipped / "card.json", tmp_path / "card.json")
    before = read_card(tmp_path)
    summary = {
        "path": "transcoders",
        "kind": "topk",
        "d_transcoder": 2048,
        "training": {"tokens": 4_000_000, "wall_time_s": 600.0, "tokens_per_s": 6000},
        "n_tokens": 32768,
        "ce_original": 1.87,
        "all_layers": {"ce_spliced": 1.97, "ce_zero": 8.85, "kl": 0.086, "loss_recovered": 0.985},
        "layers": [
            {"layer": 0, "fvu": 0.04, "l0": 30.3, "dead_fraction": 0.1, "dense_fraction": 0.04}
        ],
        "tasks": {"ioi.logit_diff": {"original": 1.6, "spliced": 2.7, "ratio": 1.66}},
    }
    record_transcoders(tmp_path, summary)
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["transcoders"] == summary
    others = {k: v for k, v in before.items() if k != "transcoders"}
    assert {k: v for k, v in card.items() if k != "transcoders"} == others
    markdown = (tmp_path / "card.md").read_text()
    assert "## Transcoders" in markdown and "loss recovered 0.985" in markdown
    assert "| `ioi.logit_diff` | 1.600 | 2.700 | 1.660 |" in markdown
