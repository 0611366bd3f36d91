"""graph.html in headless Chromium (started by the test, driven over the DevTools protocol on a
pipe): it opens from disk with the network off, draws every node, shows a clicked node's edges,
follows the sliders, groups features into graph.json's supernodes, and its served variant
refuses paths outside the run directory.

Set CIRCUITS_UPDATE_SCREENSHOT=1 to retake docs/viewer.png (the README's screenshot) from a
real `circuits run` of IOI on the shipped model.
"""

import json
import os
import random
import threading
from pathlib import Path

import pytest

from circuits.run.circuit import Circuit
from circuits.run.export import viewer_json, write_json
from circuits.view.browser import Browser, find_chromium
from circuits.view.page import write_page
from circuits.view.server import ViewServer

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs Chromium for the page's tests: `apt-get install chromium` (.ci/run does), "
    "or set $CHROMIUM",
)
ROOT = Path(__file__).resolve().parents[2]
ROLES = ["BOS", "IO", "S1", "S1+1", "S2", "END"]
TOKENS = ["<bos>", " Mary", " John", " went", " John", " gave"]


def synthetic_circuit(seed: int = 0, n_layers: int = 3, n_features: int = 60) -> Circuit:
    """A circuit shaped like a run's: tokens, features and errors by (layer, role), the metric,
    edges upwards with attention heads on those that change position."""
    rng = random.Random(seed)
    nodes = [
        {"kind": "token", "layer": -1, "role": role, "label": role, "activation": 0.0}
        for role in ROLES
    ]
    for layer in range(n_layers):
        nodes += [
            {"kind": "error", "layer": layer, "role": role, "label": f"error L{layer}"}
            for role in ROLES[3:]
        ]
    for f in range(n_features):
        layer, role = rng.randrange(n_layers), rng.choice(ROLES[1:])
        name = rng.choice([" Mary", " John", " Anne", ".", " to"])
        label = f"{rng.choice(['on', 'says'])} {json.dumps(name)}"
        nodes.append(
            {"kind": "feature", "layer": layer, "role": role, "feature": 100 + f, "label": label,
             "activation": rng.uniform(0.1, 5)}
        )  # fmt: skip
    nodes.append({"kind": "target", "layer": n_layers, "role": "END", "label": "logit_diff"})
    middle = [i for i, n in enumerate(nodes) if n["kind"] in ("feature", "error")]
    weights = [rng.random() ** 3 for _ in middle]
    for i, w in zip(middle, weights, strict=True):
        nodes[i].update(influence=w / sum(weights), effect=rng.uniform(-1, 1) * w)
    edges = []
    for t, target in enumerate(nodes):
        sources = [s for s, n in enumerate(nodes) if n["layer"] < target["layer"]]
        for s in rng.sample(sources, min(len(sources), 6)) if target["kind"] != "token" else []:
            moves = nodes[s]["role"] != target["role"]
            heads = [[f"L{target['layer'] - 1}H{rng.randrange(4)}", 1.16]] if moves else []
            edges.append(
                {"source": s, "target": t, "weight": rng.uniform(-1, 1.5), "heads": heads,
                 "effect": rng.uniform(-0.1, 0.1), "head_effects": {}}
            )  # fmt: skip
    return Circuit.from_json(
        {
            "task": "ioi",
            "model": "zoo:synthetic",
            "metric": "logit_diff",
            "n_layers": n_layers,
            "roles": ROLES,
            "nodes": [
                {
                    "feature": None,
                    "activation": 0.0,
                    "influence": 0.0,
                    "effect": 0.0,
                    "change": 1.0,
                    **n,
                }
                for n in nodes
            ],
            "edges": edges,
            "n_prompts": 8,
            "example_tokens": TOKENS,
            "gap": 4.0,
            "qk_paths": {"MLP0->L1H0": 0.04, "EMBED->L0H3": -0.01},
            "moved_patterns": {"L1H0": 0.8, "L0H3": -0.1},
        }
    )


def write_run_dir(path: Path, circuit: Circuit) -> Path:
    path.mkdir(parents=True)
    write_json(circuit.to_json(), path / "circuit.json")
    graph = viewer_json(
        circuit, slug="synthetic", prompt_tokens=circuit.roles, node_threshold=0.99,
        example_roles=ROLES,
    )  # fmt: skip
    write_json(graph, path / "graph.json")
    write_json({"validation.faithfulness": 0.9, "n_prompts": 8}, path / "summary.json")
    write_page(path)
    return path


@pytest.fixture(scope="module")
def circuit() -> Circuit:
    return synthetic_circuit()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, circuit) -> Path:
    return write_run_dir(tmp_path_factory.mktemp("view") / "run", circuit)


@pytest.fixture(scope="module")
def browser():
    with Browser(CHROMIUM, width=1280, height=800) as b:
        b.offline()
        yield b


@pytest.fixture
def page(browser, run_dir):
    """The page opened from disk, fresh (no state kept from an earlier test)."""
    browser.open((run_dir / "graph.html").as_uri())
    browser.evaluate("localStorage.clear()")
    browser.open((run_dir / "graph.html").as_uri())
    browser.console.clear()
    return browser


def set_thresholds(b: Browser, node: float, edge: float) -> int:
    b.evaluate(
        f"(() => {{ for (const [id, v] of [['node-threshold', {node}], ['edge-threshold', {edge}]])"
        " { const el = document.getElementById(id); el.value = v;"
        " el.dispatchEvent(new Event('input')); } })()"
    )
    return b.evaluate("document.querySelectorAll('#graph .node').length")


def test_the_page_opens_from_disk_with_the_network_off(page):
    assert page.evaluate("document.body.dataset.ready")
    assert page.requests and all(url.startswith("file://") for url in page.requests)
    assert not page.console, page.console
    assert page.evaluate("document.querySelectorAll('#graph .col').length") > 0


def test_every_node_is_drawn_at_full_thresholds(page, circuit):
    assert set_thresholds(page, 1, 1) == len(circuit.nodes)
    assert page.evaluate("document.querySelectorAll('#graph .edge').length") == len(circuit.edges)


def test_the_node_slider_changes_the_number_of_drawn_nodes(page, circuit):
    full = set_thresholds(page, 1, 1)
    fewer = set_thresholds(page, 0.3, 1)
    assert 0 < fewer < full
    counts = page.evaluate("document.getElementById('counts').textContent")
    assert counts.startswith(f"{fewer} of {len(circuit.nodes)} nodes")


def test_a_click_shows_the_nodes_edges(page, circuit):
    set_thresholds(page, 1, 1)
    i = max(
        (i for i, n in enumerate(circuit.nodes) if n.kind == "feature"),
        key=lambda i: sum(i in (e.source, e.target) for e in circuit.edges),
    )
    page.click(f'#graph .node[data-i="{i}"]')
    n_in = sum(e.target == i for e in circuit.edges)
    n_out = sum(e.source == i for e in circuit.edges)
    assert page.evaluate("document.querySelectorAll('#graph .edge.on').length") == n_in + n_out
    heading = page.evaluate("document.querySelector('#tab-node h2').textContent")
    node = circuit.nodes[i]
    assert heading.startswith(f"L{node.layer} #{node.feature}")
    rows = page.evaluate(
        "[...document.querySelectorAll('#tab-node .edges-list')].map(s => [s.dataset.end,"
        " s.querySelector('h3').textContent])"
    )
    assert rows == [["source", f"Incoming edges ({n_in})"], ["target", f"Outgoing edges ({n_out})"]]


def test_search_finds_features_by_id_and_by_text(page, circuit):
    feature = next(n for n in circuit.nodes if n.kind == "feature")
    ids = page.evaluate(
        f"window.circuitsView && (() => {{ const s = document.getElementById('search');"
        f" s.value = 'L{feature.layer} #{feature.feature}'; s.dispatchEvent(new Event('input'));"
        " return document.querySelectorAll('#search-results .result').length; })()"
    )
    assert ids == 1
    texts = page.evaluate(
        "(() => { const s = document.getElementById('search'); s.value = 'anne';"
        " s.dispatchEvent(new Event('input'));"
        " return document.querySelectorAll('#search-results .result').length; })()"
    )
    assert texts == sum("Anne" in n.label for n in circuit.nodes)


def test_picked_features_become_a_supernode_of_graph_json(page, circuit):
    set_thresholds(page, 1, 1)
    picked = [i for i, n in enumerate(circuit.nodes) if n.kind == "feature"][:2]
    for i in picked:
        page.click(f'#graph .node[data-i="{i}"]', shift=True)
    page.evaluate("document.getElementById('group-label').value = 'say the name'")
    page.click("#group-picked")
    exported = page.evaluate("window.circuitsView.exportedGraph().qParams.supernodes")
    graph_json = Path(page.evaluate("location.pathname")).with_name("graph.json")
    ids = [n["node_id"] for n in json.loads(graph_json.read_text())["nodes"]]
    assert exported == [["say the name", *(ids[i] for i in picked)]]
    assert page.evaluate("document.querySelectorAll('#graph .node.grouped').length") == 2
    page.click("#auto-position")
    groups = page.evaluate("window.circuitsView.state.groups.length")
    assert groups > 1


def test_a_screenshot_is_not_blank(page, tmp_path):
    import matplotlib.image

    set_thresholds(page, 0.8, 0.98)
    image = matplotlib.image.imread(page.screenshot(tmp_path / "page.png"))[..., :3]
    colours = {tuple(px) for px in (image[::7, ::7] * 255).astype(int).reshape(-1, 3).tolist()}
    assert image.std() > 0.05 and len(colours) > 50


def test_the_served_page_saves_groups_and_refuses_paths_outside(browser, run_dir, tmp_path):
    (run_dir.parent / "secret.txt").write_text("secret")
    server = ViewServer(run_dir)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    browser.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        session=True,
    )
    try:
        browser.open(server.url)
        status = browser.evaluate(
            "Promise.all(['circuit.json', '%2e%2e%2fsecret.txt', '..%2fsecret.txt',"
            " '%2Fetc%2Fpasswd'].map(p => fetch(p).then(r => r.status)))"
        )
        assert status == [200, 404, 404, 404]
        browser.click('.tabs button[data-tab="groups"]')
        browser.click("#auto-position")
        browser.click("#save-run")
        browser.wait_for("document.getElementById('group-status').textContent.startsWith('saved')")
        saved = json.loads((run_dir / "graph.json").read_text())["qParams"]["supernodes"]
        assert saved and all(len(group) >= 3 for group in saved)
    finally:
        browser.offline()
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(
    not os.environ.get("CIRCUITS_UPDATE_SCREENSHOT"),
    reason="retakes docs/viewer.png only when CIRCUITS_UPDATE_SCREENSHOT=1",
)
def test_readme_screenshot(tmp_path):
    from circuits.cli.main import main

    out = tmp_path / "ioi"
    assert main(["run", "tasks/ioi.toml", "--out", str(out)]) == 0
    with Browser(CHROMIUM, width=1440, height=900) as b:
        b.offline()
        b.open((out / "graph.html").as_uri())
        top = b.evaluate(
            "(() => { const d = window.circuitsView.data; let best = -1;"
            " d.nodes.forEach((n, i) => { if (n.kind === 'feature' && (best < 0 ||"
            " n.influence > d.nodes[best].influence)) best = i; }); return best; })()"
        )
        b.click(f'#graph .node[data-i="{top}"]')
        away = {"type": "mouseMoved", "x": 1, "y": 1}  # no tooltip in the picture
        b.send("Input.dispatchMouseEvent", away, session=True)
        (ROOT / "docs").mkdir(exist_ok=True)
        b.screenshot(ROOT / "docs" / "viewer.png")
