"""Use a tuned model at once: generate from a prompt, and compare with the adapter disabled.

A prompt is text, or chat messages (`[{"role": "user", "content": ...}]`) put through the
tokenizer's chat template with the generation prompt. Decoding is greedy unless told
otherwise, so a comparison shows the adapter's effect and not sampling noise.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from .._errors import PlanError


def generate(model: Any, tokenizer: Any, prompt: Any, max_new_tokens: int = 64, **kwargs: Any) -> str:
    """The model's continuation of `prompt` (new text only)."""
    import torch

    inputs = _encode(tokenizer, prompt).to(next(model.parameters()).device)
    kwargs.setdefault("do_sample", False)
    kwargs.setdefault("pad_token_id", tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                      else tokenizer.eos_token_id)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, **kwargs)
    finally:
        model.train(was_training)
    new = out[0, inputs["input_ids"].shape[1]:]
    return tokenizer.decode(new, skip_special_tokens=True)


def compare(model: Any, tokenizer: Any, prompt: Any, max_new_tokens: int = 64, **kwargs: Any) -> Comparison:
    """`prompt` through the model with its adapter, then with the adapter disabled."""
    if not hasattr(model, "disable_adapter"):
        raise PlanError("compare needs a model with an adapter (a PeftModel); this one was trained in full")
    tuned = generate(model, tokenizer, prompt, max_new_tokens, **kwargs)
    with model.disable_adapter():
        base = generate(model, tokenizer, prompt, max_new_tokens, **kwargs)
    return Comparison(_prompt_text(prompt), tuned, base)


@dataclass
class Comparison:
    """One prompt's outputs with and without the adapter; shows side by side in a notebook."""

    prompt: str
    tuned: str
    base: str

    def __repr__(self) -> str:
        return f"prompt: {self.prompt}\n--- with adapter ---\n{self.tuned}\n--- adapter off ---\n{self.base}"

    def _repr_html_(self) -> str:
        cell = "<td style='vertical-align:top;white-space:pre-wrap;text-align:left;max-width:40em'>{}</td>"
        return (
            "<table class='jp-peft-compare'><thead><tr><th style='text-align:left'>with adapter</th>"
            "<th style='text-align:left'>adapter off</th></tr></thead><tbody>"
            f"<tr><td colspan='2' style='text-align:left;color:#666'>{html.escape(self.prompt)}</td></tr>"
            f"<tr>{cell.format(html.escape(self.tuned))}{cell.format(html.escape(self.base))}</tr>"
            "</tbody></table>"
        )


def _encode(tokenizer: Any, prompt: Any) -> Any:
    if isinstance(prompt, str):
        return tokenizer(prompt, return_tensors="pt")
    if isinstance(prompt, list) and all(isinstance(m, dict) and "role" in m for m in prompt):
        if not getattr(tokenizer, "chat_template", None):
            raise PlanError("chat messages need a tokenizer with a chat template; pass the prompt as text")
        return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt",
                                             return_dict=True)
    raise PlanError(f"a prompt is text or a list of chat messages, got {type(prompt).__name__}")


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m.get('content', '')}" for m in prompt)
