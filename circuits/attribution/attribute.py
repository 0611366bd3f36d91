"""The full attribution graph of one prompt: every direct effect between active nodes.

One forward pass of the frozen replacement model (batch 1) records the autograd graph; each
backward pass then injects `batch_size` target rows at once (a feature's encoder direction at its
layer's MLP input, or a target's logit direction), vectorised over the rows by
`torch.autograd.grad(..., is_grads_batched=True)`, and reads the gradients at every source site.
An edge is the gradient at the source's site dotted with the vector the source writes:
`activation * W_dec[f]` for a feature, the error vector for an error node, the embedding for a
token.

Backward passes run side by side on `AttributionConfig.threads` worker threads, each of
their operations on one thread (see `threads`).
"""

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm import tqdm

from circuits.attribution.graph import Graph
from circuits.attribution.nodes import NodeIndex, NodeKind
from circuits.attribution.replacement import ReplacementModel, Replay, SourceScales, Trace
from circuits.attribution.targets import Target
from circuits.attribution.threads import engine_threads, ordered_map
from circuits.errors import AttributionError

R = TypeVar("R")

MAX_PREFIX_BUCKETS = 16
"""Most forward passes a row attributor makes (one per prefix length it cuts the prompt at)."""


@dataclass(frozen=True, kw_only=True)
class AttributionConfig:
    """How the full graph is computed and how much of it is kept."""

    batch_size: int = 64
    """Target rows per backward pass (the memory of a pass grows with it)."""
    max_edges_per_row: int | None = 2048
    """Keep only the strongest incoming edges of each node (None: every non-zero edge). Bounds
    memory by the number of edges kept instead of the square of the number of nodes; rows with
    fewer inputs (short prompts, early layers) keep all of theirs."""
    progress: bool = True
    threads: int | None = None
    """Backward passes run at once, on as many threads, each with torch's intra-op threads off
    (None: torch's thread count at the call). Intra-op threads wait for each other after every
    small operation and collapse on a busy machine; these do not (see `threads`)."""

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_edges_per_row is not None and self.max_edges_per_row < 1:
            raise ValueError(
                f"max_edges_per_row must be >= 1 or None, got {self.max_edges_per_row}"
            )


def node_index(trace: Trace, targets: list[Target]) -> NodeIndex:
    """The layout of `trace`'s graph: its tokens, active features, errors and `targets`."""
    rows = [
        torch.stack([torch.full_like(f.pos, layer), f.pos, f.feature], -1)
        for layer, f in enumerate(trace.features)
    ]
    features = torch.cat(rows) if rows else torch.empty(0, 3, dtype=torch.long)
    return NodeIndex(trace.tokens, features, trace.n_layers, [t.name for t in targets])


def constants(model: ReplacementModel, trace: Trace, targets: list[Target]) -> Tensor:
    """Each row node's value with every source removed (the contribution of biases alone)."""
    zeros = SourceScales.ones(trace)
    zeros = SourceScales(
        token=zeros.token * 0, feature=[s * 0 for s in zeros.feature], error=zeros.error * 0
    )
    with torch.no_grad():
        replay = model.replay(trace, zeros)
    return row_values(model, trace, targets, replay.mlp_in, replay.logits)[0]


def removal_scales(trace: Trace, index: NodeIndex, columns: list[int]) -> SourceScales:
    """Source scales for a batched replay whose copy i removes source `columns[i]` (a token,
    error or feature node) and keeps every other node at its recorded value."""
    scales = SourceScales.ones(trace, len(columns))
    for i, column in enumerate(columns):
        kind = index.kind(column)
        if kind == NodeKind.TOKEN:
            scales.token[i, column] = 0
        elif kind == NodeKind.ERROR:
            layer, pos = divmod(column - index.error_start, index.n_pos)
            scales.error[i, layer, pos] = 0
        elif kind == NodeKind.FEATURE:
            layer = int(index.features[column - index.feature_start, 0])
            scales.feature[layer][i, column - index.feature_slice(layer).start] = 0
        else:
            raise ValueError(f"node {column} is a target, not a source")
    return scales


def row_values(
    model: ReplacementModel,
    trace: Trace,
    targets: list[Target],
    mlp_in: list[Tensor],
    logits: Tensor,
) -> Float[Tensor, "batch n_rows"]:
    """Feature pre-activations and target values read from (batched) MLP inputs and logits, in
    row order."""
    values = []
    for layer, active in enumerate(trace.features):
        transcoder = model.transcoders[layer]
        W_enc = transcoder.W_enc.to(model.dtype)[:, active.feature]  # [d_model, n_active]
        x = mlp_in[layer][:, active.pos]  # [batch, n_active, d_model]
        values.append((x * W_enc.T).sum(-1) + transcoder.b_enc.to(model.dtype)[active.feature])
    for target in targets:
        values.append((logits[:, target.pos] @ target.direction.to(model.dtype))[:, None])
    return torch.cat(values, -1)


def attribute(
    model: ReplacementModel,
    tokens: Tensor,
    targets: list[Target],
    config: AttributionConfig | None = None,
    *,
    prompt: str = "",
) -> Graph:
    """The full attribution graph of `tokens` explaining `targets`."""
    config = config or AttributionConfig()
    with engine_threads(config.threads) as workers:
        return _attribute(model, tokens, targets, config, workers, prompt)


def _attribute(
    model: ReplacementModel,
    tokens: Tensor,
    targets: list[Target],
    config: AttributionConfig,
    workers: int,
    prompt: str,
) -> Graph:
    trace, index = prepare(model, tokens, targets)
    attributor = RowAttributor(model, trace, targets, index, config, workers=workers)
    n_rows = index.n_nodes - index.feature_start
    rows, cols, vals = [], [], []
    bar = tqdm(
        total=n_rows, desc="attribution", unit="row", disable=not config.progress, leave=False
    )
    cap = config.max_edges_per_row
    # each worker sparsifies its own block: only the edges kept wait to be gathered
    for picked, (r, c, v) in attributor.map_blocks(
        torch.arange(n_rows), lambda block: sparsify(block, cap)
    ):
        rows.append(picked[r])
        cols.append(c)
        vals.append(v)
        bar.update(len(picked))
    bar.close()
    return make_graph(
        model,
        trace,
        targets,
        index,
        (torch.cat(rows), torch.cat(cols), torch.cat(vals)),
        prompt=prompt,
        config=asdict(config) | {"engine": "full"},
    )


def prepare(
    model: ReplacementModel, tokens: Tensor, targets: list[Target]
) -> tuple[Trace, NodeIndex]:
    """Trace `tokens` and lay out the graph's nodes; checks the targets."""
    if not targets:
        raise AttributionError("attribution needs at least one target")
    trace = model.trace(tokens)
    for target in targets:
        if not -trace.n_pos <= target.pos < trace.n_pos:
            raise AttributionError(
                f"target {target.name!r} reads position {target.pos}, outside the "
                f"{trace.n_pos}-token prompt"
            )
    return trace, node_index(trace, targets)


def make_graph(
    model: ReplacementModel,
    trace: Trace,
    targets: list[Target],
    index: NodeIndex,
    edges: tuple[Tensor, Tensor, Tensor],
    *,
    prompt: str,
    config: dict,
) -> Graph:
    """A `Graph` from edges given as (row offset from the first feature, column, weight)."""
    rows, cols, weights = edges
    values = row_values(model, trace, targets, [x[None] for x in trace.mlp_in], trace.logits[None])
    return Graph(
        index=index,
        edge_rows=rows + index.feature_start,
        edge_cols=cols,
        edge_weights=weights,
        activations=torch.cat([f.activation for f in trace.features]),
        row_values=values[0],
        row_constants=constants(model, trace, targets),
        targets=targets,
        prompt=prompt,
        model=model.model_id,
        transcoders=model.transcoders_id,
        config=config,
    )


class RowAttributor:
    """Computes the incoming edges of any row nodes of one prompt's graph.

    Rows are taken in order of position and in blocks of `batch`: a forward pass of the frozen
    prompt cut after the block's last position (later positions cannot affect it), then one
    backward pass per block, vectorised over its rows (`Injections.gradients`), brings back the
    gradients at every source site. Prefix lengths are rounded up to a few buckets, so a
    handful of forward passes serve all blocks. Blocks run on `workers` threads at once (call
    inside `threads.engine_threads`).
    """

    def __init__(
        self,
        model: ReplacementModel,
        trace: Trace,
        targets: list[Target],
        index: NodeIndex,
        config: AttributionConfig,
        *,
        workers: int = 1,
    ) -> None:
        self.model, self.trace, self.targets, self.index = model, trace, targets, index
        self.workers = workers
        n_rows = index.n_nodes - index.feature_start
        self.batch = min(config.batch_size, n_rows)
        self.injections = Injections(model, trace, targets)
        self.sources = SourceVectors(model, trace, index)
        n_buckets = min(MAX_PREFIX_BUCKETS, max(1, n_rows // self.batch), trace.n_pos)
        self.bucket = -(-trace.n_pos // n_buckets)
        self._replays: dict[int, tuple[list[Tensor], Replay]] = {}
        """Live replays by prefix length."""
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self.n_backward = 0
        self.n_forward = 0

    def incoming(self, rows: Tensor) -> Float[Tensor, "n_rows n_sources"]:
        """Dense incoming edges of `rows` (offsets from the first feature node), in order."""
        done = list(self.blocks(rows))
        if not done:
            n_sources = self.index.feature_start + self.index.n_features
            return torch.zeros(0, n_sources, dtype=self.model.dtype)
        picked, blocks = zip(*done, strict=True)
        return torch.cat(blocks)[torch.cat(picked).argsort()]

    def blocks(self, rows: Tensor) -> Iterator[tuple[Tensor, Float[Tensor, "n n_sources"]]]:
        """(indices into `rows`, their dense incoming edges) block by block, in the order that
        needs the fewest forward passes."""
        return self.map_blocks(rows, lambda block: block)

    def map_blocks(
        self, rows: Tensor, finish: Callable[[Float[Tensor, "n n_sources"]], R]
    ) -> Iterator[tuple[Tensor, R]]:
        """(indices into `rows`, `finish` of their dense incoming edges) block by block, as
        `blocks`; `finish` runs on the worker thread that computed the block."""
        positions = self.injections.positions(rows)
        # blocks share a prefix bucket and, within it, a layer: a block of early-layer rows
        # only runs the backward pass through the layers below it
        bucket = positions // self.bucket
        layers = self.injections.layers(rows)
        n_pos, n_layers = self.trace.n_pos, self.model.n_layers + 1
        order = ((bucket * n_layers + layers) * n_pos + positions).argsort(stable=True)
        picks = [order[lo : lo + self.batch] for lo in range(0, len(rows), self.batch)]
        lengths = [
            min(-(-(int(positions[p].max()) + 1) // self.bucket) * self.bucket, self.trace.n_pos)
            for p in picks
        ]
        # a prefix's replay is dropped once its last block is done (the last one is kept for
        # the next call); replays are built by the worker that first needs one, one at a time
        # (hooks on the shared model), while the other workers run their backward passes
        left = Counter(lengths)
        with self._lock:
            self._replays = {n: r for n, r in self._replays.items() if n in left}

        def block(task: tuple[int, Tensor]) -> tuple[Tensor, R]:
            length, picked = task
            probes, replay = self._replay_of(length)
            chunk = rows[picked].tolist()
            grads = self.injections.gradients(replay, probes, chunk)
            del replay
            full = [p.new_zeros(len(chunk), self.trace.n_pos, p.shape[-1]) for p in probes]
            for g, f in zip(grads, full, strict=True):
                if g is not None:
                    f[:, :length] = g
            with self._lock:
                left[length] -= 1
                if not left[length] and length != lengths[-1]:
                    del self._replays[length]
            return picked, finish(self.sources.edges(full, len(chunk)))

        # backward passes side by side: autograd allows concurrent passes through a graph
        # kept with `retain_graph`
        for out in ordered_map(block, zip(lengths, picks, strict=True), self.workers):
            self.n_backward += 1
            yield out

    def _replay_of(self, length: int) -> tuple[list[Tensor], Replay]:
        """The replay of the first `length` tokens, built once."""
        with self._build_lock:
            with self._lock:
                done = self._replays.get(length)
            if done is not None:
                return done
            trace = self.trace.prefix(length)
            d_model = trace.embedding.shape[-1]
            probes = [
                torch.zeros(1, length, d_model, dtype=self.model.dtype, requires_grad=True)
                for _ in range(self.model.n_layers + 1)
            ]
            with torch.enable_grad():  # grad mode is per thread
                replay = self.model.replay(trace, SourceScales.ones(trace), probes, lean=True)
            with self._lock:
                self.n_forward += 1
                self._replays[length] = (probes, replay)
            return probes, replay


class Injections:
    """The per-row gradients to inject: a feature row injects its encoder column at its MLP
    input, a target row its logit direction at its position."""

    def __init__(self, model: ReplacementModel, trace: Trace, targets: list[Target]) -> None:
        layers, pos, directions = [], [], []
        for layer, active in enumerate(trace.features):
            W_enc = model.transcoders[layer].W_enc.to(model.dtype)
            layers.append(torch.full_like(active.pos, layer))
            pos.append(active.pos)
            directions.append(W_enc[:, active.feature].T)
        self.layer = torch.cat(layers)
        self.pos = torch.cat(pos)
        self.enc = torch.cat(directions)
        self.n_features = len(self.layer)
        self.n_layers = model.n_layers
        self.target_pos = torch.tensor([t.pos % trace.n_pos for t in targets], dtype=torch.long)
        W_U = model.bridge.W_U.to(model.dtype)  # [d_model, d_vocab]
        self.unembedded = torch.stack([W_U @ t.direction.to(model.dtype) for t in targets])
        """Each target's direction pulled back through the unembedding: [n_targets, d_model]."""

    def layers(self, rows: Tensor) -> Tensor:
        """The layer each row reads (targets: one past the last)."""
        is_feature = rows < self.n_features
        out = torch.full_like(rows, self.n_layers)
        out[is_feature] = self.layer[rows[is_feature]]
        return out

    def positions(self, rows: Tensor) -> Tensor:
        """The position each row reads."""
        is_feature = rows < self.n_features
        out = self.target_pos[(rows - self.n_features).clamp(min=0)]
        out[is_feature] = self.pos[rows[is_feature]]
        return out

    def gradients(
        self, replay: Replay, probes: list[Tensor], rows: list[int]
    ) -> list[Float[Tensor, "n_rows ..."] | None]:
        """The gradient of each of `rows` at each probe of a batch-1 `replay` (None where no row
        reaches a probe): one backward pass, vectorised over the rows."""
        outputs = [*replay.mlp_in, replay.final]
        cotangents = [x.new_zeros(len(rows), *x.shape) for x in outputs]
        row = torch.tensor(rows, dtype=torch.long)
        copy = torch.arange(len(rows))
        is_feature = row < self.n_features
        feature, target = row[is_feature], row[~is_feature] - self.n_features
        cotangents[-1][copy[~is_feature], 0, self.target_pos[target]] = self.unembedded[target]
        layer = self.layer[feature]
        for out in layer.unique().tolist():
            mine = layer == out
            picked = feature[mine]
            cotangents[out][copy[is_feature][mine], 0, self.pos[picked]] = self.enc[picked]
        used = sorted(set(layer.tolist()) | ({self.n_layers} if len(target) else set()))
        grads = torch.autograd.grad(
            [outputs[i] for i in used],
            probes,
            grad_outputs=[cotangents[i] for i in used],
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=True,
        )
        return [None if g is None else g[:, 0] for g in grads]

    def objective(self, mlp_in: list[Tensor], final: Tensor, rows: list[int]) -> Tensor:
        """`sum_i <injection of rows[i], copy i>`: its gradient at copy i is row i's."""
        row = torch.tensor(rows, dtype=torch.long)
        copy = torch.arange(len(rows))
        total = final.new_zeros(())
        is_feature = row < self.n_features
        # no feature active anywhere (e.g. empty MLPs): only targets to read
        for layer, x in enumerate(mlp_in if self.n_features else []):
            mine = is_feature & (self.layer[row.clamp(max=self.n_features - 1)] == layer)
            if bool(mine.any()):
                picked = x[copy[mine], self.pos[row[mine]]]  # [n, d_model]
                total = total + (picked * self.enc[row[mine]]).sum()
        if bool((~is_feature).any()):
            target = row[~is_feature] - self.n_features
            picked = final[copy[~is_feature], self.target_pos[target]]  # [n, d_model]
            total = total + (picked * self.unembedded[target]).sum()
        return total


def site_gradients(
    model: ReplacementModel,
    trace: Trace,
    targets: list[Target],
    row_weights: Float[Tensor, " n_rows"],
) -> list[Float[Tensor, "n_pos d_model"]]:
    """The gradient of `sum_r row_weights[r] * row r` at every source site (each MLP output,
    then the embedding): one backward pass. With `row_weights` the rows' effects per unit on
    the metric (`influence.total_effects`), it is the metric's gradient with downstream features
    responding linearly, so any change at a site can be scored by a dot product."""
    d_model = trace.embedding.shape[-1]
    probes = [
        torch.zeros(1, trace.n_pos, d_model, dtype=model.dtype, requires_grad=True)
        for _ in range(model.n_layers + 1)
    ]
    injections = Injections(model, trace, targets)
    with torch.enable_grad():
        replay = model.replay(trace, SourceScales.ones(trace), probes, lean=True)
        total = replay.final.new_zeros(())
        for row in row_weights.nonzero().squeeze(1).tolist():
            weight = float(row_weights[row])
            total = total + weight * injections.objective(replay.mlp_in, replay.final, [row])
        grads = torch.autograd.grad(total, probes, allow_unused=True)
    return [
        torch.zeros(trace.n_pos, d_model, dtype=model.dtype) if g is None else g[0] for g in grads
    ]


class SourceVectors:
    """What each source writes into the model, laid out so that a block of edges is one batched
    matrix product per layer: the decoder rows of the features active at each position, scaled
    by their activations and padded to the busiest position."""

    def __init__(self, model: ReplacementModel, trace: Trace, index: NodeIndex) -> None:
        self.trace, self.index = trace, index
        self.written: list[Tensor] = []
        """Per layer: [n_pos, d_model, max_active_per_pos] (zeros where padded)."""
        self.slots: list[tuple[Tensor, Tensor]] = []
        """Per layer: (position, slot) of each active feature, in column order."""
        for layer, active in enumerate(trace.features):
            W_dec = model.transcoders[layer].W_dec
            vectors = active.activation[:, None] * W_dec[active.feature].to(model.dtype)
            counts = torch.bincount(active.pos, minlength=trace.n_pos)
            firsts = counts.cumsum(0) - counts  # features are sorted by position
            slot = torch.arange(len(active)) - firsts[active.pos]
            width = int(counts.max()) if len(active) else 0
            padded = vectors.new_zeros(trace.n_pos, width, vectors.shape[-1])
            padded[active.pos, slot] = vectors
            self.written.append(padded.transpose(1, 2))
            self.slots.append((active.pos, slot))

    def edges(self, grads: list[Tensor], n: int) -> Float[Tensor, "n n_sources"]:
        """Incoming edges of `n` rows from the gradients at the source sites (copy i holds row
        i's): the gradient at each site dotted with what the source writes there."""
        trace, index = self.trace, self.index
        block = grads[-1].new_zeros(n, index.feature_start + index.n_features)
        block[:, : index.n_pos] = (grads[-1][:n] * trace.embedding).sum(-1)
        for layer, written in enumerate(self.written):
            grad = grads[layer][:n]
            columns = index.feature_slice(layer)
            pos, slot = self.slots[layer]
            # [n_pos, n, d_model] @ [n_pos, d_model, width] -> [n_pos, n, width]
            per_pos = torch.bmm(grad.transpose(0, 1), written)
            block[:, columns] = per_pos[pos, :, slot].T
            first = index.error(layer, 0)
            block[:, first : first + index.n_pos] = (grad * trace.errors[layer]).sum(-1)
        return block


def sparsify(
    block: Float[Tensor, "n n_sources"], max_per_row: int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """(row, column, weight) of the non-zero entries of `block`, at most `max_per_row` (the
    largest in absolute value) per row."""
    if max_per_row is not None and max_per_row < block.shape[1]:
        over = ((block != 0).sum(1) > max_per_row).nonzero().squeeze(1)
        if len(over):  # only rows with more inputs than the cap are cut
            crowded = block[over]
            size = crowded.abs()
            # the cap-th largest size per row, by selection (numpy's is ~4x faster than topk)
            kth = size.shape[1] - max_per_row
            threshold = torch.from_numpy(np.partition(size.numpy(), kth, axis=1)[:, kth : kth + 1])
            above = size > threshold
            # ties at the threshold: the first ones, up to the cap
            tied = size == threshold
            room = max_per_row - above.sum(1, keepdim=True)
            keep = above | (tied & (tied.cumsum(1) <= room))
            block = block.index_copy(0, over, torch.where(keep, crowded, 0))
    rows, cols = block.nonzero(as_tuple=True)
    return rows, cols, block[rows, cols]
