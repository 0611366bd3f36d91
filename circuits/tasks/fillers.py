"""Filler values: number ranges, and the values of one prompt drawn under the task's constraints.

Each filler has a list of values. Within one prompt a filler has one value, however often it
appears. `distinct` groups must get different values; `aligned` groups are drawn at the same
index of their (equally long) lists, which couples them: singular noun with singular verb.
"""

import random
import re
from collections.abc import Mapping, Sequence

RANGE = re.compile(r"(\d+)\.\.(\d+)")


def parse_range(text: str) -> tuple[str, ...]:
    """`"02..98"` -> `("02", "03", ..., "98")`: inclusive, padded to the lower bound's width."""
    match = RANGE.fullmatch(text)
    if match is None:
        raise ValueError(f'range {text!r} is not LOW..HIGH (e.g. "02..98")')
    low, high = int(match[1]), int(match[2])
    if low > high:
        raise ValueError(f"range {text!r} is empty; write the lower bound first")
    width = len(match[1])
    return tuple(f"{n:0{width}d}" for n in range(low, high + 1))


class Draw:
    """The filler values of one prompt, each drawn the first time it is asked for."""

    def __init__(
        self,
        *,
        fillers: Mapping[str, Sequence[str]],
        aligned: Sequence[Sequence[str]],
        distinct: Sequence[Sequence[str]],
        fixed: Mapping[str, str],
        rng: random.Random,
    ) -> None:
        self.fillers = fillers
        self.rng = rng
        self.values: dict[str, str] = dict(fixed)
        self.aligned = {name: tuple(group) for group in aligned for name in group}
        self.rivals: dict[str, set[str]] = {}
        for group in distinct:
            for name in group:
                self.rivals.setdefault(name, set()).update(n for n in group if n != name)

    def _free(self, name: str, value: str) -> bool:
        taken = {self.values[r] for r in self.rivals.get(name, ()) if r in self.values}
        return value not in taken

    def __call__(self, name: str) -> str:
        if name not in self.values:
            group = self.aligned.get(name, (name,))
            n_values = len(self.fillers[name])
            free = [
                i for i in range(n_values) if all(self._free(m, self.fillers[m][i]) for m in group)
            ]
            if not free:
                raise ValueError(
                    f"cannot draw {name}: each of its {n_values} values is taken by a filler "
                    "it must differ from; give it more values or relax [prompts] distinct"
                )
            index = self.rng.choice(free)
            for member in group:
                self.values[member] = self.fillers[member][index]
        return self.values[name]
