"""Task files and the prompt sets built from them.

`load_task` reads a TOML task file (format: `tasks/README.md`) into a checked `TaskSpec`;
`build_prompt_set` draws its prompts for one tokenizer: clean and corrupt token ids, answer and
wrong tokens, role positions, and the task metric as a value and as an attribution target.
`check_count` bounds a number of prompts, cheaply, before a model loads.
`template` renders placeholders, `fillers` draws their values, `metrics` holds the metric kinds.
"""

from circuits.errors import TaskFileError
from circuits.tasks.load import load_task
from circuits.tasks.prompts import PromptSet, TaskPrompt, build_prompt_set
from circuits.tasks.spec import MAX_COUNT, TaskSpec, check_count

__all__ = [
    "MAX_COUNT",
    "PromptSet",
    "TaskFileError",
    "TaskPrompt",
    "TaskSpec",
    "build_prompt_set",
    "check_count",
    "load_task",
]
