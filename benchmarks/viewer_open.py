"""How long graph.html takes to open for a big circuit: a synthetic circuit of 10,000 edges
(6 layers, 30 roles, ~1,500 features with descriptions) written as a run directory, its page
built by `circuits view`, then opened from disk in headless Chromium (network off) several
times. Open time is the page's own clock at its ready mark (`document.body.dataset.ready`, set
two animation frames after the first drawing, i.e. painted), from navigation start; the
browser is already running. Also timed: opening with every node and edge drawn (both
thresholds at 1, kept by the page from the previous visit), redrawing to that from the default
thresholds, and a click on the busiest node.

    python -m benchmarks.viewer_open                 # 10,000 edges, 5 opens
    python -m benchmarks.viewer_open --edges 30000 --repeat 3

Results (JSON + markdown, with the commit and machine) go to benchmarks/results/.
"""

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.environment import RESULTS, commit, machine, write_results
from circuits.run.circuit import Circuit
from circuits.run.export import viewer_json, write_json
from circuits.view.browser import Browser
from circuits.view.page import write_page

WORDS = [" Mary", " John", " went", " to", " the", " store", ".", " gave", " a", " drink", ","]


def synthetic_circuit(
    n_edges: int, *, n_layers: int = 6, n_roles: int = 30, n_features: int = 1500, seed: int = 0
) -> tuple[Circuit, list[dict[str, Any]]]:
    """A circuit of `n_edges` distinct edges between tokens, features and errors of
    `n_layers` x `n_roles` cells and the metric, and a description for each feature."""
    rng = random.Random(seed)
    roles = ["BOS", *(f"R{k}" for k in range(1, n_roles - 1)), "END"]
    nodes = [{"kind": "token", "layer": -1, "role": r, "label": r} for r in roles]
    nodes += [
        {"kind": "error", "layer": layer, "role": r, "label": f"error L{layer}"}
        for layer in range(n_layers)
        for r in roles
    ]
    features = []
    for f in range(n_features):
        layer, role = rng.randrange(n_layers), rng.choice(roles[1:])
        word = rng.choice(WORDS)
        nodes.append(
            {"kind": "feature", "layer": layer, "role": role, "feature": f,
             "label": f"on {json.dumps(word)}", "activation": rng.uniform(0.1, 5)}
        )  # fmt: skip
        contexts = [
            {"tokens": [rng.choice(WORDS) for _ in range(12)], "active": 6,
             "activation": rng.uniform(1, 6)}
            for _ in range(8)
        ]  # fmt: skip
        pairs = [[w, rng.uniform(-3, 3)] for w in rng.sample(WORDS, 8)]
        features.append(
            {"layer": layer, "feature": f, "label": f"on {json.dumps(word)}", "frequency": 0.01,
             "max_activation": 6.0, "top_contexts": contexts, "promoted": pairs,
             "suppressed": pairs, "input_tokens": pairs}
        )  # fmt: skip
    nodes.append({"kind": "target", "layer": n_layers, "role": "END", "label": "logit_diff"})
    middle = [i for i, n in enumerate(nodes) if n["kind"] in ("feature", "error")]
    scores = [rng.random() ** 4 for _ in middle]
    for i, s in zip(middle, scores, strict=True):
        nodes[i].update(influence=s / sum(scores), effect=rng.uniform(-1, 1) * s)
    by_layer: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        by_layer.setdefault(n["layer"], []).append(i)
    receivers = [i for i, n in enumerate(nodes) if n["kind"] != "token"]
    seen: set[tuple[int, int]] = set()
    edges = []
    while len(edges) < n_edges:
        t = rng.choice(receivers)
        below = [layer for layer in by_layer if layer < nodes[t]["layer"]]
        s = rng.choice(by_layer[rng.choice(below)])
        if (s, t) in seen:
            continue
        seen.add((s, t))
        heads = []
        if nodes[s]["role"] != nodes[t]["role"]:
            layer = max(nodes[t]["layer"] - 1, 0)
            heads = [[f"L{layer}H{h}", round(rng.uniform(-0.3, 1.3), 3)] for h in range(2)]
        edges.append(
            {"source": s, "target": t, "weight": rng.gauss(0, 1), "heads": heads,
             "effect": rng.gauss(0, 0.05), "head_effects": {h[0]: 0.0 for h in heads}}
        )  # fmt: skip
    defaults = {"feature": None, "activation": 0.0, "influence": 0.0, "effect": 0.0, "change": 1.0}
    circuit = Circuit.from_json(
        {
            "task": "synthetic",
            "model": "zoo:synthetic",
            "metric": "logit_diff",
            "n_layers": n_layers,
            "roles": roles,
            "nodes": [{**defaults, **n} for n in nodes],
            "edges": edges,
            "n_prompts": 20,
            "example_tokens": [rng.choice(WORDS) for _ in roles],
            "gap": 5.0,
        }
    )
    return circuit, features


def write_run_dir(path: Path, circuit: Circuit, features: list[dict[str, Any]]) -> None:
    path.mkdir(parents=True)
    write_json(circuit.to_json(), path / "circuit.json")
    graph = viewer_json(
        circuit, slug="synthetic", prompt_tokens=list(circuit.roles), node_threshold=0.99,
        example_roles=list(circuit.roles),
    )  # fmt: skip
    write_json(graph, path / "graph.json")
    write_json({"features": features}, path / "features.json")
    write_json({"validation.faithfulness": 0.9, "n_prompts": 20}, path / "summary.json")


REDRAW_ALL = """new Promise((done) => {
  const t0 = performance.now();
  for (const id of ["node-threshold", "edge-threshold"]) {
    const el = document.getElementById(id); el.value = 1; el.dispatchEvent(new Event("input"));
  }
  requestAnimationFrame(() => requestAnimationFrame(() => done([performance.now() - t0,
    document.querySelectorAll("#graph .node").length,
    document.querySelectorAll("#graph .edge").length])));
})"""

CLICK_BUSIEST = """new Promise((done) => {
  const d = window.circuitsView.data, degree = new Array(d.nodes.length).fill(0);
  d.edges.source.forEach((s, k) => { degree[s]++; degree[d.edges.target[k]]++; });
  const i = degree.indexOf(Math.max(...degree.filter((_, j) => d.nodes[j].kind === "feature")));
  const t0 = performance.now();
  window.circuitsView.select(i);
  requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)));
})"""


def measure(n_edges: int, repeat: int) -> dict[str, Any]:
    circuit, features = synthetic_circuit(n_edges)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        write_run_dir(run_dir, circuit, features)
        start = time.perf_counter()
        page = write_page(run_dir)
        build = time.perf_counter() - start
        size = page.stat().st_size
        opens, opens_all, redraws, clicks, drawn = [], [], [], [], None
        with Browser(width=1440, height=900, timeout=120) as browser:
            browser.offline()
            for _ in range(repeat):
                browser.open(page.as_uri())
                browser.evaluate("localStorage.clear()")
                opens.append(float(browser.open(page.as_uri())))
                drawn = browser.evaluate("document.getElementById('counts').textContent")
                ms, n_nodes, n_drawn_edges = browser.evaluate(REDRAW_ALL)
                redraws.append(ms)
                clicks.append(browser.evaluate(CLICK_BUSIEST))
                opens_all.append(float(browser.open(page.as_uri())))  # the page kept 1 and 1
            assert not browser.console, browser.console
    return {
        "edges": len(circuit.edges),
        "nodes": len(circuit.nodes),
        "features": circuit.n_features,
        "page_bytes": size,
        "build_seconds": build,
        "drawn_at_default_thresholds": drawn,
        "open_ms": opens,
        "open_ms_median": statistics.median(opens),
        "open_all_ms": opens_all,
        "open_all_ms_median": statistics.median(opens_all),
        "redraw_all_ms_median": statistics.median(redraws),
        "drawn_all": [n_nodes, n_drawn_edges],
        "click_ms_median": statistics.median(clicks),
    }


def markdown(report: dict[str, Any]) -> str:
    r = report["result"]
    return "\n".join(
        [
            f"# graph.html open time ({report['commit']}, {report['machine']['cpu']})",
            "",
            f"{r['edges']} edges, {r['nodes']} nodes ({r['features']} features); page "
            f"{r['page_bytes'] / 1e6:.1f} MB, built in {r['build_seconds']:.2f} s.",
            "",
            "| | median ms |",
            "|---|---|",
            f"| open from disk to painted, default thresholds ({r['drawn_at_default_thresholds']})"
            f" | {r['open_ms_median']:.0f} |",
            f"| open from disk to painted, every node and edge drawn | "
            f"{r['open_all_ms_median']:.0f} |",
            f"| redraw with every node and edge ({r['drawn_all'][0]} nodes, "
            f"{r['drawn_all'][1]} edges) | {r['redraw_all_ms_median']:.0f} |",
            f"| click on the busiest feature | {r['click_ms_median']:.0f} |",
            "",
            f"Opens: {', '.join(f'{x:.0f}' for x in r['open_ms'])} ms.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edges", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args()
    report = {"commit": commit(), "machine": machine(), "result": measure(args.edges, args.repeat)}
    text = markdown(report)
    stem = write_results("viewer_open", report, text, args.out)
    print(text)
    print(f"wrote {stem}.json and .md")


if __name__ == "__main__":
    main()
