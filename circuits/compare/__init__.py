"""`circuits compare`: one task's circuits from models of different sizes, side by side.

`load` reads run directories back (and refuses what cannot be compared), `curves` puts circuit
sizes on a common faithfulness level, `roles` checks a circuit against a model's causal
reference, `comparison` gathers the numbers (compare.json), `plots` and `report` draw and write
them, and `output` assembles the output directory atomically.
"""
