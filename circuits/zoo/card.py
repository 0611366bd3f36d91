"""Model cards: `card.json` for machines and `card.md` for people, written side by side."""

import json
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def write_card(model_dir: Path, card: dict[str, Any]) -> None:
    """Write both views of `card`; the JSON file is written last, so it marks a complete model."""
    card = {"schema_version": SCHEMA_VERSION, "kind": "zoo_model_card", **card}
    (model_dir / "card.md").write_text(render_markdown(card))
    tmp = model_dir / "card.json.tmp"
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    tmp.replace(model_dir / "card.json")


def read_card(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "card.json").read_text())


def render_markdown(card: dict[str, Any]) -> str:
    config = card["config"]
    train = config["train"]
    lines = [
        f"# Zoo model `{card['name']}`",
        "",
        f"GPT-2 architecture, {config['n_layers']} layers, d_model {config['d_model']}, "
        f"{config['n_heads']} heads, context {config['n_ctx']}, {card['n_params']:,} parameters.",
        "",
        "## Training",
        "",
        f"- {train['n_steps']:,} steps of {train['batch_size']} x {train['seq_len']} tokens "
        f"({card['tokens_seen']:,} tokens), peak lr {train['lr']}, seed {train['seed']}, "
        f"bf16 autocast {train['bf16']}",
        f"- wall time {card['wall_time_s'] / 60:.1f} min on this machine's CPU",
        f"- final training loss (EMA) {card['train_loss']:.3f}",
        f"- corpus: {card['corpus']['n_tokens']['train']:,} training tokens, "
        f"sha256 {card['corpus']['sha256'][:16]}…, shares {card['corpus']['config']['shares']}",
    ]
    if "transcoders" in card:
        lines += ["", *render_transcoders(card["transcoders"])]
    if "scores" in card:
        lines += ["", "## Task scores (held-out prompts)", "", "| score | value |", "|---|---|"]
        lines += [f"| `{k}` | {v:.3f} |" for k, v in card["scores"].items()]
    return "\n".join(lines) + "\n"


def record_transcoders(model_dir: Path, summary: dict[str, Any]) -> None:
    """Put the evaluation summary of the model's transcoder set into its card."""
    card = read_card(model_dir)
    card["transcoders"] = summary
    write_card(model_dir, {k: v for k, v in card.items() if k not in ("schema_version", "kind")})


def render_transcoders(summary: dict[str, Any]) -> list[str]:
    every = summary["all_layers"]
    training = summary.get("training", {})
    n_isolated = summary.get("n_isolated_tokens", summary["n_tokens"])
    lines = [
        "## Transcoders",
        "",
        f"Set `{summary['path']}`: {summary['kind']}, d_transcoder {summary['d_transcoder']}, "
        f"trained on {training.get('tokens', 0):,} tokens in "
        f"{training.get('wall_time_s', 0) / 60:.1f} min. Evaluated on {summary['n_tokens']:,} "
        f"held-out tokens (per-layer figures: {n_isolated:,}):",
        "",
        f"- all MLPs replaced: loss recovered {every['loss_recovered']:.3f} (CE "
        f"{summary['ce_original']:.3f} -> {every['ce_spliced']:.3f}, zero-ablated "
        f"{every['ce_zero']:.3f}), KL {every['kl']:.4f}",
        "",
        "| layer | FVU | L0 | dead | dense |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {x['layer']} | {x['fvu']:.4f} | {x['l0']:.1f} | {x['dead_fraction']:.3f} | "
        f"{x['dense_fraction']:.3f} |"
        for x in summary["layers"]
    ]
    if summary.get("tasks"):
        lines += [
            "",
            "| task score | original | spliced | ratio | ratio, one layer spliced |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| `{k}` | {v['original']:.3f} | {v['spliced']:.3f} | {v['ratio']:.3f} | "
            f"{' / '.join(f'{r:.2f}' for r in v.get('ratio_by_layer', [])) or '-'} |"
            for k, v in summary["tasks"].items()
        ]
    return lines
