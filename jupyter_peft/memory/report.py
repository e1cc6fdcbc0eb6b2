"""`MemoryEstimate`: the answer, as numbers (`to_json`), HTML (`_repr_html_`) and a plotly figure.

`peak_bytes` is the tensor memory at the step's peak, what `torch.cuda.max_memory_allocated`
reports; `breakdown` splits it by component and sums to it. `reserved_bytes` is what the
caching allocator holds at the run's peak, `torch.cuda.max_memory_reserved` (reserved.py,
allocator.py); `reserved_gap` says what the difference is made of. `total_bytes` is what the
card must hold: the reserved peak, optimizer state paged by bitsandbytes and the CUDA context
(`overhead_bytes`). `fits` compares `total_bytes` with a card. With `estimate(overhead=...)`
a measured overhead replaces both the context and the allocator's gap.

The HTML is plain HTML and SVG: a saved notebook shows it without a kernel or any script.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from .._errors import PlanError
from .fit import GiB, Gpu, gpu
from .options import advice, compare, largest_batch, largest_seq_len

# component -> (colour, what it is); the order is the bar's
COMPONENTS: dict[str, tuple[str, str]] = {
    "weights": ("#4c72b0", "base model weights (quantized weights packed)"),
    "adapters": ("#55a868", "adapter weights peft adds"),
    "reference model": ("#8172b3", "frozen reference copy (DPO/KTO with full fine-tuning)"),
    "optimizer": ("#c44e52", "optimizer state"),
    "gradients": ("#dd8452", "gradients of trainable weights"),
    "activations": ("#937860", "activations kept for backward"),
    "logits and loss": ("#da8bc3", "LM head and loss buffers"),
    "temporaries": ("#8c8c8c", "short-lived buffers at the peak"),
    "paged optimizer": ("#e6a0a2", "optimizer state in paged (managed) memory"),
    "allocator": ("#b0b0b0", "reserved beyond the tensors: allocator rounding, cached free blocks, cuBLAS workspaces"),
    "overhead": ("#cccccc", "CUDA context (outside the caching allocator)"),
}
_METHODS = {
    "analytic": "instant estimate",
    "simulate": "simulated step (FakeTensors + MemTracker)",
    "measure": "measured on the GPU (max_memory_allocated)",
}


@dataclass
class MemoryEstimate:
    """Peak accelerator memory of one training step (see the module docstring)."""
    peak_bytes: int
    breakdown: dict[str, int]
    method: str
    setup: Any
    overhead_bytes: int = 0
    paged_bytes: int = 0
    phase: str = ""
    """Where in the step the peak falls (forward, loss backward, backward, optimizer step...)."""
    phases: dict[str, int] = field(default_factory=dict)
    gpu: Gpu | None = None
    seconds: float = 0.0
    reserved_bytes: int = 0
    """Peak reserved by PyTorch's caching allocator (max_memory_reserved); 0: not modelled."""
    reserved_gap: dict[str, int] = field(default_factory=dict)
    """reserved_bytes - peak_bytes by cause: allocator rounding, cached free blocks, cuBLAS workspaces."""
    overhead_given: bool = False
    """overhead_bytes was measured and given (it then covers the allocator's gap too)."""
    data: Any = None
    """With a dataset: the batches the trainer will build (data.batches.Batches), the longest first."""
    reserved_over_data: int = 0
    """With a dataset: `max_memory_reserved` over the data's steps in the sampler's order
    (varying.py: blocks cached for other batch lengths stay reserved), what a card with room to
    spare shows. Not what must fit: short of memory, the allocator frees its cached blocks and
    retries before it raises OOM, so `fits` uses the one-length `reserved_bytes`.
    0: not modelled (one length, or a step the instant estimate cannot stretch: the note says)."""
    reserved_over_data_expandable: int = 0
    """`reserved_over_data` with PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (one segment per
    pool that grows in place, so blocks cached for one length serve the next); 0: not modelled,
    or the allocator settings already expand."""
    reserved_over_data_note: str = ""
    """Why `reserved_over_data` could not be modelled, when it could not."""
    data_note: str = ""
    """Why the estimate is not for the data the plan's train block names (it is not in the notebook)."""
    data_name: str = ""
    """The notebook name of the data set, when the train block named it."""

    @property
    def data_line(self) -> str:
        """Which batch the estimate is for, in one line: the longest of the data (its step and
        lengths), or why the plan's data was not used; "" for a plain batch size and length."""
        top = self.data.longest if self.data is not None else None
        if top is None:
            return self.data_note
        of = f" of {self.data_name}" if self.data_name else ""
        steps = self.data.items[-1].step if self.data.items else 0
        lengths = ", ".join(str(n) for n in sorted(top.lengths, reverse=True)[:8])
        more = ", …" if len(top.lengths) > 8 else ""
        return (f"at the longest batch{of}: step {top.step} of {steps}, {top.rows} rows × {top.seq_len} tokens "
                f"(row lengths {lengths}{more})")

    @property
    def allocator_bytes(self) -> int:
        """Reserved beyond the tensors at the peak (0 when a measured overhead covers it)."""
        if self.overhead_given or not self.reserved_bytes:
            return 0
        return max(self.reserved_bytes - self.peak_bytes, 0)

    @property
    def total_bytes(self) -> int:
        """What the card must hold: the reserved peak, paged optimizer state, the CUDA context."""
        return self.peak_bytes + self.allocator_bytes + self.paged_bytes + self.overhead_bytes

    def fits(self, capacity: Any = None) -> bool:
        """Whether the step fits in `capacity` (bytes, or a GPU name; default: the estimate's GPU)."""
        return self.total_bytes <= self._card(capacity).bytes

    plan_source: str = "given"
    """Where the plan came from: given, none given (full fine-tuning), or the adapter a model carries."""

    @property
    def plan_line(self) -> str:
        """Which plan this estimate is for, in one line (every view shows it first)."""
        plan = self.setup.plan
        if plan is None:
            return "for full fine-tuning (every weight trains)"
        data = {k: v for k, v in plan.to_dict().items() if k != "train"}
        text = ", ".join(f"{k}: {_flow(v)}" for k, v in data.items())
        origin = f" ({self.plan_source})" if self.plan_source not in ("given", "none given") else ""
        return f"for {text}{origin}"

    def __repr__(self) -> str:
        parts = ", ".join(f"{k} {v / GiB:.2f}" for k, v in self.breakdown.items() if v)
        data = f"; {self.data_line}" if self.data_line else ""
        return (
            f"MemoryEstimate({self.plan_line}{data}; {self.method}: total {self.total_bytes / GiB:.2f} GiB, "
            f"peak tensors {self.peak_bytes / GiB:.2f} GiB [{parts}])"
        )

    # ---- what-ifs (see options.py) --------------------------------------------------------

    def largest_batch(self, capacity: Any = None, exact: bool = True) -> int | None:
        """The largest batch whose estimate fits `capacity` (and the next one's does not), a
        dozen estimates; `exact=False`: by the share model this estimate calibrated, instantly
        (options.py; near this batch the same, further off within a few percent)."""
        return largest_batch(self.setup, self._card(capacity), exact=exact)

    def largest_seq_len(self, capacity: Any = None, exact: bool = True) -> int | None:
        """The longest sequence whose estimate fits `capacity` (and the next one's does not)."""
        return largest_seq_len(self.setup, self._card(capacity), exact=exact)

    def compare(self, capacity: Any = None) -> Any:
        """Full fine-tuning, LoRA and QLoRA, with and without gradient checkpointing."""
        return compare(self.setup, gpu(capacity) if capacity is not None else self.gpu)

    def advice(self, capacity: Any = None) -> list[dict[str, Any]]:
        """What to change when the step does not fit (each with its new estimate)."""
        return advice(self.setup, self._card(capacity))

    def _card(self, capacity: Any) -> Gpu:
        if capacity is not None:
            return gpu(capacity)
        if self.gpu is None:
            raise PlanError("which card? give a GPU name or a capacity in bytes (or gpu= to estimate)", key="gpu")
        return self.gpu

    # ---- views ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Everything the studio's memory panel shows, computed here."""
        parts = [
            {"name": k, "bytes": int(v), "color": COMPONENTS[k][0], "help": COMPONENTS[k][1]}
            for k, v in self._bar().items()
        ]
        out: dict[str, Any] = {
            "method": self.method,
            "peak_bytes": int(self.peak_bytes),
            "reserved_bytes": int(self.peak_bytes + self.allocator_bytes),
            "reserved_gap": {k: int(v) for k, v in self.reserved_gap.items()},
            "total_bytes": int(self.total_bytes),
            "overhead_bytes": int(self.overhead_bytes),
            "paged_bytes": int(self.paged_bytes),
            "phase": self.phase,
            "phases": {k: int(v) for k, v in self.phases.items()},
            "parts": parts,
            "setup": describe(self.setup),
            "gpu": None,
            "data_line": self.data_line,
            "reserved_over_data": int(self.reserved_over_data),
            "reserved_over_data_expandable": int(self.reserved_over_data_expandable),
            "data": self.data.to_json() if self.data is not None else None,
        }
        if self.gpu is not None:
            out["gpu"] = {
                **self.gpu.to_json(),
                "fits": self.fits(),
                "free_bytes": self.gpu.bytes - self.total_bytes,
            }
        return out

    def _bar(self) -> dict[str, int]:
        bar = {k: v for k, v in self.breakdown.items() if v > 0}
        if self.allocator_bytes:
            bar["allocator"] = self.allocator_bytes
        if self.paged_bytes:
            bar["paged optimizer"] = self.paged_bytes
        if self.overhead_bytes:
            bar["overhead"] = self.overhead_bytes
        return {k: bar[k] for k in COMPONENTS if k in bar}

    def figure(self) -> Any:
        """A plotly stacked bar of the breakdown (and the GPU's capacity when known)."""
        import plotly.graph_objects as go

        fig = go.Figure()
        for name, value in self._bar().items():
            fig.add_bar(
                y=["step"],
                x=[value / GiB],
                name=name,
                orientation="h",
                marker_color=COMPONENTS[name][0],
                hovertemplate=f"{name}: %{{x:.2f}} GiB<extra></extra>",
            )
        fig.update_layout(
            barmode="stack",
            height=220,
            xaxis_title="GiB",
            margin=dict(l=40, r=20, t=40, b=40),
            title=f"{self.total_bytes / GiB:.2f} GiB ({_METHODS[self.method]})",
        )
        if self.gpu is not None:
            fig.add_vline(x=self.gpu.bytes / GiB, line_dash="dash", annotation_text=self.gpu.name)
        return fig

    def _repr_html_(self) -> str:
        return render_html(self)


_LOOP_WORDS = {"trl": "TRL's loop", "trainer": "transformers' Trainer", "plain": "a plain loop"}


def describe(setup: Any) -> dict[str, Any]:
    """The settings an estimate was made for, in words and numbers."""
    plan = setup.plan
    return {
        "model": setup.model_class or getattr(setup.config, "model_type", "model"),
        "method": "full fine-tuning" if plan is None else plan.method,
        "batch_size": setup.batch_size,
        "seq_len": setup.seq_len,
        "rows": setup.rows,
        "dtype": setup.dtype,
        "autocast": setup.autocast,
        "gradient_checkpointing": setup.gradient_checkpointing,
        "optimizer": setup.optimizer,
        "loss": setup.loss,
        "trainer": setup.trainer,
        "quantization": setup.quantization,
        "double_quant": setup.double_quant,
        "padded": setup.padded,
        "packed": setup.packed,
        "masked": setup.masked,
        "attention": setup.attention,
        "loop": setup.loop,
    }


def rows_words(d: dict[str, Any]) -> str:
    """How the batch's rows reach attention, in words, from `describe`'s dict."""
    if d.get("packed"):
        return "rows packed into one (block-causal mask)" if d.get("masked") else "rows packed into one"
    if d.get("padded"):
        return "rows padded (attention mask)" if d.get("masked") else "rows padded"
    return "unpadded rows"


def render_html(est: MemoryEstimate) -> str:
    """A card: headline, an SVG stacked bar with the GPU's capacity, and the table."""
    d = describe(est.setup)
    head = f"<div>Estimate {html.escape(est.plan_line)}</div>"
    head += f"<b>{est.total_bytes / GiB:.2f} GiB</b> for one training step"
    if est.gpu is not None:
        verdict = "fits" if est.fits() else "does not fit"
        colour = "#2e7d32" if est.fits() else "#c62828"
        head += f" &middot; <span style='color:{colour}'>{verdict} on {html.escape(est.gpu.name)}</span>"
    settings = (
        f"{html.escape(str(d['model']))} &middot; {html.escape(str(d['method']))} &middot; "
        f"batch {d['batch_size']} x {d['seq_len']} tokens &middot; {d['dtype']}"
        f"{' + ' + d['autocast'] + ' autocast' if d['autocast'] else ''} &middot; "
        f"{'gradient checkpointing' if d['gradient_checkpointing'] else 'no checkpointing'} &middot; "
        f"{d['optimizer']} &middot; {_LOOP_WORDS[d['loop']]}, {d['loss']} loss &middot; "
        f"{rows_words(d)}"
    )
    rows = "".join(
        f"<tr><td><span style='display:inline-block;width:10px;height:10px;"
        f"background:{COMPONENTS[k][0]}'></span> "
        f"{html.escape(k)}</td><td style='text-align:right'>{v / GiB:.2f} GiB</td>"
        f"<td style='color:#777'>{html.escape(COMPONENTS[k][1])}</td></tr>"
        for k, v in est._bar().items()
    )
    note = (
        f"{_METHODS[est.method]}; peak during {html.escape(est.phase)}; tensors at the peak "
        f"{est.peak_bytes / GiB:.2f} GiB (compare with torch.cuda.max_memory_allocated)"
    )
    if est.allocator_bytes:
        parts = ", ".join(f"{k} {v / GiB:.2f}" for k, v in est.reserved_gap.items() if v)
        note += (
            f"; reserved {(est.peak_bytes + est.allocator_bytes) / GiB:.2f} GiB "
            f"(max_memory_reserved: {html.escape(parts)})"
        )
    varies = est.data is not None and len({b.seq_len for b in getattr(est.data, "items", [])}) > 1
    if varies and est.reserved_over_data_note:
        note += (f"; the data's batches vary in length, and blocks cached for one length may not serve the next: "
                 f"{html.escape(est.reserved_over_data_note)}")
    if est.reserved_over_data:
        note += (
            f"; over the data's steps (other batch lengths' blocks stay cached) max_memory_reserved reaches "
            f"{est.reserved_over_data / GiB:.2f} GiB on a card with room to spare"
        )
        if est.reserved_over_data_expandable and est.reserved_over_data_expandable < est.reserved_over_data:
            note += (
                f" ({est.reserved_over_data_expandable / GiB:.2f} GiB with "
                f"PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True, set before torch first uses the GPU)"
            )
        beyond = est.reserved_over_data + est.paged_bytes + est.overhead_bytes
        if est.gpu is not None and est.fits() and beyond > est.gpu.bytes:
            note += (
                f". On the {html.escape(est.gpu.name)} that cache does not fit: when it runs short the allocator "
                f"frees its cached blocks and retries (slower steps), and blocks pinned in half-used segments "
                f"can still make it run out; expandable segments avoid that"
            )
    return (
        f"<div class='jp-memory' style='font-family:sans-serif;font-size:13px'>"
        f"<div>{head}</div><div style='color:#555;margin:2px 0 6px'>{settings}</div>"
        + (f"<div style='color:#555;margin:-4px 0 6px'>{html.escape(est.data_line)}</div>" if est.data_line else "")
        + f"{_svg(est)}"
        f"<table style='border-collapse:collapse;margin-top:6px'>{rows}</table>"
        f"<div style='color:#777;margin-top:4px'>{note}</div></div>"
    )


def _svg(est: MemoryEstimate, width: int = 600, height: int = 26) -> str:
    bar = est._bar()
    scale = max(est.total_bytes, est.gpu.bytes if est.gpu else 0, 1)
    x, rects = 0.0, []
    for name, value in bar.items():
        w = width * value / scale
        rects.append(
            f"<rect x='{x:.1f}' y='0' width='{w:.1f}' height='{height}' fill='{COMPONENTS[name][0]}'>"
            f"<title>{html.escape(name)}: {value / GiB:.2f} GiB</title></rect>"
        )
        x += w
    if est.gpu is not None:
        gx = width * est.gpu.bytes / scale
        rects.append(
            f"<line x1='{gx:.1f}' x2='{gx:.1f}' y1='0' y2='{height + 4}' stroke='currentColor' "
            f"stroke-dasharray='3,2'><title>{html.escape(est.gpu.name)}</title></line>"
            f"<text x='{min(gx, width - 4):.1f}' y='{height + 16}' font-size='11' fill='currentColor' "
            f"text-anchor='end'>{html.escape(est.gpu.name)}: {est.gpu.bytes / GiB:.0f} GiB</text>"
        )
    return (
        f"<svg viewBox='0 0 {width + 2} {height + 20}' width='100%' role='img' "
        f"aria-label='memory breakdown'>{''.join(rects)}</svg>"
    )


def _flow(value: Any) -> str:
    """A plan value as YAML's flow style writes it: [q_proj, v_proj], {q_proj: 16}."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return str(value)
