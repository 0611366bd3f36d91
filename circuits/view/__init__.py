"""`circuits view`: the interactive page of a run directory (graph.html).

`data` assembles what the page shows from the run's files; `groups` proposes and converts
supernodes; `page` writes the self-contained page (template and scripts in `static/`);
`server` serves a run directory on 127.0.0.1; `browser` drives headless Chromium (tests,
screenshots, the open-time benchmark).
"""
