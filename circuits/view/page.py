"""graph.html: one self-contained page (data, styles and scripts inline; no network, and a
Content-Security-Policy that forbids any), built from a run directory's files.

The page template and its scripts are package data in `static/`; the scripts are plain
JavaScript written for this page (no library), joined in `SCRIPTS` order into one strict-mode
function scope.
"""

import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from circuits.paths import read_marker, record_in_marked_parent, write_file_atomic
from circuits.view.data import load_run, page_data

PAGE_NAME = "graph.html"
SCRIPTS = ("model.js", "graph.js", "panel.js", "main.js")
"""The page's scripts, in the order they run."""
SAVE_META = '<meta name="circuits-save" content="">'
"""Where the server puts the token that lets the page save groups (`circuits.view.server`)."""
_SLOT = re.compile(r"\{\{(?:TITLE|STYLE|DATA|GRAPH|SCRIPT)\}\}")


def _static(name: str) -> str:
    return resources.files("circuits.view").joinpath("static", name).read_text(encoding="utf-8")


def embed_json(data: Any) -> str:
    """`data` as JSON safe inside a `<script type="application/json">` element: `<`, `>` and
    `&` escaped, so no text in the data can close the element."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(data: dict[str, Any], graph: dict[str, Any]) -> str:
    """The page for `data` (`circuits.view.data.page_data`), embedding `graph` (graph.json) for
    the page's export of groups."""
    scripts = "\n".join(f"// ---- {name}\n{_static(name)}" for name in SCRIPTS)
    parts = {
        "{{TITLE}}": html.escape(f"{data['task']} on {data['model']} · circuit"),
        "{{STYLE}}": _static("viewer.css"),
        "{{DATA}}": embed_json(data),
        "{{GRAPH}}": embed_json(graph),
        "{{SCRIPT}}": f'"use strict";\n(() => {{\n{scripts}\n}})();',
    }
    template = _static("page.html")
    assert SAVE_META in template, "the template lost its save token slot"
    assert all(template.count(key) == 1 for key in parts), "a template slot is missing"
    # one pass, so that text inserted into one slot is never read as another slot
    return _SLOT.sub(lambda m: parts[m[0]], template)


def write_page(run_dir: Path, *, summary: dict[str, Any] | None = None) -> Path:
    """Write graph.html into the run directory `run_dir` from its files (`summary` in place of
    its summary.json) and record it in the directory's marker, if it has one yet (a run being
    written gets its marker, listing every file, when it is complete). Returns its path."""
    run_dir = Path(run_dir)
    run = load_run(run_dir, summary=summary)
    page = render_page(page_data(run), run.graph)
    path = write_file_atomic(run_dir / PAGE_NAME, page.encode("utf-8"))
    if read_marker(run_dir) is not None:
        record_in_marked_parent(path)
    return path
