"""jp.preview marks exactly the tokens the trainer's own collated batch trains, and the
estimate's longest batch comes at the step the real trainer trains it."""

from __future__ import annotations

import copy

import pytest
import tiny
import torch
from datasets import Dataset

import jupyter_peft as jp
from jupyter_peft._errors import PlanError

CHAT = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo there"}]


def _real_trainer(name, data, tok, tmp_path, **fields):
    """TRL's trainer as a user would build it, on a real tiny model (not our stand-in)."""
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    common = dict(output_dir=str(tmp_path), bf16=False, use_cpu=True, report_to="none", save_strategy="no",
                  disable_tqdm=True, **{"per_device_train_batch_size": 8, **fields})
    model = tiny.build("llama")
    if name == "dpo":
        return DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=DPOConfig(**common),
                          train_dataset=data, processing_class=tok)
    return SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=data, processing_class=tok)


CASES = {
    "plain text": ("sft", [{"text": f"hello world {i}"} for i in range(4)], {}),
    "conversational, assistant_only_loss": ("sft", [{"messages": CHAT}] * 4, {"assistant_only_loss": True}),
    "prompt-completion": ("sft", [{"prompt": "hi there", "completion": " good day"}] * 4, {}),
    "dpo": ("dpo", [{"prompt": "hi there", "chosen": " good", "rejected": " bad one"}] * 4, {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_highlighted_tokens_are_the_trained_labels_of_the_trainers_batch(case, tmp_path):
    name, rows, fields = CASES[case]
    tok = tiny.tokenizer()
    data = Dataset.from_list(rows)
    view = jp.preview(data, tok, trainer=name, max_length=64, **fields)
    real = _real_trainer(name, data, tok, tmp_path, max_length=64, **fields)
    batch = real.data_collator([real.train_dataset[0]])
    if name == "dpo":  # chosen and rejected rows; the loss scores their completion tokens
        truth = batch["completion_mask"].bool() & batch["attention_mask"].bool()
        keep = batch["attention_mask"].bool()
    else:
        truth = batch["labels"] != -100
        keep = batch.get("attention_mask", torch.ones_like(batch["input_ids"])).bool()
    shown = [r for r in view.rows if r.index == 0]
    assert len(shown) == truth.shape[0]
    for r, row in enumerate(shown):
        ids = batch["input_ids"][r][keep[r]].tolist()
        assert row.tokens == [tok.decode([t]) for t in ids]
        assert row.trained == truth[r][keep[r]].tolist()
        assert any(row.trained) and not all(row.trained) or case == "plain text"
    assert "<span" in view._repr_html_()


def test_lengths_truncation_and_the_histogram():
    tok = tiny.tokenizer()
    data = Dataset.from_list([{"text": "word " * n} for n in (2, 4, 30, 60)])
    view = jp.preview(data, tok, max_length=100)
    assert view.max_length == 100 and view.truncated == sum(n > 100 for n in view.lengths) >= 1
    fig = view.figure()
    assert fig.data[0].type == "histogram" and any(s.x0 == 100 for s in fig.layout.shapes)
    assert 0 < view.packing_efficiency <= 1


@pytest.mark.parametrize(("name", "rows", "column", "row"), [
    ("dpo", [{"prompt": "a", "chosen": "b"}], "rejected", None),
    ("sft", [{"messages": CHAT}, {"messages": [{"role": "user", "content": "only a question"}]}], "messages", 1),
    ("sft", [{"text": "fine"}, {"text": "  "}], "text", 1),
    ("dpo", [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "", "rejected": "c"}],
     "chosen", 1),
])
def test_format_errors_name_the_row_and_the_column(name, rows, column, row):
    with pytest.raises(PlanError) as err:
        jp.preview(Dataset.from_list(rows), tiny.tokenizer(), trainer=name)
    assert err.value.key == column and column in str(err.value)
    if row is not None:
        assert f"row {row}" in str(err.value)


def test_the_estimate_finds_the_step_of_the_one_long_row(tmp_path):
    """The long row's batch: the step the estimate names is the step the real trainer trains it."""
    tok = tiny.tokenizer()
    rows = [{"text": "hello world"} for _ in range(30)]
    rows[17] = {"text": "a long row " * 20}
    data = Dataset.from_list(rows)
    plan = jp.Plan.from_yaml("method: lora\nr: 4\ntarget_modules: [q_proj, v_proj]\n"
                             "train: {trainer: sft, per_device_train_batch_size: 4, max_steps: 8, seed: 3}")
    est = jp.estimate(tiny.build("llama"), plan, dataset=data, tokenizer=tok)
    top = est.data.longest
    assert est.setup.seq_len == top.seq_len and max(top.lengths) == top.seq_len

    real = _real_trainer("sft", data, tok, tmp_path, max_steps=8, seed=3, per_device_train_batch_size=4)
    seen = []
    compute = real.compute_loss

    def recording(model, inputs, *args, **kwargs):
        seen.append((real.state.global_step + 1, int(inputs["input_ids"].shape[-1])))
        return compute(model, inputs, *args, **kwargs)

    real.compute_loss = recording
    real.train()
    longest_step = max(seen, key=lambda s: s[1])
    assert longest_step == (top.step, top.seq_len)
    assert top.step != 1 or seen[0][1] == top.seq_len


def test_peft_data_magic_shows_the_view(shell):
    shell.user_ns.update(ds=Dataset.from_list([{"text": "hello world"}] * 3), tok=tiny.tokenizer())
    shell.run_line_magic("peft", "data ds --tokenizer tok --max-length 32")
    shell.user_ns["bad"] = Dataset.from_list([{"prompt": "a", "chosen": "b"}])
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="rejected"):
        shell.run_line_magic("peft", "data bad --tokenizer tok --trainer dpo")
