"""The import graph: no circles, and each layer imports only the layers below it."""

import networkx as nx
import pytest

grimp = pytest.importorskip("grimp")

LAYERS = [
    ["circuits.cli", "transcoders.cli"],
    ["circuits.compare", "circuits.run_directory"],
    ["circuits.view"],
    ["circuits.run", "circuits.scoring", "circuits.baselines"],
    ["circuits.causal", "circuits.features", "circuits.tasks"],
    ["circuits.attribution"],
    ["transcoders"],
    ["circuits.models", "circuits.hub"],
    ["circuits.zoo"],
    ["circuits.corpus"],
    [
        "circuits.paths",
        "circuits.arguments",
        "circuits.hooks",
        "circuits.schedule",
        "circuits.errors",
    ],
]
"""From the top down: the command lines, the run directory and comparisons of runs, the
interactive view of a run, a task run and its scoring, the
measurements a run uses, the engine, transcoders, model loading, the zoo, its corpus, and the
leaves everything may use."""


@pytest.fixture(scope="module")
def imports() -> nx.DiGraph:
    graph = grimp.build_graph("circuits", "transcoders")
    out = nx.DiGraph()
    for module in graph.modules:
        out.add_node(module)
        for imported in graph.find_modules_directly_imported_by(module):
            out.add_edge(module, imported)
    return out


def layer_of(module: str) -> int:
    """The index of the layer that holds `module` (its longest matching prefix)."""
    best, index = "", None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, i
    if index is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return index


def test_no_module_imports_itself_through_others(imports) -> None:
    assert list(nx.simple_cycles(imports)) == []


def test_no_package_imports_itself_through_others(imports) -> None:
    packages = nx.DiGraph()
    for a, b in imports.edges:
        pa, pb = ".".join(a.split(".")[:2]), ".".join(b.split(".")[:2])
        if pa != pb:
            packages.add_edge(pa, pb)
    assert list(nx.simple_cycles(packages)) == []


def test_every_import_runs_down_the_layers(imports) -> None:
    upward = [
        f"{a} -> {b}"
        for a, b in imports.edges
        if a not in ("circuits", "transcoders") and layer_of(a) > layer_of(b)
    ]
    assert upward == []
