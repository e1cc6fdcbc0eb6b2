"""Write the demo's fine-tuning data sets into `jupyter_peft/demo/data/` (JSONL), reproducibly.

    python scripts/make_demo_data.py

The task is the *story card* (see `demo_world.card_text`): read a short story, answer with
`name: Kate` / `animal: white goat` / `place: barn` lines. Files, one row per line:

    sft_{train,test}.jsonl   messages: [user: request + story, assistant: card]
    dpo_{train,test}.jsonl   prompt: [user], chosen: [assistant: card],
                             rejected: [assistant: a prose answer (2/3) or a card with one wrong field (1/3)]
    grpo_{train,test}.jsonl  prompt: [user], name, animal, color, place (what the reward checks)

The test split is held out: its casts (name, animal, color, place) never occur in any train
split, and HELD_OUT_NAMES occur only there, so the test measures the skill, not memory. The
three test files share the same 100 stories.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import demo_world as w  # noqa: E402  (a sibling script, not a package)

SEED = 1  # the pretraining corpus uses 0
SIZES = {"sft": 1000, "dpo": 500, "grpo": 500}
N_TEST = 100
HELD_OUT_NAMES = ("Amy", "Tim", "Kate", "Dan")
OUT = Path(__file__).resolve().parents[1] / "jupyter_peft" / "demo" / "data"


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def sft_row(ex: dict[str, str], rng: random.Random) -> dict:
    return {"messages": _user(ex["prompt"]) + _assistant(ex["card"])}


def dpo_row(ex: dict[str, str], rng: random.Random) -> dict:
    if rng.random() < 2 / 3:
        rejected = ex["prose"]  # the base model's style: right facts, wrong format
    else:  # right format, one wrong field
        card = {k: ex[k] for k in w.CARD_KEYS}
        key = rng.choice(w.CARD_KEYS)
        pool = {"name": list(w.NAMES), "animal": list(w.ANIMALS), "color": w.COLORS, "place": list(w.PLACES)}[
            key
        ]
        card[key] = rng.choice([v for v in pool if v != card[key]])
        rejected = w.card_text(card)
    return {"prompt": _user(ex["prompt"]), "chosen": _assistant(ex["card"]), "rejected": _assistant(rejected)}


def grpo_row(ex: dict[str, str], rng: random.Random) -> dict:
    return {"prompt": _user(ex["prompt"]), **{k: ex[k] for k in w.CARD_KEYS}}


ROWS = {"sft": sft_row, "dpo": dpo_row, "grpo": grpo_row}


def draw_casts(rng: random.Random, n: int, taken: set, names: list[str]) -> list[w.Cast]:
    """`n` casts with names from `names`, none of them in `taken` (which grows)."""
    casts = []
    while len(casts) < n:
        c = w.Cast(
            rng.choice(names), rng.choice(list(w.ANIMALS)), rng.choice(w.COLORS), rng.choice(list(w.PLACES))
        )
        if c not in taken:
            taken.add(c)
            casts.append(c)
    return casts


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    rng = random.Random(SEED)
    taken: set = set()
    train_names = [n for n in w.NAMES if n not in HELD_OUT_NAMES]
    # test first, half of it with held-out names; train casts then avoid every test cast
    test_casts = draw_casts(rng, N_TEST // 2, taken, list(HELD_OUT_NAMES))
    test_casts += draw_casts(rng, N_TEST - len(test_casts), taken, train_names)
    rng.shuffle(test_casts)
    test = [w.card_example(rng, c) for c in test_casts]
    OUT.mkdir(parents=True, exist_ok=True)
    for kind, size in SIZES.items():
        train = [w.card_example(rng, c) for c in draw_casts(rng, size, taken, train_names)]
        for split, examples in (("train", train), ("test", test)):
            write(OUT / f"{kind}_{split}.jsonl", [ROWS[kind](ex, rng) for ex in examples])
    sizes = {p.name: p.stat().st_size for p in sorted(OUT.glob("*.jsonl"))}
    print(f"wrote {OUT}: {sizes}")


if __name__ == "__main__":
    main()
