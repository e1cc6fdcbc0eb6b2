"""`%peft estimate MODEL [options]`: the memory estimate from a line.

    %peft estimate model --batch 4 --seq 1024 --gpu A100-80GB
    %peft estimate ./llama-config --plan my_plan --gpu L4 --compare
    %peft estimate model --method lora --r 16 --targets q_proj,v_proj --gc --optimizer adamw_8bit

MODEL is a notebook variable holding a model or a config, or a local config folder. The plan
is `--plan VAR` (a Plan, YAML text or mapping in the notebook), or built from `--method`
and its options (`--method full`: full fine-tuning), or else the adapter the model carries
(after a `%%peft` cell), or full fine-tuning for a model without one. The estimate's first
line says which plan it is for. Mistakes are PlanErrors (no traceback).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .._errors import PlanError, did_you_mean
from .._namespace import lookup, public
from ..memory import estimate
from ..memory.options import Advice
from ..plan.plan import Plan


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print and exit the kernel's process
        raise PlanError(f"%peft estimate: {message}", choices=["--batch", "--seq", "--gpu", "--plan", "--method"])


def _parser() -> _Parser:
    p = _Parser(
        prog="%peft estimate",
        add_help=False,
        description="Peak GPU memory of one training step of a plan on a model.",
    )
    p.add_argument("model", help="notebook variable (model or config) or config folder")
    p.add_argument("--batch", type=int, help="per-device batch size")
    p.add_argument("--seq", type=int, help="sequence length (tokens)")
    p.add_argument("--gpu", help="a card (A100-80GB, L4, T4, H100...) or a size (24GB)")
    p.add_argument("--plan", help="notebook variable holding a Plan, YAML text or a mapping")
    p.add_argument("--method", help="a peft method (lora, dora, ia3, prompt_tuning...) or full")
    p.add_argument("--r", type=int, help="rank (LoRA-like methods)")
    p.add_argument("--alpha", type=float, help="lora_alpha")
    p.add_argument("--targets", help="comma-separated target modules, or all-linear")
    p.add_argument("--quantization", choices=["none", "4bit", "8bit"])
    p.add_argument("--dtype", help="weights dtype: float32, bfloat16, float16")
    p.add_argument("--optimizer", help="transformers optim name (adamw_torch_fused, adamw_8bit, ...)")
    p.add_argument("--loss", choices=["chunked", "full"])
    p.add_argument("--gc", dest="gc", action="store_true", default=None, help="gradient checkpointing on")
    p.add_argument("--no-gc", dest="gc", action="store_false", help="gradient checkpointing off")
    p.add_argument("--loop", choices=["trl", "trainer", "plain"],
                   help="what runs the step: TRL (default), transformers' Trainer, or your own loop")
    p.add_argument("--padded", dest="padded", action="store_true", default=None,
                   help="rows padded to the batch's longest (default unless packing or one row)")
    p.add_argument("--unpadded", dest="padded", action="store_false", help="rows of one length")
    p.add_argument("--packed", action="store_true", default=None,
                   help="padding-free rows: one row of batch x seq tokens (default: the train block's packing)")
    p.add_argument("--dataset", help="notebook variable holding the training data: the estimate is for its longest "
                                     "batch (default: the plan's train.dataset, when the notebook defines it)")
    p.add_argument("--tokenizer", help="notebook variable holding the tokenizer for --dataset (default: tokenizer)")
    p.add_argument("--simulate", action="store_true", help="simulate the step on fake tensors instead")
    p.add_argument("--compare", action="store_true", help="full fine-tuning vs LoRA vs QLoRA, side by side")
    p.add_argument("-h", "--help", action="store_true")
    return p


def estimate_magic(args: list[str], user_ns: dict[str, Any]) -> Any:
    """Parse `args`, estimate, display the estimate (and comparison or advice); return it."""
    parser = _parser()
    if any(a in ("-h", "--help") for a in args) or not args:
        print(parser.format_help() + __doc__)
        return None
    opts = parser.parse_args(args)

    source = _source(opts.model, user_ns)
    plan = _plan(opts, user_ns)
    est = estimate(
        source,
        plan,
        batch_size=opts.batch,
        seq_len=opts.seq,
        gpu=opts.gpu,
        dtype=opts.dtype,
        optimizer=opts.optimizer,
        gradient_checkpointing=opts.gc,
        loss=opts.loss,
        padded=opts.padded,
        packed=opts.packed,
        loop=opts.loop,
        quantization=opts.quantization,
        method="simulate" if opts.simulate else "analytic",
        user_ns=user_ns,
        **_data(opts, user_ns),
    )
    from IPython.display import display

    display(est)
    if opts.compare:
        display(est.compare())
    elif est.gpu is not None and not est.fits():
        _show_advice(est)
    return None


def _data(opts: argparse.Namespace, user_ns: dict[str, Any]) -> dict[str, Any]:
    """--dataset and --tokenizer looked up in the notebook (without --dataset: none here; the
    estimate takes the plan's train.dataset when the notebook defines it)."""
    if opts.dataset is None:
        if opts.tokenizer is not None:
            raise PlanError("--tokenizer goes with --dataset: name the data to tokenize", key="tokenizer")
        return {}
    tokenizer_name = opts.tokenizer or "tokenizer"
    if tokenizer_name not in user_ns:
        raise PlanError(f"no tokenizer {tokenizer_name!r} in the notebook to tokenize {opts.dataset!r} with: "
                        "name one with --tokenizer", key="tokenizer",
                        choices=did_you_mean(tokenizer_name, public(user_ns)))
    return {"dataset": lookup(user_ns, opts.dataset, "dataset"), "tokenizer": user_ns[tokenizer_name]}


def _show_advice(est: Any) -> None:
    from IPython.display import display

    display(Advice(est.advice(), est.gpu))


def _source(name: str, user_ns: dict[str, Any]) -> Any:
    if name in user_ns:
        return user_ns[name]
    if os.path.isdir(name):
        return name
    candidates = [k for k in public(user_ns) if hasattr(user_ns[k], "config")]
    raise PlanError(
        f"no notebook variable or config folder named {name!r}",
        key="model",
        value=name,
        choices=did_you_mean(name, candidates) or candidates,
    )


def _plan(opts: argparse.Namespace, user_ns: dict[str, Any]) -> Any:
    method_options = {k: v for k, v in (("r", opts.r), ("lora_alpha", opts.alpha)) if v is not None}
    if opts.plan is not None:
        if opts.method is not None or method_options or opts.targets:
            raise PlanError("give either --plan or --method with its options, not both", key="plan")
        return lookup(user_ns, opts.plan, "plan")
    method = opts.method or ("lora" if method_options or opts.targets else None)
    if method is None:  # the adapter the model carries, else full fine-tuning
        return None
    if method == "full":
        if method_options or opts.targets:
            raise PlanError("full fine-tuning takes no --r, --alpha or --targets", key="method")
        return "full"

    data: dict[str, Any] = {"method": method, **method_options}
    if opts.targets:
        targets = opts.targets.strip()
        data["target_modules"] = targets if targets == "all-linear" else [t for t in targets.split(",") if t]
    return Plan.from_dict(data)
