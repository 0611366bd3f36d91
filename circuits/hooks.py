"""Names of the TransformerBridge hook points that both the frozen replacement model and the
patching code read or edit, kept in one place."""

Z_HOOK = "blocks.{layer}.attn.o.hook_in"
"""Per-head attention outputs before the output projection: [batch, pos, n_heads, d_head]."""
PATTERN_HOOK = "blocks.{layer}.attn.hook_pattern"
"""Attention patterns: [batch, n_heads, query pos, key pos]."""
