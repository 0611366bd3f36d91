"""Sparse activation functions of transcoders, behind one registry keyed by kind.

Each kind maps encoder pre-activations to sparse feature activations. A kind has two forms: a
plain function for inference (`build`), and a module (`module`) that a `Transcoder` owns, which
adds the kind's training behaviour: its sparsity penalty, straight-through gradients, and
thresholds learnt from batches. In eval mode a module computes exactly what `build` computes.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

Activation = Callable[[Float[Tensor, "... d_transcoder"]], Float[Tensor, "... d_transcoder"]]

THRESHOLD_MOMENTUM = 0.99
"""Batchtopk: weight of the old estimate in the running mean of the inference threshold."""


@runtime_checkable
class SparsityConfig(Protocol):
    """The fields of a transcoder's config that its activation module reads (a
    `transcoders.config.TranscoderConfig` has them; this module does not import it, since the
    config validates its kind against the registry here)."""

    @property
    def d_transcoder(self) -> int: ...
    @property
    def k(self) -> int | None: ...
    @property
    def l1_coefficient(self) -> float | None: ...
    @property
    def l0_coefficient(self) -> float | None: ...
    @property
    def jumprelu_bandwidth(self) -> float: ...
    @property
    def jumprelu_init_threshold(self) -> float: ...


class SparseActivation(nn.Module):
    """A kind's activation with its training behaviour; eval mode is the inference function."""

    def forward(self, pre: Float[Tensor, "... d_transcoder"]) -> Float[Tensor, "... d_transcoder"]:
        raise NotImplementedError

    def penalty(
        self,
        pre: Float[Tensor, "batch d_transcoder"],
        features: Float[Tensor, "batch d_transcoder"],
        decoder_norms: Float[Tensor, " d_transcoder"],
    ) -> Float[Tensor, ""]:
        """The sparsity penalty added to the training loss (mean over tokens); none by default."""
        return pre.new_zeros(())

    def after_step(self) -> None:
        """Restore invariants after an optimizer step (e.g. non-negative thresholds)."""

    def train_indices(
        self, pre: Float[Tensor, "batch d_transcoder"]
    ) -> Int[Tensor, "batch k"] | None:
        """For kinds that keep a fixed number of features per token in training: which ones
        (their activations are the pre-activations there, after ReLU), so that training can
        skip the dense feature matrix. None for the other kinds."""
        return None


@dataclass(frozen=True, kw_only=True)
class ActivationKind:
    """A registered activation: its name, what it is for, and how to build it."""

    name: str
    """Key used in config files and on the command line."""
    summary: str
    """One line for `transcoders kinds`."""
    build: Callable[..., Activation]
    """Factory of the inference function, taking the kind's parameters (`k`, `threshold`)."""
    module: Callable[[SparsityConfig], SparseActivation] | None = None
    """Factory of the trainable module; None for a kind that can only be used for inference."""
    params: tuple[str, ...] = ()
    """The `TranscoderConfig` sparsity fields this kind requires (e.g. `k`)."""


ACTIVATIONS: dict[str, ActivationKind] = {}


def register(kind: ActivationKind) -> ActivationKind:
    if kind.name in ACTIVATIONS:
        raise ValueError(f"duplicate activation kind: {kind.name!r}")
    ACTIVATIONS[kind.name] = kind
    return kind


def relu() -> Activation:
    return torch.relu


def topk(*, k: int) -> Activation:
    """Keep the k largest pre-activations per token (after ReLU), zero the rest."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")

    def apply(pre: Tensor) -> Tensor:
        values, indices = pre.topk(min(k, pre.shape[-1]), dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, values.relu())

    return apply


def signed_topk(*, k: int) -> Activation:
    """Keep the k largest pre-activations per token as they are (negative ones too)."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")

    def apply(pre: Tensor) -> Tensor:
        values, indices = pre.topk(min(k, pre.shape[-1]), dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, values)

    return apply


def jumprelu(*, threshold: Tensor) -> Activation:
    """Pass a pre-activation only where it exceeds its feature's threshold."""
    return lambda pre: pre * (pre > threshold)


def batch_topk(pre: Float[Tensor, "... d_transcoder"], k: int) -> Float[Tensor, "... d_transcoder"]:
    """Keep the k x n_tokens largest pre-activations (after ReLU) of the whole batch."""
    flat = pre.relu().flatten()
    n_tokens = flat.numel() // pre.shape[-1]
    values, indices = flat.topk(min(k * n_tokens, flat.numel()))
    return torch.zeros_like(flat).scatter(0, indices, values).reshape(pre.shape)


class ReLUActivation(SparseActivation):
    """ReLU; the penalty is L1 on features weighted by their decoder row norms."""

    def __init__(self, config: SparsityConfig) -> None:
        super().__init__()
        assert config.l1_coefficient is not None
        self.l1_coefficient = config.l1_coefficient

    def forward(self, pre: Float[Tensor, "... d_transcoder"]) -> Float[Tensor, "... d_transcoder"]:
        return pre.relu()

    def penalty(
        self,
        pre: Float[Tensor, "batch d_transcoder"],
        features: Float[Tensor, "batch d_transcoder"],
        decoder_norms: Float[Tensor, " d_transcoder"],
    ) -> Float[Tensor, ""]:
        return self.l1_coefficient * (features * decoder_norms).sum(-1).mean()


class TopKActivation(SparseActivation):
    """The k largest per token, in training and at inference alike."""

    def __init__(self, config: SparsityConfig) -> None:
        super().__init__()
        assert config.k is not None
        self.k = config.k

    def forward(self, pre: Float[Tensor, "... d_transcoder"]) -> Float[Tensor, "... d_transcoder"]:
        return topk(k=self.k)(pre)

    def train_indices(self, pre: Float[Tensor, "batch d_transcoder"]) -> Int[Tensor, "batch k"]:
        return pre.topk(min(self.k, pre.shape[-1]), dim=-1).indices


class SignedTopKActivation(SparseActivation):
    """The k largest per token with their signs kept (no ReLU): circuit-tracer's `TopK`
    (`circuit_tracer/transcoder/activation_functions.py`), so that sets it wrote load exactly.
    It differs from `topk` only where a kept pre-activation is negative."""

    def __init__(self, config: SparsityConfig) -> None:
        super().__init__()
        assert config.k is not None
        self.k = config.k

    def forward(self, pre: Float[Tensor, "... d_transcoder"]) -> Float[Tensor, "... d_transcoder"]:
        return signed_topk(k=self.k)(pre)


class BatchTopKActivation(SparseActivation):
    """Top k x batch over the batch in training; at inference a JumpReLU whose (global)
    threshold is the running mean of the smallest value kept in training batches."""

    threshold: Tensor

    def __init__(self, config: SparsityConfig) -> None:
        super().__init__()
        assert config.k is not None
        self.k = config.k
        # Zero means "not estimated yet" (the smallest kept value of a batch is positive).
        self.register_buffer("threshold", torch.zeros(config.d_transcoder))

    def forward(self, pre: Float[Tensor, "... d_transcoder"]) -> Float[Tensor, "... d_transcoder"]:
        if not self.training:
            return jumprelu(threshold=self.threshold)(pre)
        features = batch_topk(pre, self.k)
        with torch.no_grad():
            kept = features[features > 0]
            if kept.numel():
                smallest = kept.min()
                if bool((self.threshold == 0).all()):
                    self.threshold.fill_(smallest)
                else:
                    self.threshold.lerp_(smallest.expand_as(self.threshold), 1 - THRESHOLD_MOMENTUM)
        return features


class _JumpReLUFunction(torch.autograd.Function):
    """z * H(z - t); the threshold's gradient uses a rectangle-kernel pseudo-derivative."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        window = ((pre - threshold).abs() < ctx.bandwidth / 2).to(pre.dtype)
        grad_pre = grad * (pre > threshold)
        grad_threshold = -(threshold / ctx.bandwidth) * window * grad
        return grad_pre, grad_threshold.reshape(-1, pre.shape[-1]).sum(0), None


class _StepFunction(torch.autograd.Function):
    """H(z - t), with the same pseudo-derivative for t and none for z (the L0 count)."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        window = ((pre - threshold).abs() < ctx.bandwidth / 2).to(pre.dtype)
        grad_threshold = -(1.0 / ctx.bandwidth) * window * grad
        return None, grad_threshold.reshape(-1, pre.shape[-1]).sum(0), None


class JumpReLUActivation(SparseActivation):
    """A learnt threshold per feature (Rajamanoharan et al. 2024), with an L0 penalty; both are
    trained through straight-through estimators with a rectangle kernel."""

    def __init__(self, config: SparsityConfig) -> None:
        super().__init__()
        assert config.l0_coefficient is not None
        self.l0_coefficient = config.l0_coefficient
        self.bandwidth = config.jumprelu_bandwidth
        self.threshold = nn.Parameter(
            torch.full((config.d_transcoder,), config.jumprelu_init_threshold)
        )

    def forward(self, pre: Float[Tensor, "... d_transcoder"]) -> Float[Tensor, "... d_transcoder"]:
        if not self.training:  # thresholds are clamped to >= 0, so this is also zero below 0
            return jumprelu(threshold=self.threshold)(pre)
        out = _JumpReLUFunction.apply(pre.relu(), self.threshold, self.bandwidth)
        assert isinstance(out, Tensor)
        return out

    def penalty(
        self,
        pre: Float[Tensor, "batch d_transcoder"],
        features: Float[Tensor, "batch d_transcoder"],
        decoder_norms: Float[Tensor, " d_transcoder"],
    ) -> Float[Tensor, ""]:
        l0 = _StepFunction.apply(pre.relu(), self.threshold, self.bandwidth)
        assert isinstance(l0, Tensor)
        return self.l0_coefficient * l0.sum(-1).mean()

    def after_step(self) -> None:
        with torch.no_grad():
            self.threshold.clamp_(min=0.0)


register(
    ActivationKind(
        name="relu",
        summary="ReLU, trained with an L1 penalty weighted by decoder norms",
        build=relu,
        module=ReLUActivation,
        params=("l1_coefficient",),
    )
)
register(
    ActivationKind(
        name="topk",
        summary="the k largest per token",
        build=topk,
        module=TopKActivation,
        params=("k",),
    )
)
register(
    ActivationKind(
        name="topk_signed",
        summary="the k largest per token, signs kept (circuit-tracer's TopK; for loaded sets)",
        build=signed_topk,
        module=SignedTopKActivation,
        params=("k",),
    )
)
register(
    ActivationKind(
        name="batchtopk",
        summary="top k x batch over a batch in training; a learnt threshold at inference",
        build=jumprelu,
        module=BatchTopKActivation,
        params=("k",),
    )
)
register(
    ActivationKind(
        name="jumprelu",
        summary="a per-feature threshold, trained with straight-through gradients and L0",
        build=jumprelu,
        module=JumpReLUActivation,
        params=("l0_coefficient",),
    )
)
