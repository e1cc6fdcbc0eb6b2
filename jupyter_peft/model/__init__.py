"""What a plan does to a model: inspect it, match targets, apply, count, summarize.

- `modelmap.py`: `inspect(model) -> ModelMap` (modules grouped by role) and `match` (peft's own rules);
- `adapt.py`: `check` then `apply` (validate first; re-applying replaces adapters);
- `counting.py`: exact trainable/total counts of a checked plan, without touching the model;
- `summary.py`: what an applied adapter trains, as a display that survives a saved notebook;
- `merging.py`: `jp.merge`, the adapter folded into a full-precision copy of the base.

May import: plan/, quant/kbit (is a base quantized), the session, the root helpers.
"""
