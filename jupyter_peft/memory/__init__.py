"""The memory of one training step: know it before training, check it against reality.

    est = jp.estimate(model, plan, batch_size=4, seq_len=1024, gpu="A100-80GB")
    est.total_bytes, est.breakdown, est.fits("L4"), est.largest_batch(), est.compare(), est.advice()

Three methods, one answer type (`MemoryEstimate`):
    analytic  instant (cached per model and plan): model states by formula, activations from a
              one/two-layer probe on fake tensors, the LM head and loss by formula (analytic.py)
    simulate  one whole training step on FakeTensors under PyTorch's MemTracker (simulate.py)
    measure   one step on a CUDA device, read from torch.cuda.max_memory_allocated (measure.py)

Every estimate has the allocated peak (`peak_bytes`, max_memory_allocated) and the reserved
one (`reserved_bytes`, max_memory_reserved: the simulated step's allocations and frees replayed
through a model of PyTorch's caching allocator, allocator.py and reserved.py; the instant
estimate replays a three-layer model's step stretched to the model's depth, stretch.py), with
`reserved_gap` saying what the difference is made of. `total_bytes` and `fits` use reserved +
paged state + the CUDA context. With `dataset=` and `tokenizer=` the step is the longest batch
the trainer will build from that data, and `est.data` says which step it is (data/).

Rooms: settings (what is trained and how), build (the model on meta), trace (fake execution as
CUDA would run it), step (the training step), probe, states, inventory, analytic, simulate,
allocator (PyTorch's caching allocator), reserved (allocated to reserved), varying (reserved over
the data's steps of varying length), measure, fit (GPUs,
overhead), sharding (per GPU), options (what-ifs), report (MemoryEstimate), stretch (the
instant estimate's whole step: a short model's, stretched). `%peft estimate` is
magics/estimate.py. May import: plan/, model/, the session, the root helpers.
"""

from __future__ import annotations

from typing import Any

from .._errors import PlanError, unknown
from .fit import GPUS
from .fit import gpu as as_gpu
from .fit import overhead as modelled_overhead
from .measure import measure
from .measure import peak_callback as make
from .report import MemoryEstimate
from .settings import resolve

__all__ = ["GPUS", "MemoryEstimate", "estimate", "estimate_magic", "peak_callback"]

METHODS = ("analytic", "simulate", "measure")


def estimate(
    model_or_config: Any,
    plan: Any = None,
    *,
    batch_size: int | None = None,
    seq_len: int | None = None,
    method: str = "analytic",
    optimizer: str | None = None,
    gradient_checkpointing: bool | None = None,
    dtype: str | None = None,
    gpu: Any = None,
    overhead: int | None = None,
    batch: dict[str, Any] | None = None,
    dataset: Any = None,
    tokenizer: Any = None,
    user_ns: Any = None,
    **options: Any,
) -> MemoryEstimate:
    """Peak accelerator memory of one training step of `plan` on `model_or_config`.

    `model_or_config`: a model (real or on `meta`; a PeftModel is read through its base), a
    transformers config, or a local config folder. `plan`: a Plan, its YAML or mapping, or None
    (or "full") for full fine-tuning. Unset options come from the plan's `train:` block (TRL's
    names), then TRL's GPU defaults. Other options: loop ("trl", "trainer" or "plain": what runs
    the step, settings.LOOPS), autocast, loss ("chunked": TRL's fused LM head; "full": logits),
    padded (rows padded to the longest: an attention mask), quantization, double_quant. `gpu`
    (a preset name or bytes) is the card `fits()` and the what-ifs compare against; `overhead`
    replaces the modelled CUDA context and the allocator's gap (bytes). `batch`
    (method="measure"): the user's longest batch.
    `dataset` and `tokenizer`: the data the run will train on; the step estimated is the longest
    batch the trainer's sampler builds from it, and `.data` (data.batches.Batches) says at which
    step it comes and the row lengths that make it (`batch_size` and `seq_len` then set the
    trainer's batch size and max_length). Without `dataset`, the data the plan's `train:` block
    names (`dataset: ds`, `tokenizer: tok`) is used when the notebook (or `user_ns`) defines it;
    `.data_note` says when it does not. `dataset=False`: the batch size and sequence length only.
    """
    import time

    if method not in METHODS:
        raise unknown("method", method, METHODS, key="method")
    start = time.perf_counter()
    plan, source = _plan_for(model_or_config, plan)
    setup = resolve(
        model_or_config,
        plan,
        batch_size=batch_size,
        seq_len=seq_len,
        optimizer=optimizer,
        gradient_checkpointing=gradient_checkpointing,
        dtype=dtype,
        **options,
    )
    data, note, name = None, "", ""
    if dataset is None and plan is not None:  # the data the plan's train block names, when the notebook has it
        from ..data.sources import from_train_block

        found = from_train_block(setup.plan, user_ns)
        dataset, note, name = found.dataset, found.note, found.name
        tokenizer = tokenizer if tokenizer is not None else found.tokenizer
    if dataset is not None and dataset is not False:
        setup, data = _longest_batch(setup, plan, dataset, tokenizer, seq_len, options.get("padded"))
    card = as_gpu(gpu) if gpu is not None else None
    if batch is not None and method != "measure":
        raise PlanError(
            "batch= is the batch method='measure' runs; the other methods use batch_size and seq_len",
            key="batch",
        )
    result = _run(method, setup, batch, card, data)
    result.gpu = card
    if overhead is not None:
        result.overhead_bytes = int(overhead)
        result.overhead_given = True
    result.seconds = time.perf_counter() - start
    result.plan_source = source
    result.data, result.data_note, result.data_name = data, note, name
    return result


def _longest_batch(setup: Any, plan: Any, dataset: Any, tokenizer: Any, seq_len: int | None,
                   padded: bool | None = None) -> tuple[Any, Any]:
    """The setup at the longest batch the trainer will build from `dataset`, and the batches
    (padded, unless `padded` says otherwise, when a row of that batch is shorter than its width)."""
    from ..data.batches import batches
    from ..data.checks import check
    from ..data.stand_in import build, train_block
    from .settings import PAIRED

    if tokenizer is None:
        raise PlanError("dataset= needs tokenizer=: the batches are the tokenized rows", key="tokenizer")
    train = train_block(plan, setup.trainer, seq_len, per_device_train_batch_size=setup.batch_size)
    check(dataset, train["trainer"], train.get("dataset_text_field", "text"))
    from ..session import session

    # the same data, tokenizer and train block give the same batches: tokenized once per session
    # (the studio re-estimates on every change; a large data set takes seconds to tokenize)
    fingerprint = getattr(dataset, "_fingerprint", None)  # a datasets.Dataset's content hash; a list has none
    if fingerprint is None:
        found = batches(build(dataset, tokenizer, train))
    else:
        tok = (id(tokenizer), getattr(tokenizer, "name_or_path", ""), len(tokenizer) if hasattr(tokenizer, "__len__")
               else 0, hash(str(getattr(tokenizer, "chat_template", ""))))
        key = ("batches", fingerprint, tok, repr(sorted(train.items(), key=lambda kv: kv[0])))
        found = session().profile(key, lambda: batches(build(dataset, tokenizer, train)))
    top = found.longest
    if top is None:
        raise PlanError("the data set gives no batches to train", key="dataset")
    rows = max(top.rows // (2 if setup.trainer in PAIRED else 1), 1)
    if padded is None:
        padded = any(length < top.seq_len for length in top.lengths)
    return setup.replace(batch_size=rows, seq_len=top.seq_len, padding=bool(padded)), found


def _plan_for(model: Any, plan: Any) -> tuple[Any, str]:
    """The plan to estimate and where it came from. No plan on a model that carries an adapter
    (a PeftModel, or a base `jp.apply` wrapped) means that adapter, not full fine-tuning;
    `plan="full"` asks for full fine-tuning of any model."""
    if plan is not None or not hasattr(model, "named_modules"):
        return plan, "given" if plan is not None else "none given"
    import sys

    if "peft" not in sys.modules:  # nothing can carry a peft adapter without peft imported
        return None, "none given"
    from ..model.adapt import find_peft_model, plan_of

    peft_model = find_peft_model(model)
    if peft_model is None:
        return None, "none given"
    return plan_of(peft_model), f"the adapter {peft_model.active_adapter!r} the model carries"


def _run(method: str, setup: Any, batch: Any, card: Any = None, data: Any = None) -> MemoryEstimate:
    from . import reserved

    if method == "analytic":
        from . import stretch
        from .analytic import analytic

        c = analytic(setup)
        r = stretch.replayed(setup, card)  # a short model's step, stretched to the model's depth
        if r is not None:
            stretch.calibrate(setup, c.state_sizes, c.peak_bytes, r, card)
        else:
            r = reserved.instant(c.state_sizes, c.peak_bytes, card)
        if data is not None:
            over_data = _over_data(setup, stretch.stretched, data, card, r.reserved_bytes)
        out = MemoryEstimate(
            c.peak_bytes,
            c.breakdown,
            method,
            setup,
            modelled_overhead(c.peak_bytes),
            c.paged_bytes,
            c.phase,
            c.phases,
        )
        if data is not None:
            out.reserved_over_data, out.reserved_over_data_note, out.reserved_over_data_expandable = over_data
    elif method == "simulate":
        from .simulate import simulate

        s = simulate(setup)
        r = reserved.replayed(s.events, s.step_start, card)
        if data is not None:
            traces = {setup.seq_len: (s.events, s.step_start)}

            def trace(at: Any) -> Any:  # the setup at another length (varying.over_data)
                if at.seq_len not in traces:
                    other = simulate(at)
                    traces[at.seq_len] = (other.events, other.step_start)
                return traces[at.seq_len]

            over_data = _over_data(setup, trace, data, card, r.reserved_bytes)
        out = MemoryEstimate(
            s.peak_bytes, s.breakdown, method, setup, modelled_overhead(s.peak_bytes), s.paged_bytes, s.phase
        )
        if data is not None:
            out.reserved_over_data, out.reserved_over_data_note, out.reserved_over_data_expandable = over_data
    else:
        m = measure(setup, batch)
        return MemoryEstimate(m.peak_bytes, m.breakdown, method, setup, m.overhead_bytes, 0, "measured step",
                              reserved_bytes=m.reserved_bytes, overhead_given=True)
    out.reserved_bytes = max(r.reserved_bytes, out.peak_bytes)
    out.reserved_gap = r.gap
    return out


def _over_data(setup: Any, trace: Any, data: Any, card: Any, steady: int) -> tuple[int, str, int]:
    """(reserved over the data's batches, why not, the same with expandable segments): the
    data's batches in order, blocks cached for other lengths staying reserved (varying.py);
    never under `steady`, the one-length step's reserved peak."""
    from .varying import over_data

    varied, why, expandable = over_data(setup, trace, data, card)
    if varied is None:
        return 0, why, 0
    return max(varied.reserved_bytes, steady), why, expandable.reserved_bytes if expandable is not None else 0


def peak_callback() -> Any:
    """A transformers TrainerCallback logging `memory/peak_gib` (torch.cuda.max_memory_allocated)
    each step, for a run's dashboard to show beside `estimate(...).peak_bytes`."""
    return make()
