"""Published circuits as the task files state them (`[ground_truth.<model>]` tables)."""

from typing import Any

from circuits.causal.naming import parse_component


def published_components(ground_truth: dict[str, Any]) -> list[str]:
    """The components of a published circuit as the task files state it: IOI's head classes
    (`heads = { class = { heads = [...] } }`) or the first table listing `heads` (and `mlps`)."""
    heads = ground_truth.get("heads")
    if isinstance(heads, dict):
        names = [h for cls in heads.values() for h in cls["heads"]]
        return sorted({parse_component(h).name for h in names})
    for table in ground_truth.values():
        if isinstance(table, dict) and "heads" in table:
            found = {parse_component(h).name for h in table["heads"]}
            found |= {f"MLP{m}" for m in table.get("mlps", [])}
            return sorted(found)
    raise ValueError("ground truth lists no heads")
