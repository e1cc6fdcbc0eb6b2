"""The studio's memory panel: its inputs, and what it shows, as JSON built from `jp.estimate`.

Inputs (the `memory_inputs` trait): batch size, sequence length and gradient checkpointing
(None: the plan's `train:` block, else memory's defaults), the GPU (a preset of
`memory.fit.GPUS`, this machine's CUDA device, or a custom size in GiB), and whether the
"what fits" table is open. The panel (the `memory` trait) holds every number and label the
page draws: the total, the stacked bar's parts with their share of the bar, the verdict on
the GPU and the largest batch that fits, and, when open, full fine-tuning / LoRA / QLoRA side
by side and what to change when the step does not fit. `compute` makes it, on the studio's
estimator thread.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..._errors import PlanError
from ..._format import format_bytes as size_text
from ...memory import estimate
from ...memory.fit import GPUS, GiB, Gpu, MiB
from ...memory.options import _MAX_BATCH as MAX_BATCH  # where memory's batch search stops
from ...memory.report import rows_words

DEFAULT_GPU = "A100-80GB"
CUSTOM = "custom"
LOCAL = "this GPU"


# ---- inputs ------------------------------------------------------------------------------


def local_gpu() -> Gpu | None:
    """This machine's first CUDA device (torch is already imported: the studio holds a model)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return Gpu(f"{props.name} ({size_text(props.total_memory)})", int(props.total_memory))


def default_inputs() -> dict[str, Any]:
    return {
        "batch_size": None,
        "seq_len": None,
        "gradient_checkpointing": None,
        "gpu": LOCAL if local_gpu() is not None else DEFAULT_GPU,
        "custom_gib": 24.0,
        "what_fits": False,
    }


def gpu_choices() -> list[dict[str, str]]:
    """The GPU picker's entries: this machine's card first when it has one, the presets with
    their capacity, and a custom size."""
    local = local_gpu()
    out = [{"value": LOCAL, "text": f"this GPU: {local.name}"}] if local is not None else []
    out += [{"value": name, "text": f"{name} · {size_text(mib * MiB)}"} for name, mib in GPUS.items()]
    return [*out, {"value": CUSTOM, "text": "custom size (GiB)"}]


def updated_inputs(inputs: dict[str, Any], msg: dict[str, Any]) -> dict[str, Any]:
    """`inputs` with the page's changes in `msg`, each checked; PlanError keyed
    `memory.<input>` (the inputs unchanged) for a bad one."""
    out = dict(inputs)
    for key in ("batch_size", "seq_len"):
        if key in msg:
            out[key] = _positive_int(msg[key], key)
    if "gradient_checkpointing" in msg:
        value = msg["gradient_checkpointing"]
        if value not in (None, True, False):
            raise PlanError(f"{value!r} is not valid: on, off or default", key="memory.gradient_checkpointing")
        out["gradient_checkpointing"] = value
    if "gpu" in msg:
        choices = [c["value"] for c in gpu_choices()]
        if msg["gpu"] not in choices:
            raise PlanError(f"unknown GPU {msg['gpu']!r}", key="memory.gpu", value=msg["gpu"], choices=choices)
        out["gpu"] = msg["gpu"]
    if "custom_gib" in msg:
        out["custom_gib"] = _positive_number(msg["custom_gib"], "custom_gib")
    if "what_fits" in msg:
        out["what_fits"] = bool(msg["what_fits"])
    return out


def _positive_int(value: Any, key: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None  # back to the plan's train block, or memory's default
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number <= 0 or isinstance(value, bool):
        raise PlanError(f"{value!r} is not valid: expected a positive integer", key=f"memory.{key}", value=value)
    return number


def _positive_number(value: Any, key: str) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = 0.0
    if not number > 0 or number == float("inf") or isinstance(value, bool):
        raise PlanError(f"{value!r} is not valid: expected a size in GiB", key=f"memory.{key}", value=value)
    return number


def gpu_of(inputs: dict[str, Any]) -> Gpu | str:
    """The card the inputs name, as `estimate(gpu=...)` takes it."""
    if inputs["gpu"] == CUSTOM:
        return Gpu(f"{inputs['custom_gib']:g} GiB", int(inputs["custom_gib"] * GiB))
    if inputs["gpu"] == LOCAL:
        return local_gpu() or DEFAULT_GPU
    return str(inputs["gpu"])


def estimate_options(inputs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `jp.estimate` for these inputs."""
    return {
        "batch_size": inputs["batch_size"],
        "seq_len": inputs["seq_len"],
        "gradient_checkpointing": inputs["gradient_checkpointing"],
        "gpu": gpu_of(inputs),
    }


# ---- what the panel shows ----------------------------------------------------------------


def compute(
    source: Any,
    plan: Any,
    inputs: dict[str, Any],
    publish: Callable[[dict[str, Any]], None],
    wanted: Callable[[], bool],
    data: Any = None,
) -> None:
    """The estimator thread's job: the panel for `plan` on `source` (a `read_model` copy) with
    `inputs`, then, when "what fits" is open and the result is still `wanted`, the panel with
    the comparison. Errors become panels with words: the studio never breaks on them."""
    try:
        est = estimate(source, plan, **estimate_options(inputs), **_data_options(data))
        if data is not None and data.dataset is None:
            est.data_note = data.note  # the plan names data the notebook does not have
        shown = panel(est)
    except PlanError as err:
        return publish(message("error", err.message))
    except Exception as err:  # a library refusing this model or plan: say so
        return publish(message("error", f"{type(err).__name__}: {err}"))
    publish(shown)
    if inputs["what_fits"] and wanted():
        try:
            publish({**shown, "what_fits": what_fits(est)})
        except Exception as err:  # noqa: BLE001 - the estimate above stays shown
            publish({**shown, "what_fits": {"error": f"{type(err).__name__}: {err}"}})


def _data_options(data: Any) -> dict[str, Any]:
    """`jp.estimate`'s data arguments for the studio's DataSource (data/sources.py): the data set
    the studio was given or its plan's train block names, or none (`dataset=False`: the panel's
    batch size and length; the note says why the plan's data is not used)."""
    if data is None or data.dataset is None:
        return {"dataset": False}
    return {"dataset": data.dataset, "tokenizer": data.tokenizer}


def panel(est: Any) -> dict[str, Any]:
    """The panel for a MemoryEstimate made with a GPU (see the module docstring)."""
    data = est.to_json()
    card = data["gpu"]
    scale = max(data["total_bytes"], 1)  # the bar is the step; a card smaller than it is a line across
    parts = [{**p, "text": size_text(p["bytes"]), "share": round(100.0 * p["bytes"] / scale, 3)} for p in data["parts"]]
    setup = data["setup"]
    return {
        "state": "ready",
        "pending": False,
        "total_bytes": data["total_bytes"],
        "total_text": size_text(data["total_bytes"]),
        "peak_text": f"tensors at the peak {size_text(data['peak_bytes'])} (during {data['phase']})",
        "parts": parts,
        "setup": {k: setup[k] for k in ("batch_size", "seq_len", "gradient_checkpointing")},
        "setup_text": _setup_text(setup),
        "data_text": data["data_line"],
        "gpu": _gpu_record(est, card, scale) if card else None,
        "what_fits": None,
    }


def _gpu_record(est: Any, card: dict[str, Any], scale: int) -> dict[str, Any]:
    free = card["free_bytes"]
    used = 100.0 * est.total_bytes / card["bytes"]
    verdict = (
        f"fits on {card['name']}: {used:.0f}% used, {size_text(free)} free"
        if card["fits"]
        else f"does not fit on {card['name']}: {size_text(-free)} over"
    )
    largest = est.largest_batch(exact=False)  # instant: the share model this estimate calibrated
    capped = largest == MAX_BATCH
    return {
        "name": card["name"],
        "bytes": card["bytes"],
        "fits": card["fits"],
        "verdict": verdict,
        "line": round(100.0 * card["bytes"] / scale, 3) if card["bytes"] < scale else None,
        "largest_batch": largest,
        "largest_batch_text": (
            "not even batch 1 fits"
            if largest is None
            else f"largest batch that fits: {'' if capped else 'about '}{largest}{' or more' if capped else ''}"
        ),
    }


def _setup_text(s: dict[str, Any]) -> str:
    autocast = f" + {s['autocast']} autocast" if s["autocast"] else ""
    ckpt = "gradient checkpointing" if s["gradient_checkpointing"] else "no checkpointing"
    loss = "chunked LM head" if s.get("loss") == "chunked" else "full logits"
    return (
        f"{s['method']} · batch {s['batch_size']} × {s['seq_len']} tokens · {s['dtype']}{autocast} · "
        f"{ckpt} · {s['optimizer']} · {loss} · {rows_words(s)}"
    )


def plan_label(plan: Any, label: str) -> str:
    """A "what fits" row's name for the studio's own plan: with its per-group ranks, so a plan
    with `self_attn.q_proj: 32` does not read as plain `lora r=8`."""
    ranks = getattr(plan, "ranks", None) or {}
    if not ranks or not label.startswith(f"{plan.method} r="):
        return label
    shown = ", ".join(f"{k} {v}" for k, v in list(ranks.items())[:2]) + (", …" if len(ranks) > 2 else "")
    return f"{label} ({shown})"


def what_fits(est: Any) -> dict[str, Any]:
    """Full fine-tuning, LoRA and QLoRA with and without checkpointing on the estimate's GPU,
    and, when the step does not fit, what to change (each change estimated)."""
    plan = getattr(est.setup, "plan", None)
    rows = [
        {
            "label": plan_label(plan, r.label) if plan is not None else r.label,
            "checkpointing": "on" if r.gradient_checkpointing else "off",
            "total_text": size_text(r.total_bytes),
            "fits": bool(r.fits),
            "largest_batch_text": str(r.largest_batch) if r.largest_batch is not None else "–",
        }
        for r in est.compare().rows
    ]
    advice = [
        {"change": a["change"], "total_text": size_text(a["total_bytes"]), "fits": a["fits"]}
        for a in (est.advice() if not est.fits() else [])
    ]
    return {"rows": rows, "advice": advice}


def pending(previous: dict[str, Any]) -> dict[str, Any]:
    """The panel while a new estimate is computed: the last numbers, marked as pending."""
    return {**previous, "pending": True} if previous.get("state") == "ready" else {"state": "pending", "pending": True}


def message(state: str, text: str) -> dict[str, Any]:
    """A panel with words only: "error" (the estimate failed) or "off" (no plan to estimate)."""
    return {"state": state, "pending": False, "message": text}
