"""`jp.preview`: a data set as the trainer will see it, before any training.

    view = jp.preview(ds, tok, trainer="sft", plan=None, max_length=None)

- format errors first (checks.py): a PlanError naming the row and the column;
- TRL's own data path on the stand-in trainer (stand_in.py): rows tokenized and templated,
  with the tokens that train (`labels != -100` of the trainer's collated batch; for
  preference data the completion mask of chosen and rejected) marked;
- lengths before the cut (a second pass without `max_length`), how many rows the cut
  truncates and how many TRL drops (nothing left to train), a plotly histogram with the cut;
- the batches in the sampler's order (batches.py): padding or packing efficiency, the longest.

Large data sets are sampled: the first `sample` rows (stated in the view as `sampled`); the
estimate's data path (`jp.estimate(..., dataset=)`) reads every row.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any

from .batches import Batches, batches, trained_mask
from .checks import Problem, check, problems
from .stand_in import build, train_block

SAMPLE = 2000


@dataclass
class Row:
    index: int
    """Row of the (sampled) data set after TRL's preparation."""
    tokens: list[str]
    trained: list[bool]
    """One flag per token: does it carry a label (the loss trains on it)."""
    part: str = ""
    """Preference data: chosen or rejected."""

    def html(self) -> str:
        spans = []
        for text, on in zip(self.tokens, self.trained):
            style = "background:#c8e6c9" if on else "color:#777"
            spans.append(f"<span style='{style}'>{html.escape(text)}</span>")
        label = f"<b>{html.escape(self.part)}</b> " if self.part else ""
        return f"<div style='font-family:monospace;white-space:pre-wrap;margin:4px 0'>{label}{''.join(spans)}</div>"


@dataclass(repr=False)
class DataView:
    """What `preview` found (see the module docstring)."""

    trainer: str
    rows: list[Row]
    lengths: list[int]
    """Tokens per row before the cut (preference data: prompt + the longer completion)."""
    max_length: int | None
    truncated: int
    dropped: int
    total_rows: int
    sampled: int
    batches: Batches
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def longest(self) -> Any:
        return self.batches.longest

    @property
    def packing_efficiency(self) -> float:
        return self.batches.efficiency

    def figure(self) -> Any:
        """Token lengths (plotly histogram), the max_length cut drawn."""
        import plotly.graph_objects as go

        fig = go.Figure(go.Histogram(x=self.lengths, nbinsx=50, marker_color="#4c72b0", name="rows"))
        if self.max_length:
            fig.add_vline(x=self.max_length, line_dash="dash", line_color="#c62828",
                          annotation_text=f"max_length {self.max_length}")
        fig.update_layout(height=260, xaxis_title="tokens per row", yaxis_title="rows",
                          margin=dict(l=40, r=20, t=40, b=40),
                          title=f"{self.sampled} rows: {self.truncated} truncated, {self.dropped} dropped")
        return fig

    def to_json(self) -> dict[str, Any]:
        return {
            "trainer": self.trainer,
            "total_rows": self.total_rows,
            "sampled": self.sampled,
            "max_length": self.max_length,
            "truncated": self.truncated,
            "dropped": self.dropped,
            "lengths": {"min": min(self.lengths, default=0), "max": max(self.lengths, default=0),
                        "mean": sum(self.lengths) / len(self.lengths) if self.lengths else 0},
            "batches": self.batches.to_json(),
            "problems": [str(p) for p in self.problems],
        }

    def summary(self) -> str:
        """One line: the rows seen, the cut, the padding and the longest batch."""
        line = (f"{self.sampled} of {self.total_rows} rows as the {self.trainer} trainer sees them: "
                f"{self.truncated} truncated at max_length {self.max_length}, {self.dropped} dropped; "
                f"padding efficiency {self.batches.efficiency:.0%}")
        top = self.longest
        if top is not None:
            line += (f"; longest batch: step {top.step} ({top.rows} x {top.seq_len} tokens, rows of "
                     f"{', '.join(map(str, top.lengths))})")
        if self.problems:
            line += f"; {len(self.problems)} format problem(s), the first: {self.problems[0]}"
        return line

    def __repr__(self) -> str:
        return f"DataView({self.summary()})"

    def _repr_html_(self) -> str:
        head = html.escape(self.summary())
        rows = "".join(r.html() for r in self.rows)
        legend = "<div style='color:#555'>highlighted: tokens that train (labels != -100)</div>"
        return f"<div class='jp-data' style='font-size:13px;max-width:760px'><div>{head}</div>{legend}{rows}</div>"


def preview(dataset: Any, tokenizer: Any, trainer: str = "sft", plan: Any = None, max_length: int | None = None,
            rows: int = 3, sample: int = SAMPLE, **train_fields: Any) -> DataView:
    """A DataView of `dataset` for `trainer` (see the module docstring). `train_fields` are TRL
    config fields (assistant_only_loss, completion_only_loss, packing, seed, ...)."""
    start = time.perf_counter()
    total = len(dataset)
    data = dataset.select(range(min(sample, total))) if total > sample and hasattr(dataset, "select") else dataset
    train = train_block(plan, trainer, max_length, **train_fields)
    text_field = train.get("dataset_text_field", "text")
    check(data, train["trainer"], text_field)
    full = build(data, tokenizer, {**train, "max_length": None}) if train["trainer"] == "sft" else None
    real = build(data, tokenizer, train)
    cut = getattr(real.args, "max_length", None)
    prepared = real.train_dataset
    lengths = _lengths(full.train_dataset if full is not None else prepared)
    truncated = sum(1 for n in lengths if cut and n > cut)
    if full is None and cut:  # preference data: TRL truncates as it collates; count what exceeds the cut
        truncated = sum(1 for n in lengths if n > cut)
    view = DataView(
        train["trainer"],
        _rows(real, rows),
        lengths,
        cut,
        truncated,
        len(data) - len(prepared) if not getattr(real.args, "packing", False) else 0,
        total,
        len(data),
        batches(real),
    )
    view.seconds = time.perf_counter() - start
    return view


def _lengths(prepared: Any) -> list[int]:
    names = prepared.column_names
    if "input_ids" in names:
        return [len(ids) for ids in prepared["input_ids"]]
    prompt = prepared["prompt_ids"] if "prompt_ids" in names else [[]] * len(prepared)
    chosen = prepared["chosen_ids"] if "chosen_ids" in names else [[]] * len(prepared)
    rejected = prepared["rejected_ids"] if "rejected_ids" in names else [[]] * len(prepared)
    return [len(p) + max(len(c), len(r)) for p, c, r in zip(prompt, chosen, rejected)]


def _rows(trainer: Any, count: int) -> list[Row]:
    """The first `count` rows, collated one at a time by the trainer's own collator."""
    out = []
    prepared = trainer.train_dataset
    tok = trainer.processing_class
    for i in range(min(count, len(prepared))):
        batch = trainer.data_collator([prepared[i]])
        mask = trained_mask(batch)
        ids = batch["input_ids"]
        attention = batch.get("attention_mask")
        parts = ["chosen", "rejected"] if ids.shape[0] == 2 else [""]
        for r, part in enumerate(parts):
            keep = attention[r].bool() if attention is not None else ids[r] >= 0
            row_ids = ids[r][keep].tolist()
            flags = mask[r][keep].tolist()
            out.append(Row(i, [tok.decode([t]) for t in row_ids], [bool(f) for f in flags], part))
    return out


def data_problems(dataset: Any, trainer: str = "sft", text_field: str = "text") -> list[Problem]:
    """The format errors alone (for a view that should list them instead of raising)."""
    return problems(dataset, trainer, text_field)
