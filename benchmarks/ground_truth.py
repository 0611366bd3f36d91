"""Recovered circuits against ground truth: transcoder circuits and the baselines (activation
patching, EAP, EAP-IG) scored against each zoo model's causal reference, and against the
published GPT-2 small circuits where the user has GPT-2's weights.

    python -m benchmarks.ground_truth --out DIR                 # every zoo model with transcoders
    python -m benchmarks.ground_truth --models tiny --tasks ioi --count 10
    python -m benchmarks.ground_truth --gpt2 ~/models/gpt2      # also the published circuits
    python -m benchmarks.ground_truth --gpt2 ~/models/gpt2 --gpt2-transcoders ~/tc/gpt2

Per (model, task): node- and edge-level ROC AUC over each method's ranking, precision and recall
of the components each method scores at least the reference's threshold (every method's scores
are shares of the clean-corrupt gap), faithfulness of each method's top-k components (k = the
reference circuit's size, all other heads and MLPs resampled from the corrupted prompts), and
wall time. The reference comes from the model card (`circuits reference`); where a model has
none it is computed here and not stored.
"""

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.environment import RESULTS, commit, machine, write_results

TASKS = ("ioi", "greater_than")
log = logging.getLogger("benchmarks.ground_truth")


def zoo_models() -> list[str]:
    """Zoo models trained here that have a transcoder set."""
    from circuits.zoo.registry import ZOO, is_trained, zoo_path

    return [name for name in ZOO if is_trained(name) and (zoo_path(name) / "transcoders").exists()]


def transcoder_scores(spec: Any, prompt_set: Any, bridge: Any, tset_dir: Path, model_spec: str):
    from circuits.attribution.replacement import ReplacementModel
    from circuits.run.components import component_view
    from circuits.run.config import RunConfig
    from circuits.run.pipeline import run_task
    from circuits.scoring.scores import ComponentScores
    from transcoders.transcoder_set import load_transcoder_set

    tset = load_transcoder_set(tset_dir, bridge=bridge)
    start = time.perf_counter()
    result = run_task(
        spec,
        prompt_set,
        ReplacementModel(bridge, tset),
        model_spec=model_spec,
        config=RunConfig(count=len(prompt_set.prompts)),
    )
    view = component_view(result.circuit, bridge.cfg.n_heads)
    scores = ComponentScores(
        method="transcoder circuit",
        nodes=view.scores,
        edges=view.edges,
        seconds=time.perf_counter() - start,
        units="share of the clean-corrupt gap (edges); sum of |edges| out (nodes)",
    )
    return scores, result.summary["validation.faithfulness"], view.flow, result.circuit


def baseline_scores(bridge: Any, prompt_set: Any) -> list[Any]:
    from circuits.baselines.activation_patching import activation_patching
    from circuits.baselines.eap import edge_attribution_patching

    return [
        activation_patching(bridge, prompt_set),
        edge_attribution_patching(bridge, prompt_set),
        edge_attribution_patching(bridge, prompt_set, steps=5),
    ]


def save_circuit(circuit: Any, path: Path) -> None:
    """Keep a transcoder circuit beside the scores (its component view can be recomputed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(circuit.to_json()) + "\n")


def score_against(
    bridge: Any,
    prompt_set: Any,
    ours: Any,
    truth: list[str],
    truth_edges: list[str],
    cut: float,
) -> tuple[list[Any], list[Any], list[float]]:
    """Our component scores and the baselines' (run here), each scored against the circuit
    `truth` and its edges; returns the methods, their scores, and the faithfulness of each
    method's top-k components followed by that of `truth` itself. Each method selects the
    components it scores at least `cut` (the reference's threshold) for precision and recall."""
    from circuits.causal.naming import component_edges
    from circuits.scoring.evaluate import score_method
    from circuits.scoring.faithfulness import component_faithfulness

    all_edges = [f"{s}->{r}" for s, r in component_edges(bridge.cfg.n_layers, bridge.cfg.n_heads)]
    methods = [ours, *baseline_scores(bridge, prompt_set)]
    scored = [score_method(m, truth, truth_edges, all_edges, cut) for m in methods]
    faithful = component_faithfulness(bridge, prompt_set, [s.top for s in scored] + [truth])
    return methods, scored, faithful


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def method_cells(meth: dict[str, Any], faithfulness_key: str) -> str:
    """`method | node AUC | edge AUC | precision | recall | faithfulness | seconds |`."""
    return (
        f"{meth['method']} | {fmt(meth['node_auc'])} | {fmt(meth['edge_auc'])} | "
        f"{meth['precision']:.2f} | {meth['recall']:.2f} | {meth[faithfulness_key]:.3f} | "
        f"{meth['seconds']:.1f} |"
    )


def evaluate_zoo(model: str, task: str, count: int | None, out: Path) -> dict[str, Any]:
    """Score every method on `model` and `task`; the transcoder circuit is kept in
    `out/circuits/` (its component view can be recomputed from it)."""
    from circuits.causal.compute import compute_reference
    from circuits.causal.reference import load_reference
    from circuits.models import load_model
    from circuits.tasks import build_prompt_set, load_task
    from transcoders.transcoder_set import default_transcoders_dir

    model_spec = f"zoo:{model}"
    spec = load_task(Path("tasks") / f"{task}.toml")
    bridge = load_model(model_spec)
    prompt_set = build_prompt_set(spec, bridge.tokenizer, n_ctx=bridge.cfg.n_ctx, count=count)
    reference = load_reference(model_spec, spec.name)
    stored = reference is not None
    if reference is None:
        log.warning("%s has no stored %s reference: computing one (not stored)", model_spec, task)
        reference = compute_reference(
            bridge, prompt_set, model_spec=model_spec, threshold=0.1, command="(benchmark)"
        )
    circuit, circuit_edges = reference.circuit, reference.circuit_edges
    ours, run_faithfulness, flow, transcoder_circuit = transcoder_scores(
        spec, prompt_set, bridge, default_transcoders_dir(model_spec), model_spec
    )
    save_circuit(transcoder_circuit, out / "circuits" / f"{model}-{task}.json")
    _, scored, faithful = score_against(
        bridge, prompt_set, ours, circuit, circuit_edges, reference.threshold
    )
    return {
        "model": model_spec,
        "task": task,
        "n_prompts": len(prompt_set.prompts),
        "reference": {
            "stored": stored,
            "n_prompts": reference.n_prompts,
            "circuit": circuit,
            "n_edges": len(circuit_edges),
            "roles": reference.roles,
            "faithfulness": faithful[-1],
        },
        "transcoder_run": {"faithfulness": run_faithfulness, "flow": flow},
        "methods": [
            {**s.to_json(), "faithfulness_at_reference_size": f}
            for s, f in zip(scored, faithful[:-1], strict=True)
        ],
    }


def evaluate_gpt2(
    model_dir: str, task: str, count: int | None, transcoders: Path | None = None
) -> dict[str, Any]:
    """The baselines (and the transcoder circuit, given a transcoder set for GPT-2) on GPT-2
    small against its published circuit (heads only where the publication says nothing of
    MLPs)."""
    from circuits.models import load_model
    from circuits.scoring.evaluate import score_method
    from circuits.scoring.published import published_components
    from circuits.tasks import build_prompt_set, load_task

    spec = load_task(Path("tasks") / f"{task}.toml")
    truth = published_components(spec.ground_truth["gpt2"])
    bridge = load_model(model_dir)
    prompt_set = build_prompt_set(spec, bridge.tokenizer, n_ctx=bridge.cfg.n_ctx, count=count)
    methods = baseline_scores(bridge, prompt_set)
    if transcoders is not None:
        methods.insert(0, transcoder_scores(spec, prompt_set, bridge, transcoders, model_dir)[0])
    if not any(name.startswith("MLP") for name in truth):
        methods = [
            replace(m, nodes={k: v for k, v in m.nodes.items() if "H" in k}) for m in methods
        ]
    scored = [score_method(m, truth, [], [], 0.1) for m in methods]
    return {
        "model": model_dir,
        "task": task,
        "published": truth,
        "source": spec.ground_truth["gpt2"].get("source", ""),
        "methods": [{**s.to_json(), "edge_auc": None} for s in scored],
    }


def gpt2_weights(path: str | None) -> str | None:
    """A local GPT-2 small directory, the hub's cached copy, or None."""
    if path:
        return path
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download("gpt2", local_files_only=True)
    except Exception:  # no cached copy: the hub cannot be reached from here either
        return None


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# Recovered circuits vs ground truth ({report['commit']}, {m['cpu']}, "
        f"{m['torch_threads']} threads)",
        "",
        "Node AUC: ROC AUC of each method's component ranking against the causal reference "
        "circuit. Faithfulness: the method's top-k heads and MLPs kept, all others resampled "
        "(k = reference circuit size). P/R of the components each method scores at least the "
        "reference's threshold (a share of the clean-corrupt gap).",
        "",
        "| model | task | method | node AUC | edge AUC | precision | recall | "
        "faithfulness (top-k) | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["zoo"]:
        for meth in row["methods"]:
            lines.append(
                f"| {row['model']} | {row['task']} | "
                + method_cells(meth, "faithfulness_at_reference_size")
            )
        ref = row["reference"]
        lines.append(
            f"| {row['model']} | {row['task']} | *reference circuit* | | | | | "
            f"{ref['faithfulness']:.3f} | |"
        )
    lines += ["", "## Reference circuits", ""]
    for row in report["zoo"]:
        ref = row["reference"]
        roles = "; ".join(f"{k}: {', '.join(v)}" for k, v in ref["roles"].items() if v)
        lines.append(
            f"- {row['model']} {row['task']}: {', '.join(ref['circuit'])}"
            + (f" (roles: {roles})" if roles else "")
            + ("" if ref["stored"] else " (computed here: no stored reference)")
        )
    lines += ["", "## GPT-2 small, published circuits", ""]
    if report["gpt2"] is None:
        lines.append(f"Skipped: {report['gpt2_skipped']}")
    else:
        lines += [
            "| task | method | node AUC | precision | recall | seconds |",
            "|---|---|---|---|---|---|",
        ]
        for row in report["gpt2"]:
            for meth in row["methods"]:
                lines.append(
                    f"| {row['task']} | {meth['method']} | {fmt(meth['node_auc'])} | "
                    f"{meth['precision']:.2f} | {meth['recall']:.2f} | {meth['seconds']:.1f} |"
                )
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["zoo"]
    methods = [m["method"] for m in rows[0]["methods"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), dpi=120)
    width = 0.8 / len(methods)
    for ax, key, title in (
        (axes[0], "node_auc", "node ROC AUC vs causal reference"),
        (axes[1], "faithfulness_at_reference_size", "faithfulness of top-k components"),
    ):
        for j, method in enumerate(methods):
            values = [
                next(m[key] for m in row["methods"] if m["method"] == method) or 0.0 for row in rows
            ]
            ax.bar([i + j * width for i in range(len(rows))], values, width, label=method)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))])
        ax.set_xticklabels([f"{r['model'].removeprefix('zoo:')}\n{r['task']}" for r in rows])
        ax.set_title(title, fontsize=9)
        ax.axhline(1.0, color="#ccc", linewidth=0.8)
    axes[0].axhline(0.9, color="#c33", linestyle="--", linewidth=0.8)
    axes[1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--models", help="comma-separated zoo models (default: all with transcoders)"
    )
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    parser.add_argument("--count", type=int, help="prompts per task (default: the task file's)")
    parser.add_argument("--gpt2", help="GPT-2 small model directory (default: the hub's cache)")
    parser.add_argument(
        "--gpt2-transcoders", type=Path, help="a transcoder set for GPT-2 small (adds our circuits)"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    models = args.models.split(",") if args.models else zoo_models()
    tasks = args.tasks.split(",")
    zoo = [evaluate_zoo(m, t, args.count, args.out) for m in models for t in tasks]
    gpt2_dir = gpt2_weights(args.gpt2)
    gpt2 = (
        None
        if gpt2_dir is None
        else [evaluate_gpt2(gpt2_dir, t, args.count, args.gpt2_transcoders) for t in tasks]
    )
    report = {
        "benchmark": "ground_truth",
        "commit": commit(),
        "machine": machine(),
        "zoo": zoo,
        "gpt2": gpt2,
        "gpt2_skipped": None
        if gpt2_dir
        else "GPT-2 small weights not found (no --gpt2 DIR and no copy in the hub cache)",
    }
    markdown = render(report)
    stem = write_results("ground_truth", report, markdown, args.out)
    plot(report, stem.with_suffix(".png"))
    print(markdown)
    print(f"wrote {stem}.json, .md, .png")


if __name__ == "__main__":
    main()
