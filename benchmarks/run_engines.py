"""Which engine `circuits run` should use: faithfulness per second of the full graph against
the recursive expansion, on the shipped model's task files.

    python -m benchmarks.run_engines                       # ioi and greater_than, 20 prompts
    python -m benchmarks.run_engines --tasks tasks/ioi.toml --count 10

Each (task, engine) runs the whole pipeline of `circuits run` except the files; results go to
benchmarks/results/.
"""

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.environment import commit, machine, write_results


def measure(task: Path, engine: str, count: int | None, model_spec: str) -> dict[str, Any]:
    from circuits.attribution.replacement import ReplacementModel
    from circuits.models import load_model
    from circuits.run.config import RunConfig
    from circuits.run.pipeline import run_task
    from circuits.tasks import build_prompt_set, load_task
    from transcoders.transcoder_set import default_transcoders_dir, load_transcoder_set

    spec = load_task(task)
    bridge = load_model(model_spec)
    tset = load_transcoder_set(default_transcoders_dir(model_spec), bridge=bridge)
    prompts = build_prompt_set(spec, bridge.tokenizer, n_ctx=bridge.cfg.n_ctx, count=count)
    start = time.perf_counter()
    result = run_task(
        spec,
        prompts,
        ReplacementModel(bridge, tset),
        model_spec=model_spec,
        config=RunConfig(engine=engine, count=count),
    )
    s = result.summary
    return {
        "task": spec.name,
        "engine": engine,
        "n_prompts": s["n_prompts"],
        "seconds": time.perf_counter() - start,
        "faithfulness": s["validation.faithfulness"],
        "completeness": s["validation.completeness"],
        "circuit_features": s["circuit_features"],
        "curve": result.curve,
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"# circuits run engines ({report['commit']}, {report['machine']['cpu']}, "
        f"{report['machine']['torch_threads']} threads)",
        "",
        "| task | engine | prompts | seconds | faithfulness | completeness | features |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['task']} | {r['engine']} | {r['n_prompts']} | {r['seconds']:.1f} | "
        f"{r['faithfulness']:.3f} | {r['completeness']:.3f} | {r['circuit_features']} |"
        for r in report["runs"]
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--tasks",
        nargs="+",
        type=Path,
        default=[Path("tasks/ioi.toml"), Path("tasks/greater_than.toml")],
    )
    parser.add_argument("--count", type=int)
    parser.add_argument("--model", default="zoo:default")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"commit": commit(), "machine": machine(), "runs": []}
    for task in args.tasks:
        for engine in ("full", "recursive"):
            report["runs"].append(measure(task, engine, args.count, args.model))
            print({k: v for k, v in report["runs"][-1].items() if k != "curve"})
    stem = write_results("run_engines", report, render(report))
    print(render(report))
    print(f"written to {stem}.json and .md")


if __name__ == "__main__":
    main()
