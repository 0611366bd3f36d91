"""Ranking and set agreement between a method's component scores and reference labels."""

from collections.abc import Collection, Mapping


def roc_auc(scores: Mapping[str, float], positives: Collection[str]) -> float | None:
    """Area under the ROC curve of ranking the keys of `scores` by |score| against membership
    in `positives`, i.e. the curve traced as the pruning threshold falls from the largest score
    to zero. Ties count half (the Mann-Whitney statistic). None when every key is on one side."""
    from scipy.stats import rankdata

    keys = list(scores)
    labels = [k in positives for k in keys]
    n_pos = sum(labels)
    n_neg = len(keys) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata([abs(scores[k]) for k in keys])  # average ranks for ties
    rank_sum = sum(r for r, positive in zip(ranks, labels, strict=True) if positive)
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_recall(predicted: Collection[str], positives: Collection[str]) -> tuple[float, float]:
    """Precision and recall of a predicted set (1.0 for an empty prediction's precision)."""
    hits = len(set(predicted) & set(positives))
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(positives) if positives else 1.0
    return precision, recall


def top_k(scores: Mapping[str, float], k: int) -> list[str]:
    """The `k` keys of largest |score| (ties broken by the order of `scores`)."""
    order = sorted(range(len(scores)), key=lambda i: -abs(list(scores.values())[i]))
    keys = list(scores)
    return [keys[i] for i in order[:k]]
