"""Hostile `%%peft` lines and cells in a real IPython shell (issue 15): `--as` names that would
break the session, variables overwritten unasked, mistakes found after the model changed, and
`%peft status` keeping runs the notebook dropped."""

from __future__ import annotations

import gc

import pytest
import runs
import tiny
import torch
from IPython.core.error import UsageError
from runs import LORA

from jupyter_peft.model.adapt import find_peft_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def ns(shell, tmp_path):
    shell.run_line_magic("config", f"PeftMagics.runs_dir = '{tmp_path}'")
    shell.user_ns.update(model=tiny.build("llama"), tokenizer=tiny.tokenizer(), ds=runs.sft_data())
    yield shell.user_ns
    shell.run_line_magic("config", "PeftMagics.runs_dir = 'peft_runs'")


def _visible(ns):
    return {k: id(v) for k, v in ns.items() if not k.startswith("_")}


@pytest.mark.parametrize("name", ["get_ipython", "__builtins__", "True", "print", "In", "Out", "_", "_i1", "_3",
                                  "exit", "class", "display"])
def test_as_names_that_would_break_the_session_are_refused(shell, ns, name):
    before = _visible(ns)
    with pytest.raises(UsageError, match="pick another name"):
        shell.run_cell_magic("peft", f"model --as {name}", LORA)
    assert _visible(ns) == before and find_peft_model(ns["model"]) is None
    with pytest.raises(UsageError, match="pick another name"):
        shell.run_line_magic("peft", f"model --as {name}")
    shell.run_cell("x_after = 1 + 1")  # later cells and magics still work
    assert shell.user_ns["x_after"] == 2


def test_replacing_a_variable_that_is_not_a_model_needs_saying_so(shell, ns):
    tok = ns["tokenizer"]
    with pytest.raises(UsageError, match=r"`tokenizer` already holds a \w+.*--replace"):
        shell.run_cell_magic("peft", "model --as tokenizer", LORA)
    assert ns["tokenizer"] is tok and find_peft_model(ns["model"]) is None
    shell.run_cell_magic("peft", "model --as tokenizer --replace", LORA)
    assert ns["tokenizer"] is find_peft_model(ns["model"])


def test_a_model_variable_can_be_replaced_by_its_peft_model(shell, ns):
    base = ns["model"]
    shell.run_cell_magic("peft", "model --as model", LORA)
    assert ns["model"] is find_peft_model(base)
    shell.run_cell_magic("peft", "model --as tuned", LORA)  # and a name bound before is rebound
    shell.run_cell_magic("peft", "model --as tuned", LORA + "r: 4\n")
    assert ns["tuned"].peft_config["default"].r == 4


def test_a_train_block_mistake_found_late_changes_nothing(shell, ns):
    from datasets import Dataset

    ns["ints"] = Dataset.from_list([{"text": i} for i in range(4)])
    before = _visible(ns)
    with pytest.raises(UsageError, match="holds int64 values"):
        shell.run_cell_magic("peft", "model", LORA + "train: {dataset: ints, max_steps: 2}")
    assert _visible(ns) == before and find_peft_model(ns["model"]) is None


def test_when_trl_refuses_the_trainer_the_models_earlier_adapter_comes_back(shell, ns):
    from datasets import Dataset

    shell.run_cell_magic("peft", "model", LORA)
    first = ns["peft_model"]
    with torch.no_grad():  # an adapter with weights of its own, as after training
        for name, p in first.named_parameters():
            if "lora_B" in name:
                p.fill_(0.5)
    weights = {k: v.clone() for k, v in first.state_dict().items() if "lora_" in k}
    ns["chats"] = Dataset.from_list([{"messages": [{"role": "user", "content": "hi"},
                                                   {"role": "assistant", "content": "hello"}]}] * 4)
    ns["tokenizer"].chat_template = None  # TRL cannot format chat rows: it finds out while building
    before = _visible(ns)
    with pytest.raises(UsageError, match="TRL could not set up"):
        shell.run_cell_magic("peft", "model", "method: lora\nr: 4\ntarget_modules: [q_proj]\n"
                                              "train: {dataset: chats, max_steps: 2}")
    assert _visible(ns) == before and find_peft_model(ns["model"]) is first
    after = {k: v for k, v in first.state_dict().items() if "lora_" in k}
    assert after.keys() == weights.keys() and all(torch.equal(after[k], weights[k]) for k in weights)


def test_status_keeps_a_run_the_notebook_no_longer_holds(shell, ns, capsys):
    shell.run_cell_magic("peft", "model", LORA + "train: {dataset: ds, max_steps: 2}")
    first = ns["peft_run"]
    assert first.wait(120) == "finished"
    folder = first.folder
    shell.run_cell_magic("peft", "model", LORA + "train: {dataset: ds, max_steps: 2}")  # rebinds peft_run
    assert ns["peft_run"].wait(120) == "finished"
    first.dashboard.close()  # a closed widget no longer holds its run
    del first
    shell.run_cell("pass")  # IPython's output history holds nothing of it either
    gc.collect()
    capsys.readouterr()
    shell.run_line_magic("peft", "status")
    out = capsys.readouterr().out
    lines = {line.split(" (")[0]: line for line in out.splitlines() if line.startswith("run ")}
    for run_folder in (folder, ns["peft_run"].folder):  # (other tests' runs may be listed too)
        assert "finished at step 2/2" in lines[f"run {run_folder}"]


def test_status_lists_a_run_that_was_collected(shell, capsys):
    from jupyter_peft.session import session

    class Dropped:  # stands for a Run nothing holds any more
        pass

    run = Dropped()
    session().add_run(run)
    session().remember_run(run, "run peft_runs/dropped (sft, finished at step 2/2), loss 1.5")
    del run
    gc.collect()
    shell.run_line_magic("peft", "status")
    assert "run peft_runs/dropped (sft, finished at step 2/2), loss 1.5" in capsys.readouterr().out
