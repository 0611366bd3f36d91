"""`transcoders eval`: how well a transcoder set imitates its model's MLPs, as a table or JSON."""

import argparse
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("transcoders.eval")

EPILOG = """examples:
  transcoders eval --model zoo:tiny                   the set registered for the shipped model
  transcoders eval --model zoo:tiny --transcoders /tmp/tc --json
  transcoders eval --model zoo:tiny --n-tokens 8192 --n-prompts 50     a quicker look

Metrics: FVU = squared error / variance of the MLP output; L0 = active features per token;
dead = never active on the evaluation tokens; dense = active on more than 10% of them. The
per-layer stats of each transcoder alone use --n-isolated-tokens (a feature firing once in 100k
tokens is alive, not dead); the spliced stats and the losses use --n-tokens.
"Isolated" reads the original model's MLP inputs, "spliced" runs with every MLP replaced.
Loss recovered = (CE_zero - CE_spliced) / (CE_zero - CE_orig) on held-out text (corpus val).
A compiled model (benchmarks/compiled/) is scored on random inputs of its program, without tasks.
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval",
        help="evaluate a transcoder set on held-out text and task prompts",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="zoo:default", help="model spec (default: %(default)s)")
    parser.add_argument(
        "--transcoders",
        type=Path,
        help="set directory in any format of docs/formats.md, or a hub name (default: "
        "<model dir>/transcoders)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    parser.add_argument(
        "--record",
        action="store_true",
        help="write the figures into the zoo model's card (card.json and card.md)",
    )
    parser.add_argument(
        "--n-tokens", type=int, default=32_768, help="held-out tokens (default: %(default)s)"
    )
    parser.add_argument(
        "--n-isolated-tokens",
        type=int,
        default=262_144,
        help="held-out tokens for each transcoder's own FVU, L0, dead and dense figures "
        "(default: %(default)s, or every held-out window if there are fewer)",
    )
    parser.add_argument(
        "--n-prompts", type=int, default=200, help="prompts per task (default: %(default)s)"
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: torch's choice; 1 on a busy machine)"
    )
    parser.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from circuits.models import load_model
    from transcoders.corpus import input_domain, load_corpus_tokens, window_length
    from transcoders.evaluate import evaluate_transcoders
    from transcoders.formats import load_any, resolve
    from transcoders.transcoder_set import default_transcoders_dir, model_id

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    path = resolve(args.transcoders or default_transcoders_dir(args.model))
    bridge = load_model(args.model)
    tset = load_any(path, bridge=bridge, model=model_id(args.model))
    corpus = load_corpus_tokens(args.model, bridge)
    n_prompts = args.n_prompts
    if input_domain(args.model) is not None:
        log.info("task metrics skipped: a compiled model reads only its program's inputs")
        n_prompts = None
    report = evaluate_transcoders(
        bridge,
        tset,
        corpus.val,
        eot=corpus.eot,
        n_tokens=args.n_tokens,
        n_isolated_tokens=args.n_isolated_tokens,
        seq_len=window_length(args.model, bridge),
        n_prompts=n_prompts,
    )
    report["transcoders"] = str(path)
    if args.record:
        record(args.model, path, tset, report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render_table(report))
    return 0


def record(spec: str, path: Path, tset: Any, report: dict[str, Any]) -> None:
    """Write the evaluation summary into the card of zoo model `spec`."""
    from circuits.models import ZOO_PREFIX, resolve_model_dir
    from circuits.zoo.card import record_transcoders
    from transcoders.errors import TranscoderError

    model_dir = resolve_model_dir(spec)
    if not spec.startswith(ZOO_PREFIX) or model_dir is None:
        raise TranscoderError(f"--record writes zoo model cards; {spec} is not a zoo model")
    config = tset[0].config
    record_transcoders(
        model_dir,
        {
            "path": str(path.resolve().relative_to(model_dir.resolve()))
            if path.resolve().is_relative_to(model_dir.resolve())
            else str(path),
            "kind": config.kind,
            "d_transcoder": config.d_transcoder,
            "training": {
                k: tset.training_summary.get(k) for k in ("tokens", "wall_time_s", "tokens_per_s")
            },
            "n_tokens": report["n_tokens"],
            "n_isolated_tokens": report["n_isolated_tokens"],
            "ce_original": report["ce_original"],
            "all_layers": report["all_layers"],
            "layers": report["isolated"],
            "tasks": report.get("tasks", {}),
        },
    )


def render_table(report: dict[str, Any]) -> str:
    """The report as plain-text tables: per layer, all layers spliced, tasks."""
    lines = [
        f"transcoders {report['transcoders']} on {report['model']}, "
        f"{report['n_tokens']:,} held-out tokens scored (fvu, l0, dead, dense: "
        f"{report['n_isolated_tokens']:,})",
        "",
        f"{'layer':>5} {'fvu':>7} {'l0':>6} {'dead':>6} {'dense':>6} "
        f"{'fvu_spl':>7} {'l0_spl':>6} {'ce_spl':>7} {'ce_zero':>7} {'kl':>6} {'recov':>6}",
    ]
    for iso, spl, alone in zip(
        report["isolated"], report["spliced"], report["per_layer"], strict=True
    ):
        lines.append(
            f"{iso['layer']:>5} {iso['fvu']:>7.4f} {iso['l0']:>6.1f} {iso['dead_fraction']:>6.3f} "
            f"{iso['dense_fraction']:>6.3f} {spl['fvu']:>7.4f} {spl['l0']:>6.1f} "
            f"{alone['ce_spliced']:>7.4f} {alone['ce_zero']:>7.4f} {alone['kl']:>6.4f} "
            f"{alone['loss_recovered']:>6.3f}"
        )
    every = report["all_layers"]
    lines += [
        "(per-layer CE / KL / recovered: that layer alone spliced)",
        "",
        f"all layers spliced: CE original {report['ce_original']:.4f}, spliced "
        f"{every['ce_spliced']:.4f}, zero-ablated {every['ce_zero']:.4f}, KL {every['kl']:.4f}, "
        f"loss recovered {every['loss_recovered']:.3f}",
    ]
    if "tasks" in report:
        width = max(len("task score"), *map(len, report["tasks"]))
        n_layers = len(report["isolated"])
        lines += [
            "",
            f"{'task score':<{width}} {'original':>9} {'spliced':>9} {'ratio':>7}  "
            + " ".join(f"{f'L{i}':>5}" for i in range(n_layers))
            + "  (ratio with that layer alone spliced)",
        ]
        for key, row in report["tasks"].items():
            alone = " ".join(f"{r:>5.2f}" for r in row.get("ratio_by_layer", []))
            lines.append(
                f"{key:<{width}} {row['original']:>9.3f} {row['spliced']:>9.3f} "
                f"{row['ratio']:>7.3f}  {alone}"
            )
    return "\n".join(lines)
