"""`circuits run`: a task file in, a validated circuit out.

`pipeline` runs the steps; `aggregate` merges the prompts' graphs into one `Circuit` keyed by
feature and role; `validate` checks it by interventions on the real model; `export` draws it and
writes the viewer JSON; `report` writes report.md and summary.json.
"""
