"""What-ifs on an estimate: the largest batch and sequence that fit, full fine-tuning vs LoRA
vs QLoRA side by side, and what to change when a step does not fit.

All of them re-run the instant estimate on a changed Setup; the per-model work is cached by
everything but batch size and sequence length, so the searches are arithmetic.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from ..plan.plan import Plan
from .fit import GiB, Gpu, accumulation, bisected, largest, max_positions, overhead
from .settings import Setup

_MAX_BATCH = 4096


def total_bytes(setup: Setup) -> int:
    """What a card must hold for `setup`, by the instant estimate."""
    from .analytic import analytic

    composed = analytic(setup)
    from .reserved import instant
    from .stretch import share

    reserved = instant(composed.state_sizes, composed.peak_bytes, share=share(setup)).reserved_bytes
    return max(reserved, composed.peak_bytes) + composed.paged_bytes + overhead(composed.peak_bytes)


def largest_batch(setup: Setup, gpu: Gpu, exact: bool = False) -> int | None:
    """The largest batch that fits `gpu` by the share model (`total_bytes`); `exact`: the one the
    instant estimate itself says fits, and the next does not (a few estimates more)."""
    return _largest(setup, gpu, "batch_size", 1, _MAX_BATCH, exact)


def largest_seq_len(setup: Setup, gpu: Gpu, exact: bool = False) -> int | None:
    return _largest(setup, gpu, "seq_len", 2, max_positions(setup.config), exact)


def _largest(setup: Setup, gpu: Gpu, field: str, low: int, high: int, exact: bool) -> int | None:
    def at(n: int) -> Setup:
        return setup.replace(**{field: n})

    found = largest(lambda n: total_bytes(at(n)) <= gpu.bytes, low, high)
    if not exact:
        return found
    from . import _run

    def fits(n: int) -> bool:  # the instant estimate itself at n: its stretched step
        return _run("analytic", at(n), None, gpu).total_bytes <= gpu.bytes

    # bracket the share model's answer with estimates (a few), then halve the bracket
    guess = found if found is not None else low
    step = max(1, guess // 16)
    if fits(guess):
        below = guess
        above = min(guess + step, high)
        while above > below and fits(above):
            below, step = above, step * 2
            above = min(above + step, high)
        if above == below:
            return below  # the top of the range fits
    else:
        above = guess
        below = max(guess - step, low)
        while below < above and not fits(below):
            if below == low:
                return None
            above, step = below, step * 2
            below = max(below - step, low)
    return bisected(fits, below, above)


# ---- side by side ------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    gradient_checkpointing: bool
    total_bytes: int
    fits: bool | None
    largest_batch: int | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Comparison:
    """Full fine-tuning, LoRA and QLoRA, each with and without gradient checkpointing."""
    rows: list[Row]
    gpu: Gpu | None

    def to_json(self) -> dict[str, Any]:
        return {"gpu": self.gpu.to_json() if self.gpu else None, "rows": [r.to_json() for r in self.rows]}

    def _repr_html_(self) -> str:
        head = "<tr><th>method</th><th>checkpointing</th><th>memory</th>"
        head += f"<th>fits {html.escape(self.gpu.name)}</th><th>largest batch</th></tr>" if self.gpu else "</tr>"
        body = ""
        for r in self.rows:
            body += (
                f"<tr><td>{html.escape(r.label)}</td><td>{'on' if r.gradient_checkpointing else 'off'}</td>"
                f"<td style='text-align:right'>{r.total_bytes / GiB:.2f} GiB</td>"
            )
            if self.gpu:
                body += (
                    f"<td>{'yes' if r.fits else 'no'}</td><td style='text-align:right'>{r.largest_batch or '-'}</td>"
                )
            body += "</tr>"
        return f"<table class='jp-memory-compare'>{head}{body}</table>"


def compare(setup: Setup, gpu: Gpu | None) -> Comparison:
    rows = []
    for label, variant in _variants(setup):
        for ckpt in (False, True):
            s = variant.replace(gradient_checkpointing=ckpt)
            total = total_bytes(s)
            fits = None if gpu is None else total <= gpu.bytes
            rows.append(Row(label, ckpt, total, fits, largest_batch(s, gpu) if gpu is not None else None))
    return Comparison(rows, gpu)


def _variants(setup: Setup) -> list[tuple[str, Setup]]:
    lora = _lora_plan(setup.plan)
    out = [("full fine-tuning", setup.replace(plan=None, quantization="none", double_quant=False))]
    out.append((_label(lora), setup.replace(plan=lora, quantization="none", double_quant=False)))
    if lora.method in ("lora", "dora", "qlora"):
        out.append(
            (
                "QLoRA (4-bit NF4, double quant)",
                setup.replace(plan=_quantized(lora), quantization="4bit", double_quant=True),
            )
        )
    return out


def _lora_plan(plan: Any) -> Any:
    """The user's plan without quantization, or LoRA r=16 on all linear layers."""
    if plan is None or not plan.method_spec.targets_modules:
        return Plan.from_dict({"method": "lora", "r": 16, "target_modules": "all-linear"})
    from .build import unquantized

    return unquantized(plan)


def _quantized(plan: Any) -> Any:
    return plan.replace(
        quantization="4bit", quant_options={"bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
    )


def _label(plan: Any) -> str:
    r = plan.rank
    return f"{plan.method} r={r}" if r is not None else plan.method


# ---- advice ------------------------------------------------------------------------------


@dataclass
class Advice:
    """`advice()`'s entries, shown as a list (text and HTML)."""
    items: list[dict[str, Any]]
    gpu: Gpu

    def __repr__(self) -> str:
        lines = [f"To fit {self.gpu.name} ({self.gpu.bytes / GiB:.1f} GiB):"]
        lines += [
            f"  - {a['change']}: {a['total_bytes'] / GiB:.2f} GiB{' (fits)' if a['fits'] else ''}" for a in self.items
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        items = "".join(
            f"<li>{html.escape(a['change'])}: {a['total_bytes'] / GiB:.2f} GiB"
            f"{' <b>fits</b>' if a['fits'] else ''}</li>"
            for a in self.items
        )
        return (
            f"<div class='jp-memory-advice'><b>To fit {html.escape(self.gpu.name)}</b> "
            f"({self.gpu.bytes / GiB:.1f} GiB):<ul>{items}</ul></div>"
        )


def advice(setup: Setup, gpu: Gpu) -> list[dict[str, Any]]:
    """Changes that make the step fit (or smaller), least disruptive first, each estimated.
    Empty when the step already fits. When no single change is enough, one combined entry."""
    now = total_bytes(setup)
    if now <= gpu.bytes:
        return []
    out = []
    for text, changed in _changes(setup, gpu):
        total = total_bytes(changed)
        if total < now:  # e.g. the chunked head's fixed tile can cost more than small logits
            out.append({"change": text, "total_bytes": total, "fits": total <= gpu.bytes})
    if not any(a["fits"] for a in out):
        out.extend(_combined(setup, gpu))
    return out


def _changes(setup: Setup, gpu: Gpu) -> list[tuple[str, Setup]]:
    out: list[tuple[str, Setup]] = []
    if not setup.gradient_checkpointing:
        out.append(
            (
                "turn on gradient checkpointing (recompute activations in backward, ~20-30% slower)",
                setup.replace(gradient_checkpointing=True),
            )
        )
    if setup.loss == "full":
        out.append(("use TRL's chunked LM head (no full logits)", setup.replace(loss="chunked")))
    if setup.full:
        out.append(("train LoRA adapters instead of every weight", setup.replace(plan=_lora_plan(None))))
        if "8bit" not in setup.optimizer:
            out.append(("use an 8-bit optimizer (optim: adamw_8bit)", setup.replace(optimizer="adamw_8bit")))
    elif setup.quantization == "none" and setup.plan.method in ("lora", "dora"):
        out.append(
            (
                "load the base in 4-bit (QLoRA: NF4 with double quantization)",
                setup.replace(plan=_quantized(setup.plan), quantization="4bit", double_quant=True),
            )
        )
    fitting = largest_batch(setup, gpu)
    if fitting is not None and fitting < setup.batch_size:
        steps = accumulation(setup.batch_size, fitting)
        out.append(
            (
                f"per_device_train_batch_size {fitting} with gradient_accumulation_steps {steps} "
                f"(same effective batch)",
                setup.replace(batch_size=fitting),
            )
        )
    seq = largest_seq_len(setup, gpu)
    if seq is not None and seq < setup.seq_len:
        out.append((f"shorter sequences: max_length {seq}", setup.replace(seq_len=seq)))
    return out


def _combined(setup: Setup, gpu: Gpu) -> list[dict[str, Any]]:
    """The structural changes that help, one on top of the other (checkpointing, the chunked
    head, LoRA, a 4-bit base), then the largest batch that fits with accumulation."""
    changed, steps = setup, list[str]()
    for text, step in _structural(gpu):
        candidate = step(changed)
        if candidate is not None and total_bytes(candidate) < total_bytes(changed):
            changed, steps = candidate, [*steps, text]
    fitting = largest_batch(changed, gpu)
    if fitting is not None and fitting < setup.batch_size:
        changed = changed.replace(batch_size=fitting)
        steps.append(f"batch {fitting} x {accumulation(setup.batch_size, fitting)} accumulation steps")
    total = total_bytes(changed)
    return [{"change": "together: " + "; ".join(steps), "total_bytes": total, "fits": total <= gpu.bytes}]


def _structural(gpu: Gpu) -> list[tuple[str, Any]]:
    def lora(s: Setup) -> Setup | None:
        return s.replace(plan=_lora_plan(None)) if s.full else None

    def qlora(s: Setup) -> Setup | None:
        if s.full or s.quantization != "none" or s.plan.method not in ("lora", "dora"):
            return None
        return s.replace(plan=_quantized(s.plan), quantization="4bit", double_quant=True)

    return [
        ("gradient checkpointing", lambda s: s.replace(gradient_checkpointing=True)),
        ("chunked LM head", lambda s: s.replace(loss="chunked")),
        ("LoRA", lora),
        ("4-bit base (QLoRA)", qlora),
    ]
