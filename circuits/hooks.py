"""Names of the TransformerBridge hook points that the frozen replacement model, the patching
code and the transcoders read or edit, kept in one place, and the type of a forward hook."""

from collections.abc import Callable

from torch import Tensor

Hook = tuple[str, Callable[..., Tensor]]
"""A forward hook for `bridge.run_with_hooks`: (hook name, function(tensor, hook) -> tensor)."""

RESID_IN_HOOK = "blocks.0.hook_in"
"""The residual stream entering the first block: every embedding (token, position) summed."""
TOKEN_EMBED_HOOK = "hook_embed"
"""The token embeddings alone."""
FINAL_HOOK = "unembed.hook_in"
"""The final residual stream after the last norm, as the unembedding reads it."""
LOGITS_HOOK = "unembed.hook_out"
"""The unembedding output: the logits before any softcap (Gemma-2), which is what we attribute."""
FINAL_NORM_HOOK = "ln_final.hook_in"
"""The final residual stream before the last norm."""
MLP_NORM_HOOK = "blocks.{layer}.ln2.hook_in"
"""The residual stream before the norm that feeds layer `layer`'s MLP."""
MLP_OUT_HOOK = "blocks.{layer}.hook_mlp_out"
"""What layer `layer`'s MLP adds to the residual stream (after any post-norm)."""
Z_HOOK = "blocks.{layer}.attn.o.hook_in"
"""Per-head attention outputs before the output projection: [batch, pos, n_heads, d_head]."""
PATTERN_HOOK = "blocks.{layer}.attn.hook_pattern"
"""Attention patterns: [batch, n_heads, query pos, key pos]."""
