"""A model frozen on one prompt, with transcoders in place of its MLPs: exactly linear.

For one prompt we record every attention pattern, every norm scale, each MLP's input and output,
the transcoder features active at each position, and the embedding that enters the residual
stream (`trace`). Replaying the model with patterns and scales fixed to the recorded values and
each MLP output rebuilt as

    decoded active features (constants) + b_dec + x @ W_skip (live) + error (constant)

gives the recorded outputs exactly, and makes every feature pre-activation and every logit an
affine function of the sources: token embeddings, feature activations and error vectors. The
direct effect of a source on a target is then one vector-Jacobian product (`attribute`), and the
same replay with sources rescaled is the intervention that checks it (`replay`).
"""

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.errors import AttributionError
from circuits.hooks import FINAL_HOOK, LOGITS_HOOK, PATTERN_HOOK, RESID_IN_HOOK, Hook
from transcoders.transcoder_set import TranscoderSet

NORM_HOOK_WARNING = "A forward hook edited hook_scale"
"""The bridge warns that a norm fed its own scale is computed along another path (at rounding
scale); that is intended here, and the trace records that path's values."""


@dataclass(frozen=True)
class ActiveFeatures:
    """The transcoder features of one layer that are active on the prompt."""

    pos: Int[Tensor, " n_active"]
    feature: Int[Tensor, " n_active"]
    activation: Float[Tensor, " n_active"]
    """Feature activation: the node's value as a source."""
    pre: Float[Tensor, " n_active"]
    """Pre-activation `x @ W_enc + b_enc`: the node's value as a target."""

    def __len__(self) -> int:
        return len(self.pos)


@dataclass(frozen=True)
class Trace:
    """Everything recorded on one forward pass of one prompt (batch of one, no autograd)."""

    tokens: Int[Tensor, " n_pos"]
    embedding: Float[Tensor, "n_pos d_model"]
    """Residual stream entering block 0: the value of the token nodes."""
    frozen: dict[str, Tensor]
    """Every attention pattern and norm scale, by hook name (batch dimension kept, of size 1)."""
    mlp_in: list[Float[Tensor, "n_pos d_model"]]
    mlp_out: list[Float[Tensor, "n_pos d_model"]]
    features: list[ActiveFeatures]
    errors: Float[Tensor, "n_layers n_pos d_model"]
    """MLP output minus the transcoder's reconstruction: the value of the error nodes."""
    logits: Float[Tensor, "n_pos d_vocab"]
    """Logits before any softcap."""

    @property
    def n_pos(self) -> int:
        return len(self.tokens)

    def prefix(self, n: int) -> "Trace":
        """The trace of the first `n` tokens: in a causal model, the same values cut short."""
        frozen = {
            name: value[..., :n, :n] if name.endswith("hook_pattern") else value[:, :n]
            for name, value in self.frozen.items()
        }
        features = []
        for f in self.features:
            keep = f.pos < n
            features.append(
                ActiveFeatures(f.pos[keep], f.feature[keep], f.activation[keep], f.pre[keep])
            )
        return Trace(
            tokens=self.tokens[:n],
            embedding=self.embedding[:n],
            frozen=frozen,
            mlp_in=[x[:n] for x in self.mlp_in],
            mlp_out=[x[:n] for x in self.mlp_out],
            features=features,
            errors=self.errors[:, :n],
            logits=self.logits[:n],
        )

    @property
    def n_layers(self) -> int:
        return len(self.features)


@dataclass(frozen=True)
class SourceScales:
    """Multipliers of the sources in a replay: 1 everywhere is the recorded prompt, 0 removes a
    source while every other node keeps its recorded value (the intervention of the contract)."""

    token: Float[Tensor, "batch n_pos"]
    feature: list[Float[Tensor, "batch _n_active"]]
    """One tensor per layer, over that layer's active features."""
    error: Float[Tensor, "batch n_layers n_pos"]

    @classmethod
    def ones(cls, trace: Trace, batch: int = 1) -> "SourceScales":
        dtype = trace.embedding.dtype
        return cls(
            token=torch.ones(batch, trace.n_pos, dtype=dtype),
            feature=[torch.ones(batch, len(f), dtype=dtype) for f in trace.features],
            error=torch.ones(batch, trace.n_layers, trace.n_pos, dtype=dtype),
        )

    @property
    def batch(self) -> int:
        return len(self.token)


@dataclass(frozen=True)
class Replay:
    """What a replay exposes: the live MLP inputs and logits (for targets), and the probes added
    at each source site (their gradients are the gradients at the sources)."""

    mlp_in: list[Float[Tensor, "batch n_pos d_model"]]
    final: Float[Tensor, "batch n_pos d_model"]
    """Input of the unembedding; targets inject their gradients here, which spares the
    backward pass the unembedding of every position."""
    logits: Float[Tensor, "batch n_out d_vocab"]
    """Logits before any softcap (of the first position only in a lean replay)."""


UNSUPPORTED_ARCHITECTURES = ("GPTNeoFor", "GPTNeoModel", "GPTJ", "OPT")
"""Adapters that hand attention to Hugging Face code, where edits to the pattern are discarded."""


class ReplacementModel:
    """A TransformerBridge model and a transcoder set, able to trace a prompt and replay it
    frozen. Refuses models whose attention patterns cannot be frozen."""

    def __init__(
        self,
        bridge: Any,
        transcoders: TranscoderSet,
        *,
        include_bos: bool = False,
        transcoders_id: str = "",
    ):
        transcoders.check_fits(bridge)
        # Gradients are only ever taken with respect to probes at the source sites; parameters
        # out of autograd keep the batched forward pass small. Eval mode gives batchtopk its
        # inference threshold.
        self.bridge = bridge.requires_grad_(False)
        self.transcoders = transcoders.eval().requires_grad_(False)
        self.include_bos = include_bos
        """Whether features may be active at position 0. Transcoders trained without the first
        position (the default) would give it meaningless features; its MLP output is then all
        error."""
        self.n_layers: int = bridge.cfg.n_layers
        self.model_id: str = transcoders.model
        """Id of the model (the transcoder set records the model it was trained on)."""
        self.transcoders_id = transcoders_id
        """Where the transcoder set came from (its directory), for the graph's metadata."""
        self.dtype = next(bridge.parameters()).dtype
        check_attention_is_frozen(bridge)

    def frozen_hook_names(self) -> list[str]:
        return [
            name
            for name, hook in self.bridge.hook_dict.items()
            if hook.name == name
            and (name.endswith("attn.hook_pattern") or name.endswith("hook_scale"))
        ]

    @torch.no_grad()
    def trace(self, tokens: Int[Tensor, " n_pos"]) -> Trace:
        """Run the model on `tokens` and record what the replay needs."""
        if tokens.ndim != 1:
            raise AttributionError(
                f"trace takes one prompt of shape [n_pos], got {tuple(tokens.shape)}"
            )
        n_ctx = self.bridge.cfg.n_ctx
        if len(tokens) > n_ctx:
            raise AttributionError(
                f"the prompt has {len(tokens)} tokens but the model's context is {n_ctx}; "
                "shorten the prompt"
            )
        frozen_names = set(self.frozen_hook_names())
        _, cache = self.bridge.run_with_cache(tokens[None], names_filter=frozen_names.__contains__)
        frozen = {name: cache[name] for name in frozen_names}
        # Record the rest on a second pass with patterns and scales fed back: some adapters
        # compute norms natively in lower precision than through their scale hook, and the
        # replay must reproduce the recorded values exactly.
        names = {RESID_IN_HOOK, LOGITS_HOOK}
        for hooks in self.transcoders.hooks:
            names |= {hooks.hook_in, hooks.hook_out}
        cache: dict[str, Tensor] = {}

        def feed_back(tensor: Tensor, hook: Any) -> Tensor:
            return frozen[hook.name]

        def record(tensor: Tensor, hook: Any) -> Tensor:
            cache[hook.name] = tensor
            return tensor

        hooks = [(name, feed_back) for name in frozen] + [(name, record) for name in names]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=NORM_HOOK_WARNING)
            self.bridge.run_with_hooks(tokens[None], fwd_hooks=hooks)
        first = 0 if self.include_bos else 1
        mlp_in, mlp_out, features, errors = [], [], [], []
        for layer, hooks in enumerate(self.transcoders.hooks):
            x, out = cache[hooks.hook_in][0], cache[hooks.hook_out][0]
            transcoder = self.transcoders[layer]
            encoding = transcoder.encode(x.to(transcoder.W_enc.dtype))
            acts = encoding.features.to(self.dtype)
            acts[:first] = 0
            pos, feature = acts.nonzero(as_tuple=True)
            active = ActiveFeatures(
                pos=pos,
                feature=feature,
                activation=acts[pos, feature],
                pre=encoding.pre.to(self.dtype)[pos, feature],
            )
            recon = self._decode(
                layer, active, torch.ones(1, len(active), dtype=self.dtype), len(tokens)
            )[0]
            errors.append(out - recon - self._skip(layer, x))
            mlp_in.append(x)
            mlp_out.append(out)
            features.append(active)
        return Trace(
            tokens=tokens,
            embedding=cache[RESID_IN_HOOK][0],
            frozen=frozen,
            mlp_in=mlp_in,
            mlp_out=mlp_out,
            features=features,
            errors=torch.stack(errors),
            logits=cache[LOGITS_HOOK][0],
        )

    def replay(
        self,
        trace: Trace,
        scales: SourceScales | None = None,
        probes: list[Tensor] | None = None,
        extra_hooks: list[Hook] | None = None,
        *,
        lean: bool = False,
    ) -> Replay:
        """Run the frozen model on `trace`'s prompt with sources multiplied by `scales` (default:
        all ones, batch 1). `probes` (n_layers + 1 tensors of shape [batch, n_pos, d_model],
        usually zeros with `requires_grad`) are added to each MLP output and, last, to the
        embedding: their gradients are the gradients at the source sites. Runs under the
        caller's grad mode. `extra_hooks` run too (e.g. to read or pin attention heads).

        `lean` skips work that no target reads: each original MLP and the unembedding run on
        the first position only (the MLP output is rebuilt anyway, and targets read the final
        residual stream); `logits` then holds that position alone."""
        scales = scales or SourceScales.ones(trace)
        captured: dict[str, Tensor] = {}
        hooks = self._replay_hooks(trace, scales, probes, captured, lean=lean)
        hooks += list(extra_hooks or [])
        tokens = trace.tokens[None].expand(scales.batch, -1)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=NORM_HOOK_WARNING)
            self.bridge.run_with_hooks(tokens, fwd_hooks=hooks)
        return Replay(
            mlp_in=[captured[h.hook_in] for h in self.transcoders.hooks],
            final=captured[FINAL_HOOK],
            logits=captured[LOGITS_HOOK],
        )

    def _replay_hooks(
        self,
        trace: Trace,
        scales: SourceScales,
        probes: list[Tensor] | None,
        captured: dict[str, Tensor],
        *,
        lean: bool,
    ) -> list[Hook]:
        batch = scales.batch

        def frozen(tensor: Tensor, hook: Any) -> Tensor:
            return trace.frozen[hook.name].expand(batch, *tensor.shape[1:])

        def embed(tensor: Tensor, hook: Any) -> Tensor:
            out = trace.embedding * scales.token[..., None]
            return out + probes[-1] if probes is not None else out

        def capture(tensor: Tensor, hook: Any) -> Tensor:
            captured[hook.name] = tensor
            return tensor[:, :1] if lean and hook.name != LOGITS_HOOK else tensor

        hooks: list[Hook] = [(name, frozen) for name in trace.frozen]
        hooks += [(RESID_IN_HOOK, embed), (FINAL_HOOK, capture), (LOGITS_HOOK, capture)]
        for layer, names in enumerate(self.transcoders.hooks):

            def mlp_out(
                x: Tensor, _: Tensor, layer: int = layer, name: str = names.hook_in
            ) -> Tensor:
                captured[name] = x
                out = self._decode(layer, trace.features[layer], scales.feature[layer], trace.n_pos)
                out = (
                    out
                    + self._skip(layer, x)
                    + trace.errors[layer] * scales.error[:, layer, :, None]
                )
                return out + probes[layer] if probes is not None else out

            hooks += names.rewriting(mlp_out)
        return hooks

    def _decode(
        self, layer: int, active: ActiveFeatures, scale: Float[Tensor, "batch n_active"], n_pos: int
    ) -> Float[Tensor, "batch n_pos d_model"]:
        """`b_dec` plus each active feature's activation times `scale` times its decoder row,
        at its position."""
        transcoder = self.transcoders[layer]
        rows = transcoder.W_dec[active.feature].to(self.dtype)  # [n_active, d_model]
        batch = len(scale)
        if batch > 1 and bool((scale == scale[:1]).all()):  # the same in every copy: once
            return self._decode(layer, active, scale[:1], n_pos).expand(batch, -1, -1)
        weighted = (active.activation * scale)[..., None] * rows  # [batch, n_active, d_model]
        out = torch.zeros(batch, n_pos, rows.shape[-1], dtype=self.dtype)
        out = out.index_add(1, active.pos, weighted)
        return out + transcoder.b_dec.to(self.dtype)

    def _skip(self, layer: int, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        W_skip = self.transcoders[layer].W_skip
        return torch.zeros_like(x) if W_skip is None else x @ W_skip.to(x.dtype)


def check_attention_is_frozen(bridge: Any) -> None:
    """Refuse models whose attention ignores edits to `hook_pattern` (their adapters hand
    attention to Hugging Face code): freezing patterns, and so attribution, would be wrong.

    Layers are tried in turn until an edit shows (a compiled model's layer may have no
    attention at all); a model none of whose attention layers does anything has nothing to
    freeze."""
    name = type(getattr(bridge, "original_model", bridge)).__name__
    if any(name.startswith(arch) for arch in UNSUPPORTED_ARCHITECTURES):
        raise AttributionError(_unsupported(name))
    tokens = torch.arange(3)[None] % bridge.cfg.d_vocab

    def first_token_only(pattern: Tensor, hook: Any) -> Tensor:
        out = torch.zeros_like(pattern)
        out[..., 0] = 1
        return out

    outputs: dict[str, Tensor] = {}

    def keep(x: Tensor, hook: Any) -> None:
        outputs[hook.name] = x.detach().clone()

    attn_out = [f"blocks.{layer}.attn.hook_out" for layer in range(bridge.cfg.n_layers)]
    with torch.no_grad():
        plain = bridge.run_with_hooks(tokens, fwd_hooks=[(n, keep) for n in attn_out])
        for layer in range(bridge.cfg.n_layers):
            edited = bridge.run_with_hooks(
                tokens, fwd_hooks=[(PATTERN_HOOK.format(layer=layer), first_token_only)]
            )
            if not torch.equal(plain, edited):
                return
    if any(bool(x.abs().max() > 0) for x in outputs.values()):
        raise AttributionError(_unsupported(name))


def _unsupported(architecture: str) -> str:
    return (
        f"{architecture}: this architecture's attention ignores edits to its pattern, so it "
        "cannot be frozen for attribution; use a GPT-2, Pythia, Llama, Qwen or Gemma-2 model"
    )
