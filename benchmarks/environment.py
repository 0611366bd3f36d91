"""What every benchmark records with its results: the commit and the machine; and where the
results go (benchmarks/results/, ignored by git)."""

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": os.getloadavg(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def commit() -> str:
    """The checked-out commit, `-dirty` when the working tree has uncommitted changes."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=7"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_results(
    name: str, report: dict[str, Any], markdown: str, out: Path | None = None
) -> Path:
    """Write `report` (JSON) and `markdown` side by side as `<out>/<name>-<time>.{json,md}`;
    returns the common stem."""
    out = out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    return stem
