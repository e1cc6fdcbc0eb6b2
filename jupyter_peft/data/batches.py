"""The batches a trainer will build, in its sampler's order, and the longest of them.

`batches(trainer)` iterates the trainer's own train dataloader (`get_train_dataloader`, the
sampler seeded by `data_seed` or `args.seed` as a run seeds it, `seeded`) and notes each
micro-batch's shape: rows (chosen and rejected together for preference trainers), padded
length, real tokens and trained tokens. Steps count optimizer steps (1-based), so with
gradient accumulation several micro-batches share a step; a run of `max_steps` that ends
before the epoch does trains only the batches up to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Batch:
    index: int
    """Micro-batch number in the sampler's order (0-based, across epochs)."""
    step: int
    """The optimizer step that trains it (1-based)."""
    epoch: int
    rows: int
    seq_len: int
    """Padded length: the tensor's width, what memory depends on."""
    tokens: int
    """Real (unpadded) tokens."""
    trained: int
    """Tokens with a label (labels != -100, or the completion mask)."""
    lengths: tuple[int, ...] = ()
    """Each row's real length."""


@dataclass
class Batches:
    """All micro-batches of the run's steps, and which is the longest."""

    items: list[Batch] = field(default_factory=list)
    batch_size: int = 0
    accumulation: int = 1
    packing: bool = False
    max_length: int | None = None

    @property
    def longest(self) -> Batch | None:
        """The micro-batch with the most padded tokens (rows x length), the first such."""
        if not self.items:
            return None
        return max(self.items, key=lambda b: (b.rows * b.seq_len, -b.index))

    @property
    def efficiency(self) -> float:
        """Real tokens over padded tokens (1.0: no padding)."""
        padded = sum(b.rows * b.seq_len for b in self.items)
        return sum(b.tokens for b in self.items) / padded if padded else 1.0

    def to_json(self) -> dict[str, Any]:
        top = self.longest
        return {
            "batches": len(self.items),
            "batch_size": self.batch_size,
            "accumulation": self.accumulation,
            "packing": self.packing,
            "max_length": self.max_length,
            "efficiency": round(self.efficiency, 4),
            "longest": None if top is None else {
                "step": top.step, "index": top.index, "epoch": top.epoch, "rows": top.rows,
                "seq_len": top.seq_len, "lengths": list(top.lengths),
            },
        }


def batches(trainer: Any, steps: int | None = None) -> Batches:
    """The micro-batches `trainer` will train, in order (the first `steps` optimizer steps;
    None: the trainer's max_steps, or its epochs)."""
    import math

    args = trainer.args
    accumulation = max(int(args.gradient_accumulation_steps), 1)
    if steps is None:
        steps = args.max_steps if args.max_steps and args.max_steps > 0 else None
    epochs = max(int(math.ceil(args.num_train_epochs)), 1)
    loader = seeded(trainer.get_train_dataloader(), args.data_seed if args.data_seed is not None else args.seed)
    out = Batches(batch_size=int(args.per_device_train_batch_size), accumulation=accumulation,
                  packing=bool(getattr(args, "packing", False)), max_length=getattr(args, "max_length", None))
    index = 0
    for epoch in range(epochs if steps is None else 1 << 30):
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        per_epoch = 0
        for batch in loader:
            step = index // accumulation + 1
            if steps is not None and step > steps:
                return out
            out.items.append(_shape(batch, index, step, epoch))
            index += 1
            per_epoch += 1
        if per_epoch == 0 or (steps is None and epoch + 1 >= epochs):
            break
    return out


def seeded(loader: Any, seed: int) -> Any:
    """`loader` with its random samplers on their own generators, seeded as the trainer's run
    seeds them (Trainer.__init__ seeds torch with `args.seed`; accelerate's seedable sampler
    reads that seed, or `data_seed`; a plain RandomSampler draws its seed from torch's
    generator just after). Nothing global is reseeded or drawn from: another thread (a run
    training meanwhile) keeps its data order and its init."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    seen: set[int] = set()
    todo = [loader]
    while todo:
        part = todo.pop()
        if part is None or id(part) in seen:
            continue
        seen.add(id(part))
        if isinstance(part, RandomSampler):
            if hasattr(part, "initial_seed"):  # accelerate's SeedableRandomSampler
                part.initial_seed = seed
            elif part.generator is None:
                first = torch.empty((), dtype=torch.int64).random_(generator=torch.Generator().manual_seed(seed))
                part.generator = torch.Generator().manual_seed(int(first.item()))
            continue
        if isinstance(part, DataLoader) and part.generator is None:
            part.generator = torch.Generator().manual_seed(seed)  # its workers' base seed, drawn at each epoch
        todo += [getattr(part, name, None) for name in ("sampler", "batch_sampler", "base_dataloader")]
    return loader


def _shape(batch: dict[str, Any], index: int, step: int, epoch: int) -> Batch:
    ids = batch["input_ids"]
    mask = batch.get("attention_mask")
    if mask is not None:
        lengths = tuple(int(v) for v in mask.sum(-1).tolist())
    elif "position_ids" in batch:  # padding-free: one row of concatenated sequences
        lengths = (int(ids.shape[-1]),)
    else:
        lengths = tuple(int(ids.shape[-1]) for _ in range(ids.shape[0]))
    trained = int(trained_mask(batch).sum())
    return Batch(index, step, epoch, int(ids.shape[0]), int(ids.shape[-1]), sum(lengths), trained, lengths)


def trained_mask(batch: dict[str, Any]) -> Any:
    """Which tokens of a collated batch train: labels != -100 (SFT), else the completion mask
    (preference trainers score the completion tokens of chosen and rejected)."""
    if "labels" in batch:
        return batch["labels"] != -100
    if "completion_mask" in batch:
        mask = batch["completion_mask"].bool()
        if "attention_mask" in batch:
            mask &= batch["attention_mask"].bool()
        return mask
    return batch["attention_mask"].bool() if "attention_mask" in batch else batch["input_ids"] >= 0
