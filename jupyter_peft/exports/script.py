"""A Plan as a standalone training script: peft + TRL + transformers + datasets, no jupyter_peft.

The script spells out the notebook's settings as literals: `peft_config()` builds the same
peft config the notebook passed to `get_peft_model`, `training_config()` the same TRL config
(only the fields that differ from the libraries' defaults are written). Running it is guarded
by `if __name__ == "__main__"`, so a test (or a user) can import it and compare both configs
with the notebook's. It runs as one process (`python train.py`) or many (`accelerate launch`),
and refuses to run as one process on a multi-GPU machine, where transformers would silently
fall back to DataParallel (trl #1303). It carries the callback of link.py, copied verbatim:
progress as JSON lines in the output folder, and the notebook's Stop / Save now through a
control file there (jp.launch); run by hand, it only writes metrics.jsonl.
"""

from __future__ import annotations

import textwrap
from typing import Any

from ..plan.train_config import TRAINERS
from .source import Source, docstring, python_literal


def render(
    source: Source,
    *,
    data: str | None,
    eval_data: str | None,
    output_dir: str,
    commands: list[str],
    notes: list[str],
) -> str:
    """The script's text. Paths are as they should appear: relative ones resolve against the
    script's own folder. `commands` and `notes` go in the docstring."""
    parts = [
        _docstring(source, commands, notes),
        _HEADER.format(
            base=python_literal(source.base),
            data=_path(data),
            eval_data=_path(eval_data),
            output_dir=_path(output_dir),
            dtype=python_literal(source.dtype or "auto"),
        ),
        _peft_function(source),
        _training_function(source),
    ]
    if source.quantization != "none":
        parts += [_quantization_function(source), _DEVICE_MAP]
    if source.reward_funcs:
        parts.append(_reward_functions(source))
    parts += [_load_model(source), _LOAD_DATA, _CHECK_LAUNCH, _link(), _main(source), _FOOTER]
    return "\n\n\n".join(p.strip("\n") for p in parts if p) + "\n"


def _docstring(source: Source, commands: list[str], notes: list[str]) -> str:
    """The script's docstring (`source.docstring`: raw for regex backslashes, escaped when a value
    holds a quote): what it trains, how to run it, notes."""
    plan_yaml = textwrap.indent(source.plan.to_yaml().rstrip(), "    ")
    runs = "\n".join(f"    {c}" for c in commands)
    adapts = ", ".join(f"{role} x{n}" for role, n in source.adapts)
    adapts_line = f"\nIt adapts {sum(n for _, n in source.adapts)} modules: {adapts}.\n" if adapts else ""
    notes_part = "\nNotes:\n" + "\n".join(f"- {n}" for n in notes) + "\n" if notes else ""
    title = f"{source.plan.method} fine-tuning of {source.base} with TRL's {_trainer(source).trainer}"
    ours = "and jupyter_peft, whose tuner registers the method with peft" if _config_module(source) != "peft" else ""
    return "#!/usr/bin/env python\n" + docstring(f'''{title}.

Exported by jupyter_peft from a notebook plan. Needs torch, transformers, peft, trl and
datasets{" (and bitsandbytes)" if source.quantization != "none" else ""}; {ours or "not jupyter_peft"}.
Run from this folder (the data and output paths are relative to this file):

{runs}
{adapts_line}{notes_part}
The plan it came from:

{plan_yaml}
''')


def _path(path: str | None) -> str:
    if path is None:
        return "None"
    if path.startswith("/"):
        return f"Path({path!r})"
    return f"HERE / {path!r}"


def _trainer(source: Source) -> Any:
    return TRAINERS[source.trainer]


def _call(callee: str, kwargs: dict[str, Any], indent: str = "    ") -> str:
    """`callee(\n    key=value,\n)` with one literal argument per line."""
    if not kwargs:
        return f"{callee}()"
    inner = "".join(f"{indent}    {k}={python_literal(v)},\n" for k, v in kwargs.items())
    return f"{callee}(\n{inner}{indent})"


_HEADER = """
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = {base}  # local folder or hub id of the base model
DTYPE = {dtype}  # the dtype the notebook's base was in ("auto": the checkpoint's own)
DATA = {data}  # JSONL or Parquet, one example per row
EVAL_DATA = {eval_data}
OUTPUT_DIR = {output_dir}
"""


def _peft_function(source: Source) -> str:
    return f'''
def peft_config():
    """The adapter: the same peft config the notebook applied (fields that differ from peft's defaults)."""
    from {_config_module(source)} import {source.peft_class}

    return {_call(source.peft_class, source.peft_kwargs)}
'''


def _config_module(source: Source) -> str:
    """Where the script imports the config class: peft, or for our own methods (bottleneck) the
    jupyter_peft.tuners package that defines it, whose import registers the method with peft."""
    module = type(source.peft_config).__module__
    return "peft" if module.split(".")[0] == "peft" else module.rpartition(".")[0]


def _training_function(source: Source) -> str:
    spec = _trainer(source)
    return f'''
def training_config(output_dir=OUTPUT_DIR, **overrides):
    """TRL's {spec.config} as the notebook built it (fields that differ from TRL's defaults)."""
    from {spec.module} import {spec.config}

    settings = {_call("dict", source.train_kwargs)}
    return {spec.config}(output_dir=str(output_dir), **{{**settings, **overrides}})
'''


def _quantization_function(source: Source) -> str:
    return f'''
def quantization_config():
    """The base is loaded {source.quantization} with bitsandbytes, as in the notebook."""
    from transformers import BitsAndBytesConfig

    return {_call("BitsAndBytesConfig", source.quant_kwargs)}
'''


_DEVICE_MAP = '''
def device_map():
    """Where a quantized base goes: each process's own GPU; under FSDP or DeepSpeed nowhere
    yet (they place the shards), on a machine without GPU the CPU."""
    import torch
    from accelerate import PartialState

    if os.environ.get("ACCELERATE_USE_FSDP") == "true" or os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true":
        return None
    if not torch.cuda.is_available():
        return "cpu"
    return {"": PartialState().local_process_index}
'''


def _reward_functions(source: Source) -> str:
    blocks = [textwrap.dedent(src).rstrip() for _, src in source.reward_funcs if src is not None]
    names = ", ".join(name if src is not None and name.isidentifier() else repr(name)
                      for name, src in source.reward_funcs)
    copied = "\n\n\n".join(blocks)
    head = "# ---- reward functions, copied from the notebook (check what they read from globals) ----"
    return f"{head}\n\n{copied}\n\n\nREWARD_FUNCS = [{names}]" if copied else f"REWARD_FUNCS = [{names}]"


def _load_model(source: Source) -> str:
    extra = ""
    if source.quantization != "none":
        extra += "\n        quantization_config=quantization_config(),\n        device_map=device_map(),"
    if source.trainer == "reward":
        extra += "\n        num_labels=1,  # one score per sequence"
    return f'''
def load_model(base=BASE):
    """The base model and its tokenizer."""
    from transformers import {source.auto_class}, AutoTokenizer

    model = {source.auto_class}.from_pretrained(
        base,
        dtype=DTYPE,{extra}
    )
    return model, AutoTokenizer.from_pretrained(base)
'''


_LOAD_DATA = '''
def load_data(path):
    """A JSONL or Parquet file as a datasets.Dataset."""
    from datasets import load_dataset

    kind = "parquet" if str(path).endswith(".parquet") else "json"
    return load_dataset(kind, data_files=str(path), split="train")
'''


_CHECK_LAUNCH = '''
def check_launch():
    """One process on a machine with several GPUs would train with DataParallel (slow, and not
    what a DDP/FSDP/DeepSpeed config asks for): refuse and say how to launch."""
    import torch

    gpus = torch.cuda.device_count()
    if gpus > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        sys.exit(
            f"{gpus} GPUs but one process: launch with `accelerate launch --config_file accelerate.yaml "
            f"{Path(__file__).name}` (see the top of this file), or use one GPU: CUDA_VISIBLE_DEVICES=0"
        )


def report_launch(args):
    """One line from the main process: how many processes, which backend, the global batch."""
    state = args.distributed_state
    if state.is_main_process:
        batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * state.num_processes
        print(
            f"launched: {state.num_processes} process(es), {state.distributed_type.value}, "
            f"backend {state.backend}; global batch {args.per_device_train_batch_size} x "
            f"{args.gradient_accumulation_steps} x {state.num_processes} = {batch}",
            flush=True,
        )
'''


def _link() -> str:
    """The callback that links a run to the notebook that launched it (link.py, copied verbatim:
    progress lines out, Stop / Save now in; by hand it only writes metrics.jsonl)."""
    from pathlib import Path

    from .link import MARKER

    text = Path(__file__).with_name("link.py").read_text()

    head = "# ---- progress for the notebook, and its Stop / Save now (inert without control.json) ----"
    return head + "\n" + text.split(MARKER + "\n", 1)[1]


def _main(source: Source) -> str:
    spec = _trainer(source)
    quantized = source.quantization != "none"
    prepare = (
        "\n    from peft import prepare_model_for_kbit_training\n\n"
        "    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.gradient_checkpointing)"
        if quantized
        else ""
    )
    rewards = "\n        reward_funcs=REWARD_FUNCS," if source.reward_funcs else ""
    return f"""
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\\n")[1] if __doc__ else None)
    parser.add_argument("--base", default=BASE, help="base model folder or hub id (default: %(default)s)")
    parser.add_argument("--data", default=DATA, required=DATA is None, help="training data, JSONL or Parquet")
    parser.add_argument("--eval-data", default=EVAL_DATA, help="evaluation data, JSONL or Parquet")
    parser.add_argument("--output-dir", default=OUTPUT_DIR, help="where the adapter is saved")
    parser.add_argument("--max-steps", type=int, help="override max_steps (e.g. a quick check on the cluster)")
    return parser.parse_args(argv)


def main(argv=None):
    options = parse_args(argv)
    check_launch()
    from {spec.module} import {spec.trainer}

    overrides = {{"max_steps": options.max_steps}} if options.max_steps else {{}}
    args = training_config(options.output_dir, **overrides)
    report_launch(args)
    model, tokenizer = load_model(options.base){prepare}
    trainer = {spec.trainer}(
        model=model,{rewards}
        args=args,
        train_dataset=load_data(options.data),
        eval_dataset=load_data(options.eval_data) if options.eval_data else None,
        processing_class=tokenizer,
        peft_config=peft_config(),
    )
    link = notebook_link(args.output_dir)
    trainer.add_callback(link)
    trainer.train()
    trainer.save_model(options.output_dir)
    link.done(trainer.state, options.output_dir)
    if args.distributed_state.is_main_process:
        print(f"adapter saved to {{options.output_dir}}", flush=True)
"""


_FOOTER = """
if __name__ == "__main__":
    main()
"""
