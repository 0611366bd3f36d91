"""The attribution engine: an exactly linear replacement model and the graphs it yields.

`replacement` freezes a model on one prompt and splices in transcoders; `targets` says what to
explain; `nodes` owns the node layout; `attribute` computes the full graph, `recursive` expands
a subgraph from the targets, `heads` resolves edges by attention head; `influence` prunes and
scores; `graph` is the saved artifact.
"""
