"""QK paths: how closely each estimator follows path patching into a head's query and key.

    python -m benchmarks.qk_paths              # every zoo model, IOI and greater-than
    python -m benchmarks.qk_paths --models medium --tasks greater_than --count 8

The component view needs what the frozen graph cannot hold: the share of the gap that each
sender moves through a later head's attention pattern. Its exact value is QK-only path patching:
the sender's change (corrupted minus clean) added to the head's query and key inputs alone,
everything downstream recomputed. Against that, over every sender -> head path, this scores the
estimator the component view uses (`circuits.causal.qk_paths`: the pattern exact, what
follows the head to first order) and two gradient estimators: EAP (the metric's gradient at the
head's query and key inputs on the clean prompt) and EAP-IG (that gradient averaged over 5 steps
from the corrupted to the clean embeddings). Reported: relative L1 error (sum of |estimate -
patched| over sum of |patched|), Pearson correlation, the path each misses most, and wall time.
Results go to benchmarks/results/.
"""

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.environment import RESULTS, commit, machine, write_results
from benchmarks.ground_truth import TASKS, zoo_models

STEPS = 5


def qk_edges(cfg: Any) -> list[tuple[str, str]]:
    from circuits.causal.naming import LOGITS, component_edges, parse_component

    return [
        (s, r)
        for s, r in component_edges(cfg.n_layers, cfg.n_heads)
        if r != LOGITS and parse_component(r).is_head
    ]


def path_patched(bridge: Any, prompt_set: Any, edges: list[tuple[str, str]]) -> list[float]:
    """Each path's QK-only path-patching effect, summed over the prompts, over the summed gap."""
    from circuits.causal.patching import run_prompt
    from circuits.causal.paths import QK_HOOKS, path_patched_metrics

    total = torch.zeros(len(edges), dtype=torch.float64)
    gap = 0.0
    for prompt in prompt_set.prompts:
        run = run_prompt(bridge, prompt_set, prompt)
        gap += run.m_clean - run.m_corrupt
        metrics = path_patched_metrics(
            bridge, run.tokens, run.clean, run.corrupt, edges, run.metric, head_inputs=QK_HOOKS
        )
        total += run.m_clean - metrics.double()
    return (total / gap).tolist()


def estimators(bridge: Any, prompt_set: Any, edges: list[tuple[str, str]]) -> dict[str, Any]:
    from circuits.baselines.eap import edge_attributions
    from circuits.causal.paths import QK_HOOKS
    from circuits.causal.qk_paths import qk_path_scores

    def eap(steps: int) -> dict[str, float]:
        scores = edge_attributions(
            bridge, prompt_set, edges, steps=steps, head_inputs=QK_HOOKS, desc="EAP"
        )
        return scores or {}

    return {
        "component view": lambda: qk_path_scores(bridge, prompt_set),
        "EAP": lambda: eap(0),
        f"EAP-IG ({STEPS} steps)": lambda: eap(STEPS),
    }


def compare(estimate: list[float], patched: list[float], names: list[str]) -> dict[str, Any]:
    e, p = torch.tensor(estimate), torch.tensor(patched)
    worst = int((e - p).abs().argmax())
    return {
        "relative_l1_error": float((e - p).abs().sum() / p.abs().sum()),
        "correlation": float(torch.corrcoef(torch.stack([e, p]))[0, 1]),
        "worst_path": names[worst],
        "worst_patched": float(p[worst]),
        "worst_estimate": float(e[worst]),
    }


def evaluate(model: str, task: str, count: int | None) -> dict[str, Any]:
    from circuits.models import load_model
    from circuits.tasks import build_prompt_set, load_task

    spec = load_task(Path("tasks") / f"{task}.toml")
    bridge = load_model(f"zoo:{model}")
    prompt_set = build_prompt_set(spec, bridge.tokenizer, n_ctx=bridge.cfg.n_ctx, count=count)
    edges = qk_edges(bridge.cfg)
    names = [f"{s}->{r}" for s, r in edges]
    start = time.perf_counter()
    patched = path_patched(bridge, prompt_set, edges)
    row: dict[str, Any] = {
        "model": f"zoo:{model}",
        "task": task,
        "n_prompts": len(prompt_set.prompts),
        "n_paths": len(edges),
        "path_patching_seconds": time.perf_counter() - start,
        "patched_sum_abs": float(torch.tensor(patched).abs().sum()),
        "methods": {},
    }
    for method, run in estimators(bridge, prompt_set, edges).items():
        start = time.perf_counter()
        scores = run()
        seconds = time.perf_counter() - start
        estimate = [scores[n] for n in names]
        row["methods"][method] = {**compare(estimate, patched, names), "seconds": seconds}
    return row


def render(report: dict[str, Any]) -> str:
    lines = [
        f"# QK paths against QK-only path patching ({report['commit']}, "
        f"{report['machine']['cpu']}, {report['machine']['torch_threads']} threads)",
        "",
        "Relative L1 error over every sender -> head path (sum |estimate - patched| / "
        "sum |patched|) / Pearson correlation / the path missed most (patched, estimated) / "
        "seconds.",
        "",
        "| model | task | paths | sum of \\|patched\\| | method | error | correlation | "
        "worst path | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        for method, m in row["methods"].items():
            worst = f"{m['worst_path']} ({m['worst_patched']:.3f}, {m['worst_estimate']:.3f})"
            lines.append(
                f"| {row['model']} | {row['task']} | {row['n_paths']} | "
                f"{row['patched_sum_abs']:.2f} | {method} | {m['relative_l1_error']:.2f} | "
                f"{m['correlation']:.3f} | {worst} | {m['seconds']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--models", help="comma-separated zoo models (default: all with transcoders)"
    )
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    parser.add_argument("--count", type=int, default=20, help="prompts per task")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = args.models.split(",") if args.models else zoo_models()
    rows = [evaluate(m, t, args.count) for m in models for t in args.tasks.split(",")]
    report = {"benchmark": "qk_paths", "commit": commit(), "machine": machine(), "rows": rows}
    markdown = render(report)
    stem = write_results("qk_paths", report, markdown, args.out)
    print(markdown)
    print(f"wrote {stem}.json, .md")


if __name__ == "__main__":
    main()
