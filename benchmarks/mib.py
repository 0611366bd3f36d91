"""MIB's circuit-localization track (Mueller et al. 2025, arXiv:2504.13151) on the zoo models and
the compiled programs: CPR and CMD of each method's edge circuits, and edge AUROC where the
circuit is known.

    python -m benchmarks.mib --models tiny,small --count 16        # zoo rows, IOI + greater-than
    python -m benchmarks.mib --models tiny --tasks ioi --count 8 --no-compiled
    python -m benchmarks.mib --models none --programs prev_token    # compiled rows only

For every (model, task) each method scores every component edge (EMBED, heads, MLPs, LOGITS,
joined by the residual stream): the transcoder circuit (its component view, `circuits run`'s
pipeline), EAP, EAP-IG (inputs, 5 steps, counterfactual), exact edge activation patching and
random scores. Its top edges at MIB's budgets (0.1% ... 100% of the edges) are pruned and
evaluated on the real model (edges outside the circuit carry the corrupted prompt's outputs,
`circuits.scoring.edge_circuits`); CPR is the area under the faithfulness curve with edges
ranked by signed score, CMD the area between the curve and 1 with edges ranked by |score|, as
MIB reports them (`circuits.scoring.mib`). The transcoder circuit's own faithfulness-against-size
curve (feature and error nodes resampled in the replacement model, budgets as fractions of its
ranked nodes) is an extra row in other units. Compiled programs add MIB's edge AUROC against the
circuit read off tracr's weights. Writes JSON, markdown and a plot of the curves.
"""

import argparse
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.environment import RESULTS, commit, machine, write_results

TASKS = ("ioi", "greater_than")
log = logging.getLogger("benchmarks.mib")
PUBLISHED = (
    "Published (GPT-2 small, IOI; MIB Table 2): exact edge activation patching CMD 0.02 / CPR "
    "2.30, EAP-IG-inputs 0.03 / 1.85, random 0.75 / 0.25; best 2025 shared-task entry CPR 2.43."
)


def signed_component_edges(circuit: Any, n_heads: int) -> dict[str, float]:
    """The transcoder circuit's component edges with their signs (positive where the edge
    supports the metric): `component_view`'s sums before it takes magnitudes. MIB's CPR ranks
    edges by signed score, so the signs matter there."""
    from circuits.run.components import value_paths

    gap = circuit.gap or 1.0
    edges, head_out, _ = value_paths(circuit, gap)
    for name, share in circuit.qk_paths.items():
        edges[name] += share
    for head, value in circuit.moved_patterns.items():
        out = head_out.get(head, {})
        carried = sum(out.values())
        for receiver, weight in out.items():
            edges[f"{head}->{receiver}"] += value / gap * weight / carried if carried else 0.0
    return dict(edges)


def transcoder_method(spec: Any, prompt_set: Any, bridge: Any, model_spec: str, tset_dir: Path):
    """The transcoder circuit's signed component edges, the seconds the whole `circuits run`
    pipeline took, and its node-level faithfulness curve [(nodes kept, f)] and node count."""
    from circuits.attribution.replacement import ReplacementModel
    from circuits.run.config import RunConfig
    from circuits.run.pipeline import run_task
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
    seconds = time.perf_counter() - start
    return signed_component_edges(result.circuit, bridge.cfg.n_heads), seconds, result.curve


def feature_curve(curve: list[tuple[int, float]]) -> dict[str, Any]:
    """The transcoder run's faithfulness against nodes kept, read at MIB's budgets as fractions
    of its ranked nodes (linear interpolation between the sizes it measured)."""
    import numpy as np

    from circuits.scoring.mib import BUDGETS, Curve

    sizes = np.array([s for s, _ in curve], dtype=float)
    values = np.array([f for _, f in curve])
    at = np.interp(np.array(BUDGETS) * sizes.max(), sizes, values)
    c = Curve(
        budgets=list(BUDGETS),
        faithfulness=at.tolist(),
        n_edges=[round(b * float(sizes.max())) for b in BUDGETS],
        absolute=True,
    )
    return {**c.to_json(), "units": "feature and error nodes (replacement model, resampled)"}


def method_scores(
    bridge: Any, spec: Any, prompt_set: Any, model_spec: str, tset_dir: Path | None
) -> list[dict[str, Any]]:
    """Every method's edge scores over every component edge (0 where it gives none) and time."""
    from circuits.baselines.activation_patching import edge_activation_patching
    from circuits.baselines.eap import edge_attribution_patching
    from circuits.causal.naming import component_edges

    cfg = bridge.cfg
    names = [f"{s}->{r}" for s, r in component_edges(cfg.n_layers, cfg.n_heads)]
    out: list[dict[str, Any]] = []
    if tset_dir is not None and (tset_dir / "config.json").exists():
        edges, seconds, curve = transcoder_method(spec, prompt_set, bridge, model_spec, tset_dir)
        unknown = set(edges) - set(names)
        assert not unknown, f"component view edges outside the model's edges: {unknown}"
        out.append(
            {
                "method": "transcoder circuit",
                "edges": {n: edges.get(n, 0.0) for n in names},
                "seconds": seconds,
                "feature_curve": feature_curve(curve),
            }
        )
    else:
        out.append({"method": "transcoder circuit", "edges": None, "seconds": None})
    for scores in (
        edge_attribution_patching(bridge, prompt_set),
        edge_attribution_patching(bridge, prompt_set, steps=5),
        edge_activation_patching(bridge, prompt_set),
    ):
        assert scores.edges is not None
        out.append(
            {
                "method": scores.method,
                "edges": {n: scores.edges.get(n, 0.0) for n in names},
                "seconds": scores.seconds,
            }
        )
    start = time.perf_counter()
    rng = random.Random(0)
    out.append(
        {
            "method": "random",
            "edges": {n: rng.gauss(0.0, 1.0) for n in names},
            "seconds": time.perf_counter() - start,
        }
    )
    return out


def curves(bridge: Any, prompt_set: Any, methods: list[dict[str, Any]]) -> dict[str, Any]:
    """Each scored method's signed and absolute curves, every distinct circuit evaluated once."""
    from circuits.scoring.edge_circuits import mean_edge_circuit_metrics
    from circuits.scoring.mib import BUDGETS, Curve, budget_circuits, faithfulness

    plans: dict[tuple[str, bool], list[frozenset]] = {}
    for m in methods:
        if m["edges"] is None:
            continue
        for absolute in (False, True):
            circuits = budget_circuits(m["edges"], absolute=absolute)
            plans[m["method"], absolute] = [frozenset(c) for c in circuits]
    distinct = sorted({c for cs in plans.values() for c in cs} | {frozenset()}, key=len)
    start = time.perf_counter()
    full, corrupt, values = mean_edge_circuit_metrics(bridge, prompt_set, distinct)
    seconds = time.perf_counter() - start
    metric = dict(zip(distinct, values, strict=True))
    empty = metric[frozenset()]
    for m in methods:
        for absolute in (False, True):
            if (m["method"], absolute) not in plans:
                continue
            cs = plans[m["method"], absolute]
            m["abs" if absolute else "signed"] = Curve(
                budgets=list(BUDGETS),
                faithfulness=[faithfulness(metric[c], empty, full) for c in cs],
                n_edges=[len(c) for c in cs],
                absolute=absolute,
            ).to_json()
    return {
        "m_full": full,
        "m_corrupt": corrupt,
        "m_empty": empty,
        "n_circuits": len(distinct),
        "evaluation_seconds": seconds,
    }


def evaluate(
    model_spec: str,
    task_file: Path,
    count: int,
    tset_dir: Path | None,
    truth_edges: list[str] | None = None,
) -> dict[str, Any]:
    from circuits.causal.naming import component_edges
    from circuits.models import load_model
    from circuits.scoring.mib import edge_auroc, split
    from circuits.tasks import build_prompt_set, load_task

    spec = load_task(task_file)
    bridge = load_model(model_spec)
    prompt_set = build_prompt_set(spec, bridge.tokenizer, n_ctx=bridge.cfg.n_ctx, count=count)
    methods = method_scores(bridge, spec, prompt_set, model_spec, tset_dir)
    evaluation = curves(bridge, prompt_set, methods)
    if truth_edges is not None:
        truth = [split(e) for e in truth_edges]
        for m in methods:
            if m["edges"] is not None:
                m["edge_auroc"], m["roc_points"] = edge_auroc(m["edges"], truth)
    cfg = bridge.cfg
    return {
        "model": model_spec,
        "task": spec.name,
        "n_prompts": len(prompt_set.prompts),
        "n_edges": len(component_edges(cfg.n_layers, cfg.n_heads)),
        **evaluation,
        "methods": methods,
    }


def zoo_rows(models: list[str], tasks: list[str], count: int) -> list[dict[str, Any]]:
    rows = []
    for model in models:
        spec = f"zoo:{model}"
        for task in tasks:
            log.info("%s %s", spec, task)
            rows.append(evaluate(spec, Path("tasks") / f"{task}.toml", count, tset_for(spec)))
    return rows


def tset_for(model_spec: str) -> Path | None:
    from transcoders.errors import TranscoderError
    from transcoders.transcoder_set import default_transcoders_dir

    try:
        return default_transcoders_dir(model_spec)
    except TranscoderError:  # a model without a registered set: its baselines only
        return None


def compiled_rows(programs: list[str] | None, count: int) -> list[dict[str, Any]]:
    from benchmarks.compiled.task_files import task_path
    from benchmarks.compiled.verify import MODELS
    from benchmarks.compiled_ground_truth import programs as available

    rows = []
    for name in programs if programs is not None else available():
        model_dir = MODELS / name
        truth = json.loads((model_dir / "ground_truth.json").read_text())
        log.info("compiled %s", name)
        row = evaluate(
            str(model_dir), task_path(model_dir), count, tset_for(str(model_dir)), truth["edges"]
        )
        rows.append({**row, "model": f"compiled:{name}", "truth_edges": truth["edges"]})
    return rows


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _verdict(margin: float) -> str:
    """`holds` when ours is at least as good, `tie` within 0.0005 (the table's precision)."""
    if abs(margin) < 5e-4:
        return "tie"
    return "holds" if margin > 0 else "NOT met"


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# MIB circuit localization ({report['commit']}, {m['cpu']}, {m['torch_threads']} "
        "threads)",
        "",
        "CPR: area under the faithfulness curve over MIB's edge budgets, edges by signed score "
        "(higher is better). CMD: area between the curve and 1, edges by |score| (lower is "
        "better). Seconds: the method's own time (transcoder circuit: the whole `circuits run` "
        "pipeline). " + PUBLISHED,
        "",
        "| model | task | edges | method | CPR | CMD | edge AUROC | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        for meth in row["methods"]:
            head = f"| {row['model']} | {row['task']} | {row['n_edges']} | {meth['method']} |"
            if meth["edges"] is None:
                lines.append(head + " no transcoder set | | | |")
                continue
            lines.append(
                head + f" {_f(meth['signed']['cpr'])} | {_f(meth['abs']['cmd'])} | "
                f"{_f(meth.get('edge_auroc'))} | {_f(meth['seconds'], 1)} |"
            )
            if "feature_curve" in meth:
                fc = meth["feature_curve"]
                lines.append(
                    f"| {row['model']} | {row['task']} | | *transcoder features (node "
                    f"budgets)* | {_f(fc['cpr'])} | {_f(fc['cmd'])} | | |"
                )
    lines += ["", "## Goal: transcoder circuit vs EAP-IG, same run", ""]
    for row in report["rows"]:
        ours = next(x for x in row["methods"] if x["method"] == "transcoder circuit")
        ig = next(x for x in row["methods"] if x["method"] == "EAP-IG")
        if ours["edges"] is None:
            lines.append(f"- {row['model']} {row['task']}: no transcoder set")
            continue
        cpr_gap = ours["signed"]["cpr"] - ig["signed"]["cpr"]
        cmd_gap = ig["abs"]["cmd"] - ours["abs"]["cmd"]
        lines.append(
            f"- {row['model']} {row['task']}: CPR {ours['signed']['cpr']:.3f} vs "
            f"{ig['signed']['cpr']:.3f} ({_verdict(cpr_gap)}), CMD "
            f"{ours['abs']['cmd']:.3f} vs {ig['abs']['cmd']:.3f} ({_verdict(cmd_gap)})"
        )
    lines += ["", "## Curves (faithfulness at each budget: signed ranking / absolute)", ""]
    for row in report["rows"]:
        lines.append(
            f"- {row['model']} {row['task']} (m(N) {row['m_full']:.3f}, m(empty) "
            f"{row['m_empty']:.3f}; {row['n_circuits']} circuits in "
            f"{row['evaluation_seconds']:.0f} s):"
        )
        for meth in row["methods"]:
            if meth["edges"] is None:
                continue
            s = " ".join(f"{v:.2f}" for v in meth["signed"]["faithfulness"])
            a = " ".join(f"{v:.2f}" for v in meth["abs"]["faithfulness"])
            lines.append(f"  - {meth['method']}: {s} / {a} (edges kept {meth['abs']['n_edges']})")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    fig, axes = plt.subplots(2, len(rows), figsize=(3.2 * len(rows), 5.6), dpi=110, squeeze=False)
    for j, row in enumerate(rows):
        for i, key in enumerate(("signed", "abs")):
            ax = axes[i][j]
            for meth in row["methods"]:
                if meth["edges"] is None:
                    continue
                c = meth[key]
                ax.plot(c["budgets"], c["faithfulness"], marker=".", label=meth["method"])
                if key == "abs" and "feature_curve" in meth:
                    fc = meth["feature_curve"]
                    ax.plot(
                        fc["budgets"],
                        fc["faithfulness"],
                        linestyle=":",
                        color="#555",
                        label="transcoder features (nodes)",
                    )
            ax.set_xscale("log")
            ax.axhline(1.0, color="#ccc", linewidth=0.8)
            ranking = "CPR: signed" if i == 0 else "CMD: |score|"
            ax.set_title(f"{row['model']} {row['task']}\n({ranking})", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("faithfulness f")
    axes[1][0].set_ylabel("faithfulness f")
    axes[1][0].legend(fontsize=6, frameon=False)
    fig.supxlabel("fraction of edges", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--models", default="tiny,small", help="comma-separated zoo models, or none"
    )
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    parser.add_argument("--count", type=int, default=16, help="prompts per task")
    parser.add_argument("--programs", help="comma-separated compiled programs (default: all)")
    parser.add_argument(
        "--compiled",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score the compiled programs (edge AUROC)",
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    models = [] if args.models == "none" else args.models.split(",")
    rows = zoo_rows(models, args.tasks.split(","), args.count)
    if args.compiled:
        rows += compiled_rows(args.programs.split(",") if args.programs else None, args.count)
    report = {"benchmark": "mib", "commit": commit(), "machine": machine(), "rows": rows}
    markdown = render(report)
    stem = write_results("mib", report, markdown, args.out)
    plot(report, stem.with_suffix(".png"))
    print(markdown)
    print(f"wrote {stem}.json, .md, .png")


if __name__ == "__main__":
    main()
