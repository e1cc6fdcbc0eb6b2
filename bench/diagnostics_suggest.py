"""Does `run.suggest_ranks()` help? The demo's QUICKSTART plan against the same plan with the
suggested ranks at the same adapter-parameter budget (issue 19), reported whatever the result.

1. train the demo plan (LoRA r=16, all-linear) for `--steps` steps (fewer than QUICKSTART's 360,
   so the score is not saturated at 1.00 and a difference can show);
2. `run.suggest_ranks()` (same budget), the `%%peft` cell it writes;
3. train a fresh demo model with those ranks (alphas keep alpha / r), same steps, seed and data;
4. both: held-out card score (`jp.demo.score`, 100 test stories), eval loss on the SFT test split,
   mean training loss of the last 10 steps, and the adapter's parameter count.

    OMP_NUM_THREADS=1 .venv/bin/python bench/diagnostics_suggest.py [--steps 80] [--by group] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile

import torch

import jupyter_peft as jp
from jupyter_peft.demo import QUICKSTART


def train(plan: jp.Plan, runs_dir: str):
    model, tok = jp.demo.load()
    run = jp.train(model, plan, dataset=jp.demo.dataset("sft"), eval_dataset=jp.demo.dataset("sft", "test"),
                   tokenizer=tok, runs_dir=runs_dir)
    assert run.wait(3600) == "finished", run.error
    losses = run.df["loss"].dropna().tolist()
    evals = run.df["eval_loss"].dropna().tolist() if "eval_loss" in run.df else []
    params = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
    result = {"score": jp.demo.score(run.model, tok), "eval_loss": evals[-1] if evals else float("nan"),
              "train_loss_last10": sum(losses[-10:]) / len(losses[-10:]), "params": params}
    return run, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--by", default="group", choices=["group", "module"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    train_block = {**QUICKSTART["train"], "max_steps": args.steps, "eval_strategy": "steps",
                   "eval_steps": args.steps, "per_device_eval_batch_size": 16, "seed": args.seed}
    plan = jp.Plan.from_dict({**QUICKSTART, "train": train_block})
    with tempfile.TemporaryDirectory() as runs_dir:
        first, before = train(plan, runs_dir)
        suggestion = first.suggest_ranks(by=args.by)
        print(suggestion.reasoning)
        print(suggestion.cell())
        second, after = train(plan.replace(ranks=dict(suggestion.ranks), alphas=dict(suggestion.alphas)), runs_dir)
    print(f"demo, {args.steps} steps, seed {train_block['seed']}, suggestion by {args.by}")
    print(f"{'':24s} {'params':>9s} {'score':>7s} {'eval loss':>10s} {'train loss (last 10)':>21s}")
    for name, r in (("QUICKSTART (r=16)", before), ("suggested ranks", after)):
        print(f"{name:24s} {r['params']:>9,} {r['score']:>7.3f} {r['eval_loss']:>10.4f} "
              f"{r['train_loss_last10']:>21.4f}")


if __name__ == "__main__":
    main()
