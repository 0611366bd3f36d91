"""`circuits run`: a task file in, a validated circuit out.

`pipeline` runs the steps (configured by `config`); `aggregate` merges the prompts' graphs by
feature and role; `select` chooses the circuit's nodes; `circuit` is the result; `validate`
checks it by interventions on the real model; `export` draws it and writes the viewer JSON;
`report` writes report.md and summary.json.
"""
