"""Transcoders: wide, sparse MLPs trained to imitate each MLP sublayer of a model."""
