"""Score one method's component scores against a reference circuit."""

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from circuits.scoring.metrics import precision_recall, roc_auc, top_k
from circuits.scoring.scores import ComponentScores


@dataclass(frozen=True, kw_only=True)
class MethodScore:
    method: str
    node_auc: float | None
    """ROC AUC of the method's node ranking against the reference circuit (None: one class)."""
    edge_auc: float | None
    """The same over component edges (None: the method scores no edges, or one class)."""
    precision: float
    recall: float
    """Of the components the method selects at its default threshold."""
    selected: list[str]
    top: list[str]
    """The method's k strongest components, k the size of the reference circuit."""
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def selected(scores: ComponentScores, cut: float) -> list[str]:
    """Components whose |score| reaches `cut` (in the method's own units)."""
    return [name for name, value in scores.nodes.items() if abs(value) >= cut]


def score_method(
    scores: ComponentScores,
    circuit: Collection[str],
    circuit_edges: Collection[str],
    all_edges: Sequence[str],
    cut: float,
) -> MethodScore:
    """Compare `scores` with a reference `circuit` (component names) and its edges; `all_edges`
    is every candidate edge (`"S->R"`), scored 0 where the method gives none; `cut` is the
    method's default threshold."""
    chosen = selected(scores, cut)
    precision, recall = precision_recall(chosen, circuit)
    edge_auc = None
    if scores.edges is not None:
        edge_auc = roc_auc({e: scores.edges.get(e, 0.0) for e in all_edges}, circuit_edges)
    return MethodScore(
        method=scores.method,
        node_auc=roc_auc(scores.nodes, circuit),
        edge_auc=edge_auc,
        precision=precision,
        recall=recall,
        selected=chosen,
        top=top_k(scores.nodes, len(circuit)),
        seconds=scores.seconds,
    )
