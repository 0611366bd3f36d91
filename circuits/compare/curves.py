"""Circuit size at equal faithfulness: where each model's faithfulness-against-size curve first
reaches a level that every model reaches."""

Curve = list[tuple[int, float]]
"""(feature and error nodes kept by influence rank, faithfulness) pairs, sizes increasing."""

DEFAULT_CAP = 0.8
"""Highest automatic level: most circuits reach it well before their full size."""


def common_level(curves: list[Curve | None], *, cap: float = DEFAULT_CAP) -> float | None:
    """The lowest final faithfulness of the curves, capped at `cap`; None where no curve is
    known or that level is not above 0 (a size at faithfulness 0 means nothing)."""
    finals = [curve[-1][1] for curve in curves if curve]
    if not finals:
        return None
    level = min(cap, *finals)
    return level if level > 0 else None


def size_at(curve: Curve, level: float) -> float | None:
    """The smallest number of nodes at which `curve` reaches `level`, interpolated linearly
    between the last point below the level and the first point at or above it; None if the
    curve never reaches it."""
    points = sorted(curve)
    for i, (size, faith) in enumerate(points):
        if faith < level:
            continue
        if i == 0:
            return float(size)
        prev_size, prev_faith = points[i - 1]
        # prev_faith < level <= faith, so the fraction lies in (0, 1]
        fraction = (level - prev_faith) / (faith - prev_faith)
        return prev_size + fraction * (size - prev_size)
    return None
