"""Configurations: of one transcoder (kind, widths, sparsity), of harvesting, of training.

Plain dataclasses without heavy imports, so that the command line starts fast."""

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SPARSITY_FIELDS = ("k", "l1_coefficient", "l0_coefficient")
"""Fields that only some kinds use: required by the kinds that name them, None for the others."""
SPARSITY_DEFAULTS: dict[str, float] = {"k": 32, "l1_coefficient": 1e-3, "l0_coefficient": 1e-3}
"""Starting points for the sparsity fields (for losses normalised to FVU; see `train`)."""
DEFAULT_EXPANSION = 16
"""Default d_transcoder / d_model."""
SCHEDULES = ("linear", "cosine")
"""Shapes of the learning-rate decay."""


@dataclass(frozen=True, kw_only=True)
class TranscoderConfig:
    """One transcoder: reads `blocks.L.mlp.hook_in` [d_model], predicts `blocks.L.mlp.hook_out`."""

    kind: str = "topk"
    """Activation kind, a key of `transcoders.activations.ACTIVATIONS` (`transcoders kinds`)."""
    d_model: int
    """Width of the MLP input and output (the model's residual stream)."""
    d_transcoder: int
    """Number of features."""
    k: int | None = None
    """Active features per token (topk) or on average per token over a batch (batchtopk)."""
    l1_coefficient: float | None = None
    """Weight of the L1 penalty on features times decoder row norms (relu)."""
    l0_coefficient: float | None = None
    """Weight of the L0 penalty, trained with straight-through gradients (jumprelu)."""
    skip: bool = False
    """Add a linear skip path `x @ W_skip` [d_model, d_model] to the output."""
    normalize_decoder: bool = True
    """Rescale decoder rows to unit norm after every optimizer step (scale lives in features)."""
    jumprelu_bandwidth: float = 0.01
    """Width of the rectangle kernel of the straight-through threshold gradient (jumprelu)."""
    jumprelu_init_threshold: float = 0.01
    """Initial per-feature threshold (jumprelu)."""

    def __post_init__(self) -> None:
        from transcoders.activations import ACTIVATIONS

        if self.kind not in ACTIVATIONS:
            raise ValueError(f"kind: unknown {self.kind!r}; known: {', '.join(ACTIVATIONS)}")
        kind = ACTIVATIONS[self.kind]
        if kind.module is None:
            raise ValueError(f"kind: {self.kind!r} has no trainable module")
        for name in ("d_model", "d_transcoder"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in SPARSITY_FIELDS:
            value = getattr(self, name)
            if name in kind.params and value is None:
                raise ValueError(f"{name} is required for kind {self.kind!r}")
            if name not in kind.params and value is not None:
                raise ValueError(f"{name} is not used by kind {self.kind!r}; leave it None")
            if value is not None and value <= 0 and name == "k":
                raise ValueError(f"k must be positive, got {value}")
            if value is not None and value < 0:
                raise ValueError(f"{name} must be non-negative, got {value}")
        if self.k is not None and self.k > self.d_transcoder:
            raise ValueError(f"k must be at most d_transcoder {self.d_transcoder}, got {self.k}")
        for name in ("jumprelu_bandwidth", "jumprelu_init_threshold"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TranscoderConfig":
        """The config `data` describes; unknown keys are refused (ValueError naming them)."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown transcoder config keys: {sorted(unknown)}")
        return cls(**data)


def default_config(*, kind: str, d_model: int, **overrides: Any) -> TranscoderConfig:
    """A config of `kind` for width `d_model`: d_transcoder DEFAULT_EXPANSION x d_model and the
    kind's sparsity fields from SPARSITY_DEFAULTS, unless given in `overrides` (None = unset)."""
    from transcoders.activations import ACTIVATIONS

    if kind not in ACTIVATIONS:
        raise ValueError(f"kind: unknown {kind!r}; known: {', '.join(ACTIVATIONS)}")
    values: dict[str, Any] = {"d_transcoder": DEFAULT_EXPANSION * d_model}
    values.update({name: SPARSITY_DEFAULTS[name] for name in ACTIVATIONS[kind].params})
    values["k"] = int(values["k"]) if "k" in values else None
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TranscoderConfig(kind=kind, d_model=d_model, **values)


@dataclass(frozen=True, kw_only=True)
class HarvestConfig:
    """How activations are drawn from a token array."""

    seq_len: int = 256
    """Tokens per window, counting the end-of-text token that opens it (at most n_ctx)."""
    windows_per_forward: int = 16
    """Windows per forward pass of the model."""
    buffer_tokens: int = 262_144
    """Token rows shuffled together (one chunk); 512 MiB at 2 layers x d_model 128."""
    include_bos: bool = False
    """Keep position 0 of each window (its activations are outliers; left out by default)."""
    seed: int = 0
    """Seed of the windows drawn and of the shuffle."""

    def __post_init__(self) -> None:
        for name in ("seq_len", "windows_per_forward", "buffer_tokens"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.seq_len < 2 and not self.include_bos:
            raise ValueError(f"seq_len must be at least 2 without the BOS, got {self.seq_len}")

    @property
    def rows_per_window(self) -> int:
        return self.seq_len if self.include_bos else self.seq_len - 1

    @property
    def windows_per_chunk(self) -> int:
        return math.ceil(self.buffer_tokens / self.rows_per_window)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How a transcoder set is trained; the batch of step s depends only on (seed, s)."""

    n_tokens: int = 4_000_000
    """Training tokens (each feeds every layer); steps = n_tokens // batch_size. A zoo model may
    register another count (`ZooModel.transcoder_tokens`): more tokens reconstruct better but
    spread a task over more features (docs/transcoders.md)."""
    batch_size: int = 4096
    """Token rows per optimizer step."""
    lr: float = 1e-3
    """Peak Adam learning rate."""
    warmup_steps: int = 50
    """Linear warm-up from zero."""
    decay_fraction: float = 0.3
    """Share of the final steps over which the rate decays to zero."""
    schedule: str = "cosine"
    """Shape of the decay: `linear` or `cosine`."""
    auxk_alpha: float = 1 / 32
    """Weight of the AuxK loss on dead features (0 turns it off)."""
    k_aux: int | None = None
    """Dead features used by AuxK per token; None: d_model // 2."""
    dead_after_tokens: int = 500_000
    """A feature not active for this many tokens counts as dead (for AuxK)."""
    centered_init: bool = True
    """Start each encoder bias at `-mean(x) @ W_enc` over the first batch, so that every
    feature's pre-activations start centred on zero. Without it, features whose random
    direction points away from the mean MLP input never fire, and AuxK cannot revive them (their
    pre-activations are negative everywhere, so its ReLU passes no gradient; docs/transcoders.md
    has what it changed)."""
    resample_at: tuple[float, ...] = ()
    """Fractions of training after which dead features are re-initialised on the inputs the set
    reconstructs worst (empty: never; AuxK alone then remedies dead features)."""
    checkpoint_every: int = 200
    """Steps between checkpoints."""
    seed: int = 0
    """Seed of the initial weights and (through `harvest.seed`) of the batches."""
    harvest: HarvestConfig = field(default_factory=HarvestConfig)
    """How activations are drawn and shuffled."""

    def __post_init__(self) -> None:
        for name in ("n_tokens", "batch_size", "checkpoint_every", "dead_after_tokens"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_tokens < self.batch_size:
            raise ValueError(f"n_tokens {self.n_tokens} is less than one batch {self.batch_size}")
        if self.lr <= 0 or self.warmup_steps < 0 or self.auxk_alpha < 0:
            raise ValueError("lr must be positive, warmup_steps and auxk_alpha non-negative")
        if not 0 <= self.decay_fraction <= 1:
            raise ValueError(f"decay_fraction must be in [0, 1], got {self.decay_fraction}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if any(not 0 < f < 1 for f in self.resample_at):
            raise ValueError(f"resample_at fractions must be in (0, 1), got {self.resample_at}")
        if self.k_aux is not None and self.k_aux <= 0:
            raise ValueError(f"k_aux must be positive, got {self.k_aux}")
        if self.batch_size > self.harvest.buffer_tokens:
            raise ValueError(
                f"batch_size {self.batch_size} exceeds harvest.buffer_tokens "
                f"{self.harvest.buffer_tokens}"
            )
        if self.harvest.seed != self.seed:
            raise ValueError(f"harvest.seed {self.harvest.seed} differs from seed {self.seed}")

    @property
    def n_steps(self) -> int:
        return self.n_tokens // self.batch_size
