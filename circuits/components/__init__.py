"""Attention heads and MLP layers: the units the benchmarks score circuits in."""
