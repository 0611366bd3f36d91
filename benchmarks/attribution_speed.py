"""Speed and memory of the attribution engine against a naive reference.

    python -m benchmarks.attribution_speed                         # zoo:tiny and zoo:small
    python -m benchmarks.attribution_speed --models zoo:tiny --lengths 16 64
    python -m benchmarks.attribution_speed --naive-max-length 256  # also the slow reference at 256

For each model and prompt length (a stretch of held-out corpus text), four ways of computing
the graph of the top output logits: `batched` (the full graph, every non-zero edge kept),
`capped` (the same with `AttributionConfig` defaults, at most 2048 edges kept per node),
`naive` (the same graph with one backward pass per target node, batch size 1) and `recursive`
(the subgraph of `RecursiveConfig` defaults, without head resolution). Each runs in its own
process so that its peak memory (max RSS, the model included) is its own. Results go to
benchmarks/results/.

The naive reference is written here, apart from the engine: one forward pass of the whole
prompt, then one backward pass per target row, each read at every source site (the edges are
computed from the gradients by the engine's own `SourceVectors`, so only the passes differ).
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch

from benchmarks.environment import commit, machine, write_results

METHODS = ("batched", "capped", "naive", "recursive")


def prompt_tokens(spec: str, bridge: Any, n: int) -> torch.Tensor:
    """End-of-text (or the model's BOS) and then `n - 1` tokens of held-out corpus text.

    Where the cached corpus was not tokenized by the model's tokenizer (a real model added to
    the zoo, or a corpus rebuilt by a newer builder), the corpus's text near its end is
    tokenized by the model's own tokenizer instead."""
    from circuits.corpus.build import CorpusConfig, corpus_dir
    from circuits.errors import CircuitsError
    from transcoders.corpus import corpus_config_for, load_corpus_tokens

    try:
        corpus = load_corpus_tokens(spec, bridge)
    except CircuitsError:
        try:
            config = corpus_config_for(spec)
        except CircuitsError:  # a real model added to the zoo: the default corpus's text
            config = CorpusConfig()
        path = corpus_dir(config) / "corpus.txt"
        if not path.exists():
            raise
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 200_000))
            text = f.read().decode("utf-8", errors="ignore")
        tokenizer = bridge.tokenizer
        ids = tokenizer(text[1000:], add_special_tokens=False)["input_ids"][: n - 1]
        first = tokenizer.eos_token_id if tokenizer.bos_token_id is None else tokenizer.bos_token_id
        return torch.tensor([first, *ids], dtype=torch.long)
    text = np.asarray(corpus.val[1000 : 1000 + n - 1], dtype=np.int64)
    return torch.cat([torch.tensor([corpus.eot]), torch.from_numpy(text)])


def naive_graph_edges(model: Any, tokens: torch.Tensor, targets: list) -> tuple[int, int, float]:
    """The full graph's edges with one backward pass per row: (rows, edges, sum of |edges|)."""
    from circuits.attribution.attribute import Injections, SourceVectors, prepare
    from circuits.attribution.replacement import SourceScales

    trace, index = prepare(model, tokens, targets)
    d_model = trace.embedding.shape[-1]
    probes = [
        torch.zeros(1, trace.n_pos, d_model, dtype=model.dtype, requires_grad=True)
        for _ in range(model.n_layers + 1)
    ]
    with torch.enable_grad():
        replay = model.replay(trace, SourceScales.ones(trace), probes, lean=True)
    injections = Injections(model, trace, targets)
    sources = SourceVectors(model, trace, index)
    n_rows = index.n_nodes - index.feature_start
    n_edges, total = 0, 0.0
    for row in range(n_rows):
        objective = injections.objective(replay.mlp_in, replay.final, [row])
        grads = torch.autograd.grad(objective, probes, retain_graph=True, allow_unused=True)
        grads = [
            torch.zeros_like(p) if g is None else g for g, p in zip(grads, probes, strict=True)
        ]
        edges = sources.edges(grads, 1)
        n_edges += int((edges != 0).sum())
        total += float(edges.abs().sum())
    return n_rows, n_edges, total


def measure(spec: str, n: int, method: str) -> dict[str, Any]:
    """One measurement (run in a child process)."""
    from circuits.attribution.attribute import AttributionConfig, attribute
    from circuits.attribution.recursive import RecursiveConfig, attribute_recursive
    from circuits.attribution.replacement import ReplacementModel
    from circuits.attribution.targets import top_logit_targets
    from circuits.models import load_model
    from transcoders.transcoder_set import default_transcoders_dir, load_transcoder_set

    bridge = load_model(spec)
    tset = load_transcoder_set(default_transcoders_dir(spec), bridge=bridge)
    model = ReplacementModel(bridge, tset)
    tokens = prompt_tokens(spec, bridge, n)
    trace = model.trace(tokens)
    names = [str(i) for i in range(bridge.cfg.d_vocab)]
    targets = top_logit_targets(trace.logits, names, max_count=10, cumulative_probability=0.95)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if method == "naive":
        n_backward, edges_kept, abs_sum = naive_graph_edges(model, tokens, targets)
        wall = time.perf_counter() - start
        n_features = sum(len(f) for f in trace.features)
    else:
        if method == "recursive":
            graph = attribute_recursive(model, tokens, targets, RecursiveConfig(heads=False))
            n_backward = graph.config["n_backward"]
        else:
            cap = None if method == "batched" else AttributionConfig().max_edges_per_row
            config = AttributionConfig(max_edges_per_row=cap, progress=False)
            graph = attribute(model, tokens, targets, config)
            n_rows = graph.index.n_nodes - graph.index.feature_start
            n_backward = -(-n_rows // config.batch_size)
        wall = time.perf_counter() - start
        edges_kept = int(graph.edge_weights.numel())
        abs_sum = float(graph.edge_weights.abs().sum())
        n_features = graph.index.n_features
    return {
        "model": spec,
        "n_pos": n,
        "method": method,
        "wall_s": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": baseline,
        "n_backward": n_backward,
        "active_features": n_features,
        "n_targets": len(targets),
        "edges_kept": edges_kept,
        "abs_edge_sum": abs_sum,
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"# Attribution speed ({report['commit']}, {report['machine']['cpu']}, "
        f"{report['machine']['torch_threads']} torch threads)",
        "",
        "| model | tokens | method | wall s | backward passes | active features | edges kept "
        "| peak RSS MB | speed-up vs naive |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    naive = {
        (r["model"], r["n_pos"]): r["wall_s"] for r in report["runs"] if r["method"] == "naive"
    }
    for r in report["runs"]:
        ref = naive.get((r["model"], r["n_pos"]))
        speedup = f"{ref / r['wall_s']:.1f}x" if ref and r["method"] != "naive" else ""
        lines.append(
            f"| {r['model']} | {r['n_pos']} | {r['method']} | {r['wall_s']:.2f} | "
            f"{r['n_backward']} | {r['active_features']} | {r['edges_kept']:,} | "
            f"{r['peak_rss_mb']:.0f} | {speedup} |"
        )
    return "\n".join(lines) + "\n"


def has_transcoders(spec: str) -> bool:
    from circuits.errors import CircuitsError
    from transcoders.transcoder_set import default_transcoders_dir

    try:
        default_transcoders_dir(spec)
    except CircuitsError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["zoo:tiny", "zoo:small"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument("--naive-max-length", type=int, default=64)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run")
    parser.add_argument(
        "--one", nargs=3, metavar=("MODEL", "LENGTH", "METHOD"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        spec, n, method = args.one
        print(json.dumps(measure(spec, int(n), method)))
        return
    report: dict[str, Any] = {"commit": commit(), "machine": machine(), "runs": []}
    for spec in args.models:
        if not has_transcoders(spec):
            print(f"skipping {spec}: no transcoder set (train one with `transcoders train`)")
            continue
        for n in args.lengths:
            for method in args.methods:
                if method == "naive" and n > args.naive_max_length:
                    continue
                cmd = [
                    sys.executable,
                    "-m",
                    "benchmarks.attribution_speed",
                    "--one",
                    spec,
                    str(n),
                    method,
                ]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
                run = json.loads(out.stdout.strip().splitlines()[-1])
                report["runs"].append(run)
                print(json.dumps(run))
    stem = write_results("attribution_speed", report, render(report))
    print(render(report))
    print(f"written to {stem}.json and .md")


if __name__ == "__main__":
    main()
