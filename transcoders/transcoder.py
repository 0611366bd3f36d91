"""One transcoder: a wide, sparse MLP trained to imitate one MLP sublayer of a model.

It reads the MLP input `x` (`blocks.L.mlp.hook_in`, after ln2) and predicts the MLP output
(`blocks.L.mlp.hook_out`): `f = act(x @ W_enc + b_enc)`, `y = f @ W_dec + b_dec (+ x @ W_skip)`.
"""

from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from transcoders.activations import ACTIVATIONS
from transcoders.config import TranscoderConfig
from transcoders.errors import TranscoderError

__all__ = ["Encoding", "Transcoder", "TranscoderConfig"]


class Encoding(NamedTuple):
    """What the encoder computes for a batch of MLP inputs."""

    pre: Float[Tensor, "... d_transcoder"]
    """Pre-activations `x @ W_enc + b_enc`."""
    features: Float[Tensor, "... d_transcoder"]
    """Sparse feature activations `act(pre)`."""


class _GatheredPre(torch.autograd.Function):
    """pre[b, indices[b, j]] with pre = x @ W_enc + b_enc given: the backward pass scatters the
    gradient into one dense matrix and needs one matrix product per input, not three."""

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, pre, indices):
        ctx.save_for_backward(x, W_enc, indices)
        return pre.gather(-1, indices)

    @staticmethod
    def backward(ctx, grad):
        x, W_enc, indices = ctx.saved_tensors
        dense = grad.new_zeros(len(x), W_enc.shape[1]).scatter_add_(-1, indices, grad)
        grad_x = dense @ W_enc.T if ctx.needs_input_grad[0] else None
        grad_W_enc = x.T @ dense if ctx.needs_input_grad[1] else None
        grad_b_enc = dense.sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_W_enc, grad_b_enc, None, None


class Transcoder(nn.Module):
    """`forward(x) = decode(encode(x).features) + x @ W_skip`; see the module docstring."""

    W_skip: nn.Parameter | None

    def __init__(self, config: TranscoderConfig) -> None:
        super().__init__()
        self.config = config
        d_model, d_transcoder = config.d_model, config.d_transcoder
        self.W_enc = nn.Parameter(torch.empty(d_model, d_transcoder))
        self.b_enc = nn.Parameter(torch.zeros(d_transcoder))
        self.W_dec = nn.Parameter(torch.empty(d_transcoder, d_model))
        self.b_dec = nn.Parameter(torch.zeros(d_model))
        self.W_skip = nn.Parameter(torch.zeros(d_model, d_model)) if config.skip else None
        module = ACTIVATIONS[config.kind].module
        assert module is not None  # checked by TranscoderConfig
        self.activation = module(config)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random unit decoder rows, the encoder their transpose (OpenAI's TopK recipe), zero
        biases and skip. Draws from torch's global generator."""
        with torch.no_grad():
            self.W_dec.copy_(torch.randn_like(self.W_dec))
            self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True))
            self.W_enc.copy_(self.W_dec.T)
            self.b_enc.zero_()
            self.b_dec.zero_()
            if self.W_skip is not None:
                self.W_skip.zero_()

    def encode(self, x: Float[Tensor, "... d_model"]) -> Encoding:
        pre = x @ self.W_enc + self.b_enc
        return Encoding(pre=pre, features=self.activation(pre))

    def decode(self, features: Float[Tensor, "... d_transcoder"]) -> Float[Tensor, "... d_model"]:
        """`features @ W_dec + b_dec`: the output without the skip path."""
        return features @ self.W_dec + self.b_dec

    def pre_at(
        self,
        x: Float[Tensor, "batch d_model"],
        indices: Int[Tensor, "batch k"],
        pre: Float[Tensor, "batch d_transcoder"] | None = None,
    ) -> Float[Tensor, "batch k"]:
        """`encode(x).pre.gather(-1, indices)`, differentiable, without the autograd graph of
        the dense pre-activations (pass them as `pre`, detached, if already computed)."""
        if pre is None:
            with torch.no_grad():
                pre = x @ self.W_enc + self.b_enc
        out = _GatheredPre.apply(x, self.W_enc, self.b_enc, pre, indices)
        assert isinstance(out, Tensor)
        return out

    def decode_sparse(
        self, indices: Int[Tensor, "batch k"], values: Float[Tensor, "batch k"]
    ) -> Float[Tensor, "batch d_model"]:
        """`decode` of features that are zero outside `indices`, without the dense matrix."""
        return (
            nn.functional.embedding_bag(indices, self.W_dec, per_sample_weights=values, mode="sum")
            + self.b_dec
        )

    def skip_path(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """`x @ W_skip`, or zeros for a transcoder without a skip connection."""
        if self.W_skip is None:
            return torch.zeros_like(x)
        return x @ self.W_skip

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        out = self.decode(self.encode(x).features)
        return out if self.W_skip is None else out + x @ self.W_skip

    @property
    def threshold(self) -> Tensor | None:
        """The per-feature inference threshold of batchtopk and jumprelu kinds, else None."""
        value = getattr(self.activation, "threshold", None)
        return value if isinstance(value, Tensor) else None

    def decoder_norms(self) -> Float[Tensor, " d_transcoder"]:
        return self.W_dec.norm(dim=-1)

    @torch.no_grad()
    def before_step(self) -> None:
        """With unit decoder rows, drop the gradient component along each row (it would only
        change the row's norm, which `after_step` undoes)."""
        if self.config.normalize_decoder and self.W_dec.grad is not None:
            rows = self.W_dec / self.decoder_norms().clamp(min=1e-8)[:, None]
            along = (self.W_dec.grad * rows).sum(-1, keepdim=True)
            self.W_dec.grad.sub_(along * rows)

    @torch.no_grad()
    def after_step(self) -> None:
        """Restore the invariants an optimizer step breaks: unit decoder rows (if configured)
        and the kind's own (e.g. non-negative thresholds)."""
        if self.config.normalize_decoder:
            self.W_dec.div_(self.decoder_norms().clamp(min=1e-8)[:, None])
        self.activation.after_step()

    def tensors(self) -> dict[str, Tensor]:
        """Every parameter and buffer under its file name (`W_enc`, ..., `threshold`)."""
        return {k.removeprefix("activation."): v for k, v in self.state_dict().items()}

    def load_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Load `tensors()`-style weights; missing, unexpected or misshapen ones are refused."""
        expected = self.tensors()
        missing, unexpected = set(expected) - set(tensors), set(tensors) - set(expected)
        if missing or unexpected:
            raise TranscoderError(
                f"transcoder weights do not match its config (kind {self.config.kind!r}, skip "
                f"{self.config.skip}): missing {sorted(missing)}, unexpected {sorted(unexpected)}"
            )
        for name, value in tensors.items():
            if value.shape != expected[name].shape:
                raise TranscoderError(
                    f"weight {name} has shape {tuple(value.shape)}, the config implies "
                    f"{tuple(expected[name].shape)}"
                )
        prefixed = {
            (k if k in self._parameters else f"activation.{k}"): v.float()
            for k, v in tensors.items()
        }
        self.load_state_dict(prefixed, strict=True)
