"""What a task run carries from step to step, as two typed values: what was measured on the
prompts (`Measured`) and which nodes and edges became the circuit (`Selection`)."""

from dataclasses import dataclass

from torch import Tensor

from circuits.attribution.graph import Graph
from circuits.attribution.replacement import ReplacementModel
from circuits.run.aggregate import MergedGraph
from circuits.run.config import RunConfig
from circuits.run.select import Ranking
from circuits.run.validate import NodeRecord
from circuits.tasks import PromptSet


@dataclass(frozen=True)
class Measured:
    """The prompts of a run and what was measured on each."""

    model: ReplacementModel
    prompt_set: PromptSet
    config: RunConfig
    graphs: list[Graph]
    """Each prompt's attribution graph."""
    names: list[list[str]]
    """Each prompt's role name at every position."""
    records: list[tuple[NodeRecord, NodeRecord]]
    """Each prompt's feature and error values on its clean and its corrupted prompt."""


@dataclass(frozen=True)
class Selection:
    """The prompts' graphs merged by role, and the circuit chosen in them."""

    merged: MergedGraph
    ranking: Ranking
    """Feature and error nodes by score."""
    circuit_mask: Tensor
    """Merged nodes in the circuit."""
    edge_mask: Tensor
    """Merged edges in the circuit."""
