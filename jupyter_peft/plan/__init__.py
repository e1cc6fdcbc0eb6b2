"""The Plan: what to adapt and how, the one value every front end produces and consumes.

- `plan.py`: `Plan` (YAML with line numbers both ways, checks that need no model);
- `methods.py`: every peft method and its options, read from peft's own config dataclasses;
- `train_config.py`: the `train:` block, TRL's trainers and their config fields.

May import: the root helpers (_errors, _yaml, _hardware). Nothing here sees a model.
"""

from .plan import Plan

__all__ = ["Plan"]
