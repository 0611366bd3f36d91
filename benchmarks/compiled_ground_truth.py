"""Recovered circuits against exact ground truth: transformers compiled from RASP programs.

    python -m benchmarks.compiled_ground_truth --out DIR
    python -m benchmarks.compiled_ground_truth --programs prev_token,running_count --count 8

For each program in `benchmarks/compiled/models/` (whose circuit is known by construction:
`ground_truth.json`, read off tracr's weights), its task file `benchmarks/compiled/tasks/` is
run through the engine with the program's registered transcoder set, and the transcoder
circuit's components are scored against the ground truth next to the in-project baselines
(activation patching, EAP, EAP-IG): node and edge ROC AUC, precision and recall of the
components each method scores at least 0.1 of the clean-corrupt gap, faithfulness of each
method's top-k components (k = the ground-truth circuit's size), wall time. Writes JSON and
markdown to the results folder with commit and machine.
"""

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from benchmarks.compiled.task_files import task_path
from benchmarks.compiled.verify import MODELS, model_dirs
from benchmarks.environment import RESULTS, commit, machine, write_results
from benchmarks.ground_truth import (
    fmt,
    method_cells,
    save_circuit,
    score_against,
    transcoder_scores,
)

CUT = 0.1
"""Threshold for precision and recall, every method's scores being shares of the clean-corrupt
gap: components carrying 10% of it."""
TARGET_AUC = 0.99

log = logging.getLogger("benchmarks.compiled_ground_truth")


def programs() -> list[str]:
    """Compiled programs that have a task file and a transcoder set."""
    return [
        d.name
        for d in model_dirs()
        if task_path(d).exists() and (d / "transcoders" / "config.json").exists()
    ]


def evaluate_program(name: str, count: int | None, out: Path) -> dict[str, Any]:
    """Score every method on one compiled program; the transcoder circuit is kept in
    `out/compiled_circuits/`."""
    from circuits.models import load_model
    from circuits.tasks import build_prompt_set, load_task
    from transcoders.transcoder_set import default_transcoders_dir

    model_dir = MODELS / name
    truth = json.loads((model_dir / "ground_truth.json").read_text())
    spec = load_task(task_path(model_dir))
    bridge = load_model(str(model_dir))
    prompt_set = build_prompt_set(spec, bridge.tokenizer, n_ctx=bridge.cfg.n_ctx, count=count)
    ours, run_faithfulness, flow, circuit = transcoder_scores(
        spec, prompt_set, bridge, default_transcoders_dir(str(model_dir)), str(model_dir)
    )
    save_circuit(circuit, out / "compiled_circuits" / f"{name}.json")
    methods, scored, faithful = score_against(
        bridge, prompt_set, ours, truth["nodes"], truth["edges"], CUT
    )
    return {
        "program": name,
        "description": truth["description"],
        "n_prompts": len(prompt_set.prompts),
        "truth": {"nodes": truth["nodes"], "edges": truth["edges"], "faithfulness": faithful[-1]},
        "components": sorted(methods[0].nodes),
        "transcoder_run": {"faithfulness": run_faithfulness, "flow": flow},
        "methods": [
            {**s.to_json(), "scores": m.nodes, "faithfulness_at_truth_size": f}
            for s, m, f in zip(scored, methods, faithful[:-1], strict=True)
        ],
    }


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# Compiled programs: recovered circuits vs exact ground truth ({report['commit']}, "
        f"{m['cpu']}, {m['torch_threads']} threads)",
        "",
        "Node AUC: ROC AUC of each method's component ranking against the components the "
        f"compiled program's circuit uses (target >= {TARGET_AUC}). Faithfulness: the method's "
        "top-k heads and MLPs kept, all others resampled from the corrupted prompts (k = the "
        "ground-truth circuit's size). P/R of the components each method scores at least "
        f"{CUT} of the clean-corrupt gap.",
        "",
        "| program | method | node AUC | edge AUC | precision | recall | faithfulness (top-k) "
        "| seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["programs"]:
        for meth in row["methods"]:
            lines.append(
                f"| {row['program']} | " + method_cells(meth, "faithfulness_at_truth_size")
            )
        lines.append(
            f"| {row['program']} | *ground truth* | | | | | {row['truth']['faithfulness']:.3f} | |"
        )
    lines += ["", "## Ground-truth circuits and component scores", ""]
    for row in report["programs"]:
        lines.append(
            f"- `{row['program']}` ({row['description']}): {', '.join(row['truth']['nodes'])}; "
            f"edges {', '.join(row['truth']['edges'])}"
        )
        for meth in row["methods"]:
            scores = ", ".join(f"{k} {v:.3g}" for k, v in meth["scores"].items())
            lines.append(f"  - {meth['method']}: {scores}")
    below = [
        f"{row['program']} ({fmt(meth['node_auc'])})"
        for row in report["programs"]
        for meth in row["methods"][:1]
        if meth["node_auc"] is None or meth["node_auc"] < TARGET_AUC
    ]
    lines += [
        "",
        "Transcoder circuit below the target on: " + (", ".join(below) if below else "none"),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="example: python -m benchmarks.compiled_ground_truth --programs prev_token",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--programs", help="comma-separated programs (default: all with transcoders)"
    )
    parser.add_argument("--count", type=int, help="prompts per program (default: the task file's)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    available = programs()
    names = args.programs.split(",") if args.programs else available
    missing = [n for n in names if n not in available]
    if missing:
        raise SystemExit(
            f"no task file or transcoder set for {', '.join(missing)}; available: "
            f"{', '.join(available) or 'none'} (train one with `transcoders train --model "
            f"{MODELS / missing[0]} --into-model`)"
        )
    report = {
        "benchmark": "compiled_ground_truth",
        "commit": commit(),
        "machine": machine(),
        "programs": [evaluate_program(n, args.count, args.out) for n in names],
    }
    markdown = render(report)
    stem = write_results("compiled_ground_truth", report, markdown, args.out)
    print(markdown)
    print(f"wrote {stem}.json, .md")


if __name__ == "__main__":
    main()
