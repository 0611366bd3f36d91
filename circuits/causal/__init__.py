"""The slow, exhaustive causal reference: patching every head and MLP, and paths between them."""
