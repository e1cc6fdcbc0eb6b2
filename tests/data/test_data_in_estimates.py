"""The data a plan's train block names is the data its estimate is for: `jp.estimate`, `%peft
estimate` and the studio's memory panel find it in the notebook, say which batch the estimate
is for (its step and row lengths), and say when the named data is not there."""

from __future__ import annotations

import time

import pytest
import tiny
from datasets import Dataset

import jupyter_peft as jp
from jupyter_peft._errors import PlanError

PLAN = ("method: lora\nr: 4\ntarget_modules: [q_proj, v_proj]\n"
        "train: {trainer: sft, dataset: ds, per_device_train_batch_size: 4, max_steps: 6, seed: 3}")


def _data():
    rows = [{"text": "hello world"} for _ in range(24)]
    rows[9] = {"text": "a long row " * 15}
    return Dataset.from_list(rows)


def test_the_train_blocks_dataset_is_the_estimates_data():
    tok, data, plan = tiny.tokenizer(), _data(), jp.Plan.from_yaml(PLAN)
    model = tiny.build("llama")
    given = jp.estimate(model, plan, dataset=data, tokenizer=tok)
    named = jp.estimate(model, plan, user_ns={"ds": data, "tokenizer": tok})
    assert named.data is not None and named.data_name == "ds"
    assert named.data.longest == given.data.longest and named.peak_bytes == given.peak_bytes
    top = named.data.longest
    assert named.setup.seq_len == top.seq_len == max(top.lengths)
    assert named.data_line.startswith(f"at the longest batch of ds: step {top.step} of 6, {top.rows} rows × "
                                      f"{top.seq_len} tokens")
    assert named.data_line in repr(named) and named.to_json()["data"]["longest"]["step"] == top.step
    # the lengths vary: the instant estimate replays the data's batches too (memory/varying.py)
    assert named.reserved_over_data >= named.reserved_bytes and "over the data's steps" in named._repr_html_()
    # its rows are padded to the longest one: the attention gets a mask (memory.trace.batch_rows)
    assert min(top.lengths) < top.seq_len and named.setup.padded
    same = Dataset.from_list([{"text": "hello world"} for _ in range(24)])
    assert not jp.estimate(model, plan, dataset=same, tokenizer=tok).setup.padded  # rows of one length
    # the estimate for a plain batch is another number: the data changed what was estimated
    plain = jp.estimate(model, plan, dataset=False)
    assert plain.data is None and plain.data_line == "" and plain.setup.seq_len != top.seq_len


def test_named_data_the_notebook_lacks_is_said_not_guessed():
    plan = jp.Plan.from_yaml(PLAN)
    est = jp.estimate(tiny.build("llama"), plan, user_ns={})
    assert est.data is None
    assert est.data_line == ("train.dataset 'ds' is not defined in this notebook: estimated for the batch size "
                             "and sequence length instead")
    no_tok = jp.estimate(tiny.build("llama"), plan, user_ns={"ds": _data()})
    assert "no tokenizer 'tokenizer'" in no_tok.data_line and no_tok.data is None


def test_peft_estimate_uses_the_named_or_given_data(shell):
    from IPython.core.error import UsageError
    from IPython.utils.capture import capture_output

    shell.user_ns.update(model=tiny.build("llama"), ds=_data(), tokenizer=tiny.tokenizer(),
                         plan=jp.Plan.from_yaml(PLAN))
    with capture_output() as cap:
        shell.run_line_magic("peft", "estimate model --plan plan")
    html = cap.outputs[-1].data["text/html"]
    assert "at the longest batch of ds: step" in html
    shell.user_ns["other"] = Dataset.from_list([{"text": "hi"}] * 8)
    with capture_output() as cap:
        shell.run_line_magic("peft", "estimate model --plan plan --dataset other --tokenizer tokenizer")
    assert "at the longest batch: step 1 of" in cap.outputs[-1].data["text/html"]
    with pytest.raises(UsageError, match="no tokenizer 'tok'"):
        shell.run_line_magic("peft", "estimate model --plan plan --dataset other --tokenizer tok")
    with pytest.raises(UsageError, match="--tokenizer goes with --dataset"):
        shell.run_line_magic("peft", "estimate model --plan plan --tokenizer tokenizer")


def test_the_studio_panel_says_which_batch_of_the_data():
    """Given the data (or finding the train block's in the notebook), the panel is the estimate
    at the data's longest batch and says which it is."""
    tok, data = tiny.tokenizer(), _data()
    studio = jp.studio(tiny.build("llama"), jp.Plan.from_yaml(PLAN), dataset=data, tokenizer=tok)
    try:
        assert studio.wait_estimate(120)
        expected = jp.estimate(tiny.build("llama"), studio._draft_plan(), dataset=data, tokenizer=tok)
        assert studio.memory["data_text"] == expected.data_line
        assert expected.data_line.startswith(f"at the longest batch: step {expected.data.longest.step} of 6")
        assert studio.memory["setup"]["seq_len"] == expected.data.longest.seq_len
    finally:
        studio.close()
    with pytest.raises(PlanError, match="dataset= needs tokenizer="):
        jp.studio(tiny.build("llama"), dataset=data)


def test_a_slow_preparation_shows_a_progress_line(shell):
    from IPython.utils.capture import capture_output

    from jupyter_peft.data.stand_in import _progress

    with capture_output() as cap:
        with _progress(list(range(10_000)), "sft", after=0.05):
            time.sleep(0.3)
        with _progress(list(range(3)), "sft"):  # within the second: nothing shown
            pass
    texts = [o.data["text/plain"] for o in cap.outputs]  # the line, then its updates in place
    assert texts[0].startswith("tokenizing 10,000 rows as TRL's sft trainer will: ") and texts[0].endswith("so far")
    assert texts[-1].startswith("tokenizing 10,000 rows as TRL's sft trainer will: done in ")
    assert not any("3 rows" in t for t in texts)


def test_packed_data_is_one_row_under_one_block_causal_mask():
    """TRL packs padding-free: the collated batch is one row of the packed sequences, and the
    estimate is for that row, with SDPA's mask over all its tokens."""
    tok, data = tiny.tokenizer(), _data()
    plan = jp.Plan.from_yaml(PLAN.replace("seed: 3}", "seed: 3, packing: true, max_length: 64}"))
    est = jp.estimate(tiny.build("llama"), plan, dataset=data, tokenizer=tok)
    top = est.data.longest
    assert top.rows == 1 and est.setup.batch_size == 1 and est.setup.seq_len == top.seq_len
    assert est.setup.packed and est.setup.masked and not est.setup.padded
    assert "rows packed into one" in est._repr_html_()
