"""A Plan as a config file for TRL's command line: `trl sft --config trl_sft.yaml`.

The file holds three of TRL's own argument groups, by their field names: the trainer config
(SFTConfig, DPOConfig, ...: the same keyword arguments the notebook used), TRL's
`ModelConfig` (model path, dtype, `use_peft` and the `lora_*` options, bitsandbytes) and the
data (`datasets:` or `dataset_name:`). TRL's CLI builds only LoRA adapters, from a fixed set
of options, and has commands for some trainers only; what it cannot carry is listed by
`dropped()` and the export refuses (or, when asked to be lossy, writes the list at the top of
the file). Nothing is left out silently.
"""

from __future__ import annotations

from typing import Any

from .._errors import PlanError
from .source import Source, comment

# The trainers `trl` has a command for (trl/cli/commands), checked against the installed TRL.
CLI_TRAINERS = ("sft", "dpo", "grpo", "kto", "reward", "rloo")
# LoraConfig field -> TRL ModelConfig field. TRL passes all of these (and bias="none") to LoraConfig.
LORA_FIELDS = {
    "r": "lora_r",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "target_modules": "lora_target_modules",
    "target_parameters": "lora_target_parameters",
    "modules_to_save": "lora_modules_to_save",
    "task_type": "lora_task_type",
    "use_rslora": "use_rslora",
    "use_dora": "use_dora",
}


def cli_trainers() -> list[str]:
    """The training commands the installed `trl` offers (of the trainers a plan can name)."""
    from trl.cli.commands import get_commands

    names = {c.name for c in get_commands()}
    return [t for t in CLI_TRAINERS if t in names]


def model_fields(source: Source) -> tuple[dict[str, Any], list[str]]:
    """(TRL ModelConfig fields, what they cannot say) for the source's model and adapter."""
    dropped: list[str] = []
    fields: dict[str, Any] = {"model_name_or_path": source.base, "dtype": source.dtype or "auto", "use_peft": True}
    if source.peft_class != "LoraConfig":
        dropped.append(f"method {source.plan.method}: TRL's CLI builds only LoRA adapters (ModelConfig.use_peft)")
        return fields, dropped
    config = source.peft_config
    for name, trl_name in LORA_FIELDS.items():
        value = source.peft_kwargs.get(name, getattr(config, name))
        fields[trl_name] = sorted(value) if isinstance(value, set) else getattr(value, "value", value)
    for name, value in source.peft_kwargs.items():
        if name not in LORA_FIELDS and not (name == "bias" and value == "none"):
            dropped.append(f"{name}: {value!r} (TRL's CLI has no option for it)")
    _quant_fields(source, fields, dropped)
    return _without_defaults(fields), dropped


def _without_defaults(fields: dict[str, Any]) -> dict[str, Any]:
    """Leave out what TRL's ModelConfig already defaults to (the file stays short)."""
    import dataclasses

    from trl import ModelConfig

    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    keep = ("model_name_or_path", "use_peft")
    return {k: v for k, v in fields.items() if k in keep or k not in defaults or defaults[k] != v}


def _quant_fields(source: Source, fields: dict[str, Any], dropped: list[str]) -> None:
    """bitsandbytes by ModelConfig's names. TRL computes 4-bit layers in the model's `dtype`."""
    q = dict(source.quant_kwargs)
    if source.quantization == "8bit":
        fields["load_in_8bit"] = True
        q.pop("load_in_8bit", None)
        dropped += [f"{k}: {v!r} (TRL's CLI loads 8-bit with defaults only)" for k, v in q.items()]
    if source.quantization != "4bit":
        return
    fields["load_in_4bit"] = True
    fields["bnb_4bit_quant_type"] = q.pop("bnb_4bit_quant_type", "fp4")  # transformers' default; TRL's is nf4
    fields["use_bnb_nested_quant"] = q.pop("bnb_4bit_use_double_quant", False)
    if "bnb_4bit_quant_storage" in q:
        fields["bnb_4bit_quant_storage"] = q.pop("bnb_4bit_quant_storage")
    compute = q.pop("bnb_4bit_compute_dtype", "float32")
    if source.dtype not in (None, compute):
        dropped.append(
            f"bnb_4bit_compute_dtype: {compute!r} with a {source.dtype} base (TRL's CLI uses `dtype` for both)"
        )
    fields["dtype"] = compute
    q.pop("load_in_4bit", None)
    dropped += [f"{k}: {v!r} (TRL's CLI has no option for it)" for k, v in q.items()]


def data_fields(train_file: str | None, eval_file: str | None) -> tuple[dict[str, Any], list[str]]:
    """(data fields, what they cannot say). A folder holding train.* and test.* is read by
    `dataset_name` with both splits; a single file by a `datasets:` entry."""
    if train_file is None:  # not a loss: the notebook's data was not asked for; the header says what to add
        return {}, []
    kind = "parquet" if train_file.endswith(".parquet") else "json"
    folder, _, name = train_file.rpartition("/")
    if eval_file is not None:
        ext = name.rpartition(".")[2]
        sibling = f"{folder}/test.{ext}" if folder else f"test.{ext}"
        if name.startswith("train.") and eval_file == sibling:
            return {"dataset_name": folder or ".", "dataset_train_split": "train", "dataset_test_split": "test"}, []
        return {"datasets": [{"path": kind, "data_files": train_file}]}, [
            f"eval data {eval_file!r}: TRL's CLI reads evaluation data only as the test split of `dataset_name`"
        ]
    return {"datasets": [{"path": kind, "data_files": train_file}]}, []


def reward_fields(source: Source) -> tuple[dict[str, Any], list[str]]:
    """GRPO/RLOO rewards: one reward model id travels; notebook functions do not."""
    fields: dict[str, Any] = {}
    dropped = []
    for name, src in source.reward_funcs:
        if src is None and "reward_model_name_or_path" not in fields:
            fields["reward_model_name_or_path"] = name
        else:
            what = "a notebook function" if src is not None else "a second reward model"
            dropped.append(f"reward_funcs: {name} ({what}; the exported script carries it)")
    return fields, dropped


def render(
    source: Source, *, train_file: str | None, eval_file: str | None, output_dir: str, lossy: bool, header: list[str]
) -> tuple[str, list[str]]:
    """(YAML text, dropped settings). PlanError when settings would be dropped and not `lossy`."""
    import yaml

    if source.trainer not in cli_trainers():
        raise PlanError(
            f"TRL's command line has no {source.trainer!r} command; export format 'script' instead",
            key="train.trainer",
            value=source.trainer,
            choices=cli_trainers(),
        )
    model, dropped = model_fields(source)
    data, more = data_fields(train_file, eval_file)
    rewards, most = reward_fields(source)
    dropped += more + most
    if dropped and not lossy:
        raise PlanError(
            "TRL's command line cannot express all of this plan: "
            + "; ".join(dropped)
            + ". Export format 'script' (it carries everything), or ask for a lossy TRL config (lossy=True, --lossy)",
            key="format",
            value="trl",
            choices=["script", "trl --lossy"],
        )
    body = {**model, **data, **rewards, "output_dir": output_dir, **source.train_kwargs}
    lines = list(header)
    if train_file is None:
        lines += ["", "NO DATA: add `dataset_name:` (a hub id or a folder) or `datasets:` before running"]
    if dropped:
        lines += ["", "NOT CARRIED OVER (this file trains something else than the notebook):"]
        lines += [f"  - {d}" for d in dropped]
    return comment(lines) + yaml.safe_dump(body, sort_keys=False, default_flow_style=False), dropped
