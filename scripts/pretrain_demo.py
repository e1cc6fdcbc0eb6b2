"""Pretrain the demo model that ships in `jupyter_peft/demo/model/`, from nothing, on CPU.

    PYTHONPATH=. python scripts/pretrain_demo.py            # writes jupyter_peft/demo/model/

What it does, all seeded (SEED) so a rerun gives the same corpus, tokenizer and (up to float
summation order) the same weights:
1. generates a corpus from `demo_world.py`: children's stories, animal facts, JSON fact records
   and chats (story requests, fact questions, reading questions answered in prose);
2. trains a byte-level BPE tokenizer (VOCAB tokens) with the `tokenizers` library and wraps it in
   `PreTrainedTokenizerFast` with a chat template whose assistant turns sit inside
   `{% generation %}` markers (TRL's `assistant_only_loss=True` needs them);
3. pretrains a small Llama (MODEL below) on packed blocks of BLOCK tokens, bf16 autocast with
   fp32 master weights (on this AVX512-BF16 CPU autocast is ~2.5x faster than fp32);
4. saves weights as bf16 safetensors (half the size; `jupyter_peft.demo.load` upcasts to fp32)
   with the tokenizer and a generation config that stops at `<|end|>`.

Settings of the shipped model: byte-level BPE asked for VOCAB=2048 tokens (the corpus's words
give 1188), hidden 256, 6 layers, 8 heads / 4 KV heads, MLP 704, 4.73 M parameters (tied
embeddings); 1800 steps x 16 blocks x 256 tokens = 7.4 M tokens (about one pass over the 7.6 M
token corpus of 100,000 documents); AdamW lr 2e-3 (50 warmup steps, cosine to 10%), weight decay
0.1, grad clip 1.

RUN_LOG of the run that produced the shipped weights (2 CPU cores, torch 2.13 CPU, sharing the
cores with other work part of the time):
    corpus: 100000 docs, 7.6 M tokens, vocab 1188, 15s
    step     0  loss 7.128   step 300  loss 0.705   step 900  loss 0.495   step 1799  loss 0.402
    pretraining took 20.3 min; total 20.5 min; saved 9.5 MB
    reading probe (next-token accuracy on fresh stories): name 1.00, animal 1.00, place 1.00,
      color 0.08 ("What color is the goat?" needs the word *before* "goat": not learned; the
      story card therefore asks for "animal: white goat", which it copies forward)
    samples: coherent stories ("Tell me a story about Mia and a blue fox." -> a story with Mia
      and the blue fox), "What does a duck say?" -> "A duck says quack." (20/20 animals), but
      "What do rabbits eat?" -> "Frogs like to eat flies." (1/20: that pattern did not stick)
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import demo_world  # noqa: E402  (a sibling script, not a package)

SEED = 0
N_DOCS = 100_000
VOCAB = 2048
BLOCK = 256
BATCH = 16
STEPS = 1800
LR, WARMUP, MIN_LR_FRAC, WEIGHT_DECAY = 2e-3, 50, 0.1, 0.1
MODEL = dict(
    hidden_size=256,
    intermediate_size=704,
    num_hidden_layers=6,
    num_attention_heads=8,
    num_key_value_heads=4,
    max_position_embeddings=512,
    tie_word_embeddings=True,
)
OUT = Path(__file__).resolve().parents[1] / "jupyter_peft" / "demo" / "model"

SPECIAL = ["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
# Every turn ends with <|end|>, the eos token, so generation stops at the end of an answer. The
# assistant's <|end|> is inside {% generation %}: the model is trained to stop.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "<|assistant|>\n{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{%- else -%}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>\n{% endif -%}"
)


def render(messages: list[dict[str, str]]) -> str:
    """The chat template by hand, for packing the corpus (checked against the template below)."""
    return "".join(f"<|{m['role']}|>\n{m['content']}<|end|>" for m in messages)


def build_corpus(n_docs: int) -> list[str]:
    docs = demo_world.corpus(random.Random(SEED), n_docs)
    return [render(d) if isinstance(d, list) else d + "<|end|>" for d in docs]


def train_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)  # exact offsets for assistant masks
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIAL,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # learn merges on the words only: the special tokens stay atomic whatever the text around them
    plain = (t.replace("<|end|>", "\n").replace("<|user|>", "").replace("<|assistant|>", "") for t in texts)
    tok.train_from_iterator(plain, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|end|>",
        pad_token="<|pad|>",
        additional_special_tokens=SPECIAL[2:],
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )


def check_template(tokenizer) -> None:
    msgs = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    assert tokenizer.apply_chat_template(msgs, tokenize=False) == render(msgs)
    prompt = tokenizer.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == render(msgs[:1]) + "<|assistant|>\n", prompt
    out = tokenizer.apply_chat_template(
        msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    answer = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tokenizer.decode(answer) == "Hello.<|end|>", tokenizer.decode(answer)


def pack(tokenizer, texts: list[str]) -> torch.Tensor:
    """Concatenate all documents and cut them into [n, BLOCK] rows (documents cross row borders)."""
    ids = [i for enc in tokenizer(texts, add_special_tokens=False)["input_ids"] for i in enc]
    n = len(ids) // BLOCK
    return torch.tensor(ids[: n * BLOCK]).view(n, BLOCK)


def build_model(tokenizer):
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    end, pad = tokenizer.convert_tokens_to_ids(["<|end|>", "<|pad|>"])
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), bos_token_id=None, eos_token_id=end, pad_token_id=pad, **MODEL
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        eos_token_id=end, pad_token_id=pad, max_new_tokens=160, do_sample=False
    )
    return model


def lr_at(step: int) -> float:
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, STEPS - WARMUP)
    return LR * (MIN_LR_FRAC + (1 - MIN_LR_FRAC) * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(model, tokenizer, blocks: torch.Tensor, steps: int) -> list[float]:
    decay = [p for p in model.parameters() if p.dim() >= 2]  # no decay on norms
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": rest, "weight_decay": 0.0}],
        lr=LR,
        betas=(0.9, 0.95),
    )
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(SEED))
    losses, t0 = [], time.time()
    model.train()
    for step in range(steps):
        rows = order[(torch.arange(BATCH) + step * BATCH) % len(blocks)]
        x = blocks[rows]
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            avg = sum(losses[-50:]) / len(losses[-50:])
            probe = (
                " ".join(f"{k} {v:.2f}" for k, v in copy_probe(model, tokenizer).items())
                if step % 100 == 0
                else ""
            )
            print(
                f"step {step:5d}  loss {avg:.3f}  lr {lr_at(step):.2e}  {time.time() - t0:7.0f}s  {probe}",
                flush=True,
            )
    return losses


def copy_probe(model, tokenizer, n: int = 48) -> dict[str, float]:
    """Can the model read its context? Next-token accuracy of the name, animal, color and place in answers
    to reading questions about fresh stories (a model that does not read scores ~1/36, 1/20, 1/12, 1/15)."""
    rng = random.Random(SEED + 1)
    texts, targets = [], []
    for _ in range(n):
        c = demo_world.random_cast(rng)
        text = demo_world.story(rng, c, short=True)
        at = demo_world.PLACES[c.place].rsplit(" ", 1)[0]  # "in the"
        for field, q, prefix in [
            ("name", "Who is in this story?", "The story is about"),
            ("animal", "Who is in this story?", f"The story is about {c.name} and {demo_world.a(c.color)}"),
            ("color", f"What color is the {c.animal}?", f"The {c.animal} is"),
            ("color_short", f"What color is the {c.animal}?", "It is"),
            ("place", "Where does this story happen?", f"It happens {at}"),
        ]:
            texts.append(render([{"role": "user", "content": f"{q}\n\n{text}"}]) + f"<|assistant|>\n{prefix}")
            targets.append((field, tokenizer(" " + getattr(c, field.split("_")[0]))["input_ids"][0]))
    was_training = model.training
    model.eval()
    hits: dict[str, list[bool]] = {}
    with torch.no_grad():
        for text, (field, target) in zip(texts, targets):
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            hits.setdefault(field, []).append(model(ids).logits[0, -1].argmax().item() == target)
    model.train(was_training)
    return {k: sum(v) / len(v) for k, v in hits.items()}


def samples(model, tokenizer) -> None:
    """A few greedy generations, to see that the text is coherent (printed into the run log)."""
    model.eval()
    prompts = [
        "Once upon a time,",
        [{"role": "user", "content": "Tell me a story about Mia and a blue fox."}],
        [{"role": "user", "content": "What does a duck say?"}],
        [
            {
                "role": "user",
                "content": "Who is in this story?\n\nOne day, Leo went to play in the park. "
                "There, he saw a green frog. The frog was very hungry.",
            }
        ],
        [
            {
                "role": "user",
                "content": "Make a story card for this story.\n\nEvery morning, Ana walked to the "
                "beach. She met a little pink owl on the beach. The owl was very hungry.",
            }
        ],
    ]
    for p in prompts:
        if isinstance(p, str):
            ids = tokenizer(p, return_tensors="pt")["input_ids"]
        else:
            ids = tokenizer.apply_chat_template(
                p, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=120, do_sample=False)
        print("---", repr(p if isinstance(p, str) else p[0]["content"][:60]))
        print(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--docs", type=int, default=N_DOCS)
    args = ap.parse_args()

    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    t0 = time.time()
    texts = build_corpus(args.docs)
    tokenizer = train_tokenizer(texts)
    check_template(tokenizer)
    blocks = pack(tokenizer, texts)
    print(
        f"corpus: {len(texts)} docs, {blocks.numel() / 1e6:.1f} M tokens, vocab {len(tokenizer)}, "
        f"{time.time() - t0:.0f}s",
        flush=True,
    )

    model = build_model(tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model: {n_params / 1e6:.2f} M parameters; {args.steps} steps x {BATCH} x {BLOCK} tokens", flush=True
    )
    t1 = time.time()
    pretrain(model, tokenizer, blocks, args.steps)
    print(f"pretraining took {(time.time() - t1) / 60:.1f} min", flush=True)
    print("reading probe:", copy_probe(model, tokenizer), flush=True)
    samples(model, tokenizer)

    args.out.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 1e6
    print(f"saved to {args.out}: {size:.1f} MB; total {(time.time() - t0) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
