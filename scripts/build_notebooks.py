"""Writes the notebooks in notebooks/ from the cells below (the source of truth; outputs empty).

    python scripts/build_notebooks.py          # rewrite them
    python scripts/build_notebooks.py --check  # exit 1 if a committed notebook differs

Each notebook is written for a reader: short markdown between cells, no walls of output, and
every one runs top to bottom in a real kernel in the test suite (tests/test_notebooks.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jupyter_peft import demo  # noqa: E402  (light: no torch at import)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MD, CODE = "md", "code"



def plan_yaml(plan: dict, **train_extra: object) -> str:
    """A plan mapping as the YAML a `%%peft` cell holds (one level of `train:` nesting)."""
    lines = [f"{k}: {v}" for k, v in plan.items() if k != "train"]
    train = dict(plan.get("train", {}))
    train = {"trainer": train.pop("trainer", "sft"), **train_extra, **train} if train or train_extra else {}
    if train:
        lines.append("train:")
        lines += [f"  {k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in train.items()]
    return "\n".join(lines)


QUICKSTART = [
    (MD, """# jupyter_peft quickstart

Fine-tune a language model with LoRA without leaving the notebook: pick what to adapt on the
model you have loaded, see what it will cost, train in the background while you watch, and use
the result at once. Everything here runs offline on a laptop CPU in a few minutes: the model is
the small demo model that ships with the package."""),
    (CODE, "%load_ext jupyter_peft\nimport jupyter_peft as jp"),
    (MD, """## The model and the task

The demo model is a 4.7M-parameter Llama, pretrained on a small world of children's stories.
It tells stories and answers questions about them, but it has never been asked for a *story
card*: the story's facts as three `key: value` lines, like `name: Kate`, `animal: white goat`,
`place: barn`. That is the skill we teach it; the score checks name, animal, color and place."""),
    (CODE, """model, tokenizer = jp.demo.load()
train = jp.demo.dataset("sft")
train[0]["messages"]"""),
    (CODE, """story = jp.demo.dataset("sft", split="test")[0]["messages"][0]["content"]
print(story)
print("base model:", jp.demo.ask(model, tokenizer, story)[0])"""),
    (MD, "The task metric: the share of card fields right on 100 held-out stories."),
    (CODE, "base_score = jp.demo.score(model, tokenizer)\nbase_score"),
    (MD, """## Choose what to adapt

`%peft model` opens the studio on the live model: its modules grouped by role, with shapes and
parameter counts. Tick groups or single layers, set ranks, pick a method; the trainable count,
the chart and the memory estimate follow every click, and **Write cell** puts the equivalent
`%%peft` cell below."""),
    (CODE, "%peft model"),
    (MD, """The same plan as text. Re-running the cell replaces the adapter, it never stacks a
second one."""),
    (CODE, "%%peft model\n" + plan_yaml({k: v for k, v in demo.QUICKSTART.items() if k != "train"})),
    (MD, "What one training step of this adapter will take on a GPU, before anything runs (the first "
         "line says which plan it is for):"),
    (CODE, "%peft estimate model --batch 8 --seq 256 --gpu T4"),
    (MD, """## Train in the background

A `train:` block starts TRL's SFT trainer in a background thread: the cell returns at once and
the dashboard streams loss, learning rate, grad norm, throughput and memory. **Stop** saves the
adapter; so does an interrupt of the kernel."""),
    (CODE, "%%peft model\n" + plan_yaml(demo.QUICKSTART, dataset="train")),
    (MD, "The notebook stays usable while it trains:"),
    (CODE, "peft_run.state, peft_run.step"),
    (CODE, """peft_run.wait()
peft_run.df[["step", "loss", "mean_token_accuracy"]].dropna().iloc[::40]"""),
    (MD, "## Use the result at once"),
    (CODE, """print("tuned:", jp.demo.ask(peft_model, tokenizer, story)[0])
tuned_score = jp.demo.score(peft_model, tokenizer)
print(f"story-card accuracy: base {base_score:.2f} -> tuned {tuned_score:.2f}")"""),
    (MD, "The gain lives in the adapter, not in the base weights: switched off, the model is the base again."),
    (CODE, """with peft_model.disable_adapter():
    off_score = jp.demo.score(peft_model, tokenizer, n=20)
print(f"adapter off: {off_score:.2f}")"""),
    (MD, "Side by side with the adapter switched off (a prompt is text, or chat messages as here):"),
    (CODE, """peft_run.compare([{"role": "user", "content": story}])"""),
    (MD, """## Keep it

The run folder already holds the adapter (safetensors), the history and the plan. Save it
elsewhere, or export the plan as a script that runs on many GPUs with `accelerate`."""),
    (CODE, """peft_model.save_pretrained("story-card-adapter")
peft_run.folder"""),
    (CODE, "%peft export exported --format all --data train --base demo --overwrite"),
]

BIG_MODELS = [
    (MD, """# Planning for a big model on a small machine

A model built on PyTorch's `meta` device has every module and shape but no weights, so a
Llama-3-70B fits in a laptop's memory. Inspect, the studio, the memory estimate and the export
all work on it: plan the run here, then train where the GPUs are."""),
    (CODE, """%load_ext jupyter_peft
import jupyter_peft as jp
from jupyter_peft.demo.skeletons import skeleton

model = skeleton("llama-3-70b")   # 70.6B parameters, bf16, no memory
model_map = jp.inspect(model)
model_map"""),
    (MD, "Modules grouped by role, with what peft's `all-linear` would pick:"),
    (CODE, """[(g.role, g.kind, g.count, g.shape, f"{g.params / 1e9:.2f}B", g.linear) for g in model_map.groups]"""),
    (MD, """`match` answers with peft's own rules: a list matches names (suffixes), a string is a regex
over the whole path."""),
    (CODE, """print(len(model_map.match(["q_proj", "v_proj"])), "modules for [q_proj, v_proj]")
print(model_map.match("q_proj"), "<- a string is a regex: matches nothing")
model_map.match(r".*layers\\.(7|8)\\.self_attn\\.q_proj")"""),
    (MD, "The studio works the same on the skeleton; the memory panel sizes the run for a card."),
    (CODE, "%peft model"),
    (MD, "What LoRA, QLoRA and full fine-tuning would take, and what to change when it does not fit:"),
    (CODE, """plan = jp.Plan.from_yaml("method: lora\\nr: 16\\ntarget_modules: all-linear")
est = jp.estimate(model, plan, batch_size=1, seq_len=4096, gpu="H100-80GB")
est"""),
    (CODE, "est.advice()"),
    (MD, """## A vision-language model: names that also hit the vision tower

`target_modules: [q_proj]` is a suffix match. On a model with a vision tower it adapts the
tower's attention too, which is rarely what was meant. The map shows where each match lives."""),
    (CODE, """import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

config = LlavaConfig(
    text_config=LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                            num_attention_heads=32, vocab_size=32064).to_dict(),
    vision_config=CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                   num_attention_heads=16, image_size=336, patch_size=14).to_dict(),
)
with torch.device("meta"):
    vlm = LlavaForConditionalGeneration(config)
vlm_map = jp.inspect(vlm)
hits = vlm_map.resolve(["q_proj"])
{role: (vlm_map[role].section, len(paths)) for role, paths in hits.items()}"""),
    (MD, "Only the language model's attention: name the role, or let `targets_for` write the exact value."),
    (CODE, """language_q = vlm_map["language_model.layers.*.self_attn.q_proj"].paths
vlm_map.targets_for(language_q)"""),
    (MD, """## Hand over to many GPUs

The plan becomes a standalone script, a TRL config and an `accelerate` config (here FSDP over
8 GPUs), with the per-GPU memory written beside the launch command."""),
    (CODE, """plan = jp.Plan.from_yaml(\"\"\"
method: lora
r: 16
target_modules: all-linear
train: {trainer: sft, per_device_train_batch_size: 1, max_length: 4096, bf16: true}
\"\"\")
peft_model = jp.apply(plan, model)
out = jp.export(plan, "fsdp-8gpu.yaml", format="accelerate", model=peft_model, base="meta-llama/Meta-Llama-3-70B",
                gpus=8, backend="fsdp", overwrite=True)
print("\\n".join(out.commands + out.notes))"""),
]

QLORA = [
    (MD, """# QLoRA: LoRA on a 4-bit base

The base weights are stored in 4-bit NF4 (with double quantization), the adapter trains in
higher precision on top. A `base:` key loads the model quantized, prepares it for k-bit training
and applies the adapter in one cell. bitsandbytes runs this on CPU too."""),
    (CODE, """%load_ext jupyter_peft
import jupyter_peft as jp

train = jp.demo.dataset("sft")"""),
    (MD, """`base: demo` is the packaged demo model; a local folder or a hub id works the same. The cell
binds `model` and `tokenizer` to what it loaded, and the adapted model to `qlora_model`."""),
    (CODE, """%%peft --as qlora_model
method: qlora
r: 16
target_modules: all-linear
base: demo
bnb_4bit_quant_type: nf4
bnb_4bit_use_double_quant: true"""),
    (MD, "The map shows the 4-bit layers with their real storage:"),
    (CODE, """g = jp.inspect(model)["self_attn.q_proj"]
g.kind, g.dtype, g.shape, f"{g.nbytes / g.params:.3f} bytes per parameter\""""),
    (MD, "A short run (the same task as the quickstart, fewer steps):"),
    (CODE, """run = jp.train(qlora_model, jp.Plan.from_yaml(\"\"\"
method: qlora
train: {trainer: sft, max_steps: 20, per_device_train_batch_size: 8, learning_rate: 0.002,
        assistant_only_loss: true, max_length: 256}
\"\"\"), dataset=train, tokenizer=tokenizer)
run.wait()
run.state, run.df["loss"].iloc[[0, -1]].tolist()"""),
    (MD, """Merging LoRA into a 4-bit base needs the weights dequantized first: `jp.merge` builds a
full-precision copy, says how much memory that takes, and returns a plain model."""),
    (CODE, """merged = jp.merge(qlora_model)
type(merged).__name__, next(merged.parameters()).dtype"""),
]

DPO = [
    (MD, """# Preference tuning with DPO

DPO learns from pairs: for each prompt a chosen and a rejected answer. With a LoRA adapter the
reference model is the same network with the adapter switched off, so no second copy of the
weights is loaded. The dashboard adds DPO's rewards and margins, for the training pairs and,
every few steps, for held-out ones."""),
    (CODE, """%load_ext jupyter_peft
import jupyter_peft as jp

model, tokenizer = jp.demo.load()
prefs, held_out = jp.demo.dataset("dpo"), jp.demo.dataset("dpo", split="test")
prefs[0]"""),
    (CODE, """%%peft model
method: lora
r: 16
target_modules: all-linear
train:
  trainer: dpo
  dataset: prefs
  eval_dataset: held_out
  eval_strategy: steps
  eval_steps: 10
  max_steps: 30
  per_device_train_batch_size: 8
  learning_rate: 0.001
  beta: 0.1
  max_length: 256"""),
    (MD, """The margin is how much more likely the adapter makes the chosen answer than the reference
does, relative to the rejected one. On the 100 held-out stories (`eval_` columns):"""),
    (CODE, """peft_run.wait()
frame = peft_run.df
frame[["step", "eval_loss", "eval_rewards/accuracies", "eval_rewards/margins"]].dropna()"""),
    (MD, """Thirty steps move the preference, not yet the greedy answer: the model still starts its
reply in prose. DPO sharpens a model that can already produce the format, so in practice it
follows a supervised run like the quickstart's; here the adapter off and on still agree:"""),
    (CODE, """peft_run.compare(held_out[0]["prompt"])"""),
]

ADAPTERS = [
    (MD, """# Many adapters on one base: the adapter bench

Two small task adapters on the embedded demo model, side by side with the base: the **story card**
(`name: / animal: / place:`) and a second task the demo world offers, **the animal** (answer with the
story's animal only, e.g. `white goat`). Then a merge of the two, what the merge keeps of each, and
the card run's checkpoints scrubbed without reloading the base. `STEPS` sets the steps per adapter
(more steps, better adapters; the numbers below say what this run measured)."""),
    (CODE, """%load_ext jupyter_peft
import jupyter_peft as jp
import pandas as pd
from datasets import Dataset

STEPS = 60    # training steps per adapter
N_EVAL = 30   # held-out stories each score reads"""),
    (CODE, """model, tokenizer = jp.demo.load()

ANIMAL = "Which animal is in this story? Answer with the animal only.\\n\\n"
def story(row):
    return row["prompt"][0]["content"].split("\\n\\n", 1)[1]
def animal_rows(split):
    return [{"story": story(r), "animal": f"{r['color']} {r['animal']}"} for r in jp.demo.dataset("grpo", split)]
animal_train = Dataset.from_list([{"messages": [{"role": "user", "content": ANIMAL + r["story"]},
                                                {"role": "assistant", "content": r["animal"]}]}
                                  for r in animal_rows("train")[:8 * STEPS]])   # one pass at batch 8
cards_train = jp.demo.dataset("sft").select(range(min(1000, 8 * STEPS)))
animal_test = animal_rows("test")[:N_EVAL]

def animal_score(m):
    \"\"\"The second task's check: the share of held-out stories whose answer is exactly the animal.\"\"\"
    answers = jp.demo.ask(m, tokenizer, [ANIMAL + r["story"] for r in animal_test], max_new_tokens=8)
    return sum(a.strip() == r["animal"] for a, r in zip(answers, animal_test)) / len(animal_test)"""),
    (MD, """## Two adapters on one base
Both are LoRA of rank 8 on every linear layer, so they can be mixed in one batch, merged with every
combination type peft offers and hot-swapped. The card run keeps three checkpoints to scrub later, and
writes a sample every few steps (`run.samples`)."""),
    (CODE, """LORA = {"method": "lora", "r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": "all-linear"}
TRAIN = {"trainer": "sft", "max_steps": STEPS, "per_device_train_batch_size": 8, "learning_rate": 3e-3,
         "lr_scheduler_type": "constant_with_warmup", "warmup_steps": 5, "assistant_only_loss": True,
         "max_length": 256, "seed": 0}
card_prompt = [{"role": "user", "content": "Make a story card for this story.\\n\\n" + animal_test[0]["story"]}]

peft_model = jp.apply({**LORA, "adapter_name": "cards"}, model)
cards_run = jp.train(peft_model, {**LORA, "adapter_name": "cards",
                                  "train": {**TRAIN, "save_strategy": "steps", "save_steps": max(1, STEPS // 3),
                                            "samples": [card_prompt[0]["content"]],
                                            "sample_every": max(1, STEPS // 3)}},
                     dataset=cards_train, tokenizer=tokenizer)
cards_run.wait()
jp.apply({**LORA, "adapter_name": "animal"}, peft_model)   # a second adapter beside the first
animal_run = jp.train(peft_model, {**LORA, "adapter_name": "animal", "train": TRAIN},
                      dataset=animal_train, tokenizer=tokenizer)
animal_run.wait()
print(cards_run.state, animal_run.state, list(peft_model.peft_config))
cards_run.samples"""),
    (MD, """## The bench
A row per adapter; the widget activates, renames, deletes, compares and merges (and shows the same as a
static table when the notebook is opened without its kernel)."""),
    (CODE, """bench = jp.adapters(peft_model, tokenizer=tokenizer)
bench"""),
    (CODE, """bench.df"""),
    (MD, """## Side by side
One greedy, batched `generate` for every prompt under every adapter and the base (peft's mixed-adapter
batches), equal to generating with each adapter alone."""),
    (CODE, """prompts = [card_prompt, [{"role": "user", "content": ANIMAL + animal_test[0]["story"]}]]
table = bench.compare(prompts, max_new_tokens=24)
print(table.attrs["how"])
table"""),
    (MD, """## Merge, and what the merge keeps
`merge_preview` says the result's rank, parameters and bytes before anything runs; `merge` is peft's
`add_weighted_adapter`. `cat` keeps both adapters' updates exactly (its rank is the sum of theirs);
`linear` averages them at the common rank.

Measured with STEPS = 60 and N_EVAL = 30 on 2 busy CPU cores (training ~2 min): `cards` 0.55 on the
story card, `animal` 0.20 on the animal check, the base 0.00 on both; the `cat` merge kept 0.00 of the
card and 0.10 of the animal, `halves` the same. These two adapters interfere: a merge is not free, and
this table is where that shows before a merged adapter is shipped."""),
    (CODE, """print(bench.merge_preview({"cards": 1.0, "animal": 1.0}, how="cat", name="both")["text"])
bench.merge({"cards": 1.0, "animal": 1.0}, how="cat", name="both")
bench.merge({"cards": 0.5, "animal": 0.5}, how="linear", name="halves")
bench.combination_types()"""),
    (CODE, """def scores():
    rows = {}
    for name in ["cards", "animal", "both", "halves", None]:
        bench.activate(name) if name else bench.disable()
        rows[name or "base"] = {"story card": jp.demo.score(peft_model, tokenizer, n=N_EVAL),
                                "animal": animal_score(peft_model)}
    bench.activate("cards")
    return pd.DataFrame(rows).T
kept = scores()
kept"""),
    (MD, """## Scrub the card run's checkpoints
`run.checkpoints` are adapters too: load one beside the others, then swap each checkpoint's weights
into it (no new adapter, no base reload) and score it. Measured as above: 0.10 at step 20, 0.71 at
step 40, 0.55 at step 60, so the middle checkpoint was the best card adapter of that run."""),
    (CODE, """print(cards_run.checkpoints)
first = cards_run.checkpoints[0][0]
bench.load(cards_run, step=first, name="cards_ckpt")
by_step = {}
for step, _ in cards_run.checkpoints:
    bench.swap("cards_ckpt", step)
    bench.activate("cards_ckpt")
    by_step[step] = jp.demo.score(peft_model, tokenizer, n=N_EVAL)
pd.Series(by_step, name="story card score by checkpoint step")"""),
    (MD, """## Hot-swap
Adapters of the same shape can be hot-swapped (peft's `hotswap_adapter`): the active adapter's tensors
take the other's weights, so a `torch.compile`d model is not compiled again."""),
    (CODE, """bench.activate("cards")
bench.activate("animal", hotswap=True)
print(bench.active, "in the tensors of", peft_model.active_adapter)
bench.activate("cards")
bench.save("bench_adapters")"""),
]

NOTEBOOK_CELLS = {
    "quickstart.ipynb": QUICKSTART,
    "big_models.ipynb": BIG_MODELS,
    "qlora.ipynb": QLORA,
    "dpo.ipynb": DPO,
    "adapters.ipynb": ADAPTERS,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == MD else nbformat.v4.new_code_cell(src)
                for kind, src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    from ipykernel.ipkernel import IPythonKernel

    # the kernel's own language_info: a shorter one makes JupyterLab mark the notebook unsaved on open
    nb.metadata["language_info"] = dict(IPythonKernel.language_info)
    for i, cell in enumerate(nb.cells):  # stable ids: rebuilding gives the same file
        cell["id"] = f"cell-{i}"
    return nb


def main(check: bool = False) -> int:
    stale = []
    for name, cells in NOTEBOOK_CELLS.items():
        text = nbformat.writes(build(cells)) + "\n"
        path = NOTEBOOKS / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale notebooks (run python scripts/build_notebooks.py): {', '.join(stale)}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv))
