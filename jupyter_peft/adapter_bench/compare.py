"""Greedy generations of several adapters and the base, for the same prompts, in one table.

LoRA adapters (without DoRA) share one batched `generate`: every prompt once per column, left
padded, each row told its adapter through peft's mixed-adapter batches (`adapter_names=`, with
"__base__" for the base alone). Other methods cannot mix adapters in a batch: each column is then
its own batched generate with that adapter active, and the table says so (`df.attrs["how"]`).
"""

from __future__ import annotations

from typing import Any

from .._errors import PlanError

BASE = "base"
MIXED_NOTE = "one batched generate (peft mixed-adapter batch)"


def mixed_reason(peft_model: Any, names: list[str]) -> str | None:
    """None when peft can mix `names` in one batch; else why not."""
    for name in names:
        config = peft_model.peft_config[name]
        method = str(getattr(config.peft_type, "value", config.peft_type)).lower()
        if method != "lora":
            return f"{name!r} is {method}: peft mixes only LoRA adapters in one batch"
        if getattr(config, "use_dora", False):
            return f"{name!r} uses DoRA: peft cannot mix DoRA adapters in one batch"
    from peft.tuners.tuners_utils import BaseTunerLayer

    if any(getattr(m, "merged", False) for m in peft_model.modules() if isinstance(m, BaseTunerLayer)):
        return "an adapter is merged into the base weights"
    return None


def prompt_ids(tokenizer: Any, prompts: list[Any]) -> list[list[int]]:
    """Token ids of each prompt as `generate` would see it alone (chat messages through the template)."""
    rows = []
    for p in prompts:
        if isinstance(p, str):
            rows.append(list(tokenizer(p)["input_ids"]))
        elif not getattr(tokenizer, "chat_template", None):
            raise PlanError("chat messages need a tokenizer with a chat template; pass the prompt as text",
                            key="prompts")
        else:
            rows.append(list(tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True,
                                                           return_dict=True)["input_ids"]))
    return rows


def prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in prompt)


def left_padded(rows: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask) of `rows`, padded on the left to the longest."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def generate_columns(peft_model: Any, tokenizer: Any, prompts: list[Any], columns: list[str],
                     max_new_tokens: int, mixed: bool) -> dict[str, list[str]]:
    """{column: [output per prompt]}; a column is an adapter name or BASE."""
    import torch

    rows = prompt_ids(tokenizer, prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(peft_model.parameters()).device
    options = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad, num_beams=1)
    was_training = peft_model.training
    peft_model.eval()
    out: dict[str, list[str]] = {}
    try:
        with torch.no_grad():
            if mixed:
                ids, mask = left_padded(rows * len(columns), pad)
                names = [("__base__" if c == BASE else c) for c in columns for _ in rows]
                gen = peft_model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                          adapter_names=names, **options)
                texts = _decode(tokenizer, gen, ids.shape[1])
                for i, column in enumerate(columns):
                    out[column] = texts[i * len(rows):(i + 1) * len(rows)]
            else:
                ids, mask = left_padded(rows, pad)
                active = peft_model.active_adapter
                for column in columns:
                    if column == BASE:
                        with peft_model.disable_adapter():
                            gen = peft_model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                                      **options)
                    else:
                        peft_model.set_adapter(column)
                        gen = peft_model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                                  **options)
                    out[column] = _decode(tokenizer, gen, ids.shape[1])
                peft_model.set_adapter(active)
    finally:
        peft_model.train(was_training)
    return out


def _decode(tokenizer: Any, gen: Any, width: int) -> list[str]:
    return [tokenizer.decode(row[width:], skip_special_tokens=True) for row in gen]


def check_prompts(prompts: Any) -> list[Any]:
    items = [prompts] if isinstance(prompts, str) else prompts
    if isinstance(items, tuple):
        items = list(items)
    if not isinstance(items, list) or not items:
        raise PlanError("compare takes a prompt or a list of prompts", key="prompts", value=prompts)
    for p in items:
        ok = isinstance(p, str) and p.strip() or (isinstance(p, list) and p and all(isinstance(m, dict) for m in p))
        if not ok:
            raise PlanError(f"a prompt is non-empty text or a list of chat messages, got {p!r}", key="prompts",
                            value=p)
    return items


def table(prompts: list[Any], outputs: dict[str, list[str]], how: str) -> Any:
    """The DataFrame: a `prompt` column, then a column per adapter and `base`."""
    import pandas as pd

    df = pd.DataFrame({"prompt": [prompt_text(p) for p in prompts], **outputs})
    df.attrs["how"] = how
    return df
