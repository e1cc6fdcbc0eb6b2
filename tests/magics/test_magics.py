"""%%peft and %peft in a real InteractiveShell: binding, rich summary, and mistakes that change nothing."""

import pytest
import tiny
import torch
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

GOOD = "method: lora\nr: 4\ntarget_modules: [q_proj, v_proj]\n"


def test_cell_applies_binds_peft_model_and_shows_an_html_summary(shell):
    shell.user_ns["model"] = tiny.build("llama")
    with capture_output() as cap:
        shell.run_cell_magic("peft", "model", GOOD)
    peft_model = shell.user_ns["peft_model"]
    from peft import PeftModel

    assert isinstance(peft_model, PeftModel)
    html = cap.outputs[0].data["text/html"]
    trainable, total = peft_model.get_nb_trainable_parameters()
    assert f"{trainable:,}" in html and f"{total:,}" in html and "self_attn.q_proj" in html
    assert "2 / 2" in html  # targeted modules per group
    assert "text/plain" in cap.outputs[0].data


def test_as_binds_another_name_and_rerunning_replaces(shell):
    shell.user_ns["model"] = tiny.build("llama")
    with capture_output():
        shell.run_cell_magic("peft", "model --as tuned", GOOD)
        first = sum(p.numel() for p in shell.user_ns["tuned"].parameters() if p.requires_grad)
        shell.run_cell_magic("peft", "model --as tuned", GOOD)
    assert "peft_model" not in shell.user_ns
    again = sum(p.numel() for p in shell.user_ns["tuned"].parameters() if p.requires_grad)
    assert again == first


def test_status_shows_what_is_applied(shell, capsys):
    shell.user_ns["model"] = tiny.build("llama")
    shell.run_line_magic("peft", "status")
    assert "No adapter applied yet" in capsys.readouterr().out
    with capture_output():
        shell.run_cell_magic("peft", "model", GOOD)
    with capture_output() as cap:
        shell.run_line_magic("peft", "status")
    assert "peft_model:" in cap.stdout
    assert "trainable" in cap.outputs[0].data["text/html"]


def namespace_snapshot(shell):
    ns = {k: v for k, v in shell.user_ns.items() if not k.startswith("_")}
    model = shell.user_ns.get("model")
    kinds = [type(m).__name__ for m in model.modules()] if isinstance(model, torch.nn.Module) else None
    weights = {k: v.clone() for k, v in model.state_dict().items()} if kinds else None
    return ns, kinds, weights


# (magic line, cell, words the message must contain, the cell line it names)
BAD = [
    ("model", "method: lora\nr: 0\n", ["line 3", "key 'r'", "positive integer"], 3),
    ("model", "method: lora\nr: 2.5\n", ["line 3", "expected int"], 3),
    ("model", "methd: lora\n", ["line 2", "unknown key 'methd'", "did you mean 'method'"], 2),
    ("model", "method: lorra\n", ["unknown method 'lorra'", "did you mean 'lora'"], 2),
    ("model", "method: lora\n  r: 4\n", ["YAML syntax error"], 3),
    ("model", "target_modules: [qproj]\n", ["matches no module", "q_proj", "self_attn.q_proj"], None),
    ("model", "method: lokr\ntarget_modules: [embed_tokens]\n", ["cannot adapt Embedding"], None),
    ("modle", GOOD, ["no variable named 'modle'", "model"], None),
    ("x", GOOD, ["'x' holds a int value, not a torch model"], None),
    ("model.nope", GOOD, ["has no attribute 'nope'"], None),
    ("", GOOD, ["name the model to adapt"], None),
    ("model --as 2x", GOOD, ["not a valid Python name"], None),
    ("model --bogus", GOOD, ["unknown option '--bogus'"], None),
    ("model", "# nothing here\n", ["the plan is empty"], 2),
    ("model", GOOD + "train: {trainer: sft, dataset: missing_ds}\n", ["no variable named 'missing_ds'"], None),
    ("model", "method: qlora\ntarget_modules: [q_proj]\n", ["quantization happens when a model is loaded", "base:"],
     None),
]


@pytest.mark.parametrize("line,cell,words,cell_line", BAD, ids=[f"{b[0]}|{b[1][:30]}" for b in BAD])
def test_a_bad_cell_says_what_is_wrong_and_changes_nothing(shell, line, cell, words, cell_line):
    shell.user_ns["model"] = tiny.build("llama")
    shell.user_ns["x"] = 3
    before = namespace_snapshot(shell)
    with pytest.raises(UsageError) as caught:
        shell.run_cell_magic("peft", line, cell)
    for word in words:
        assert word in str(caught.value)
    assert caught.value.line == cell_line
    after = namespace_snapshot(shell)
    assert after[0].keys() == before[0].keys() and all(after[0][k] is before[0][k] for k in before[0])
    assert after[1] == before[1]
    assert all(torch.equal(before[2][k], v) for k, v in after[2].items())


def test_a_bad_cell_after_a_good_one_keeps_the_adapter(shell):
    shell.user_ns["model"] = tiny.build("llama")
    with capture_output():
        shell.run_cell_magic("peft", "model", GOOD)
    peft_model = shell.user_ns["peft_model"]
    count = peft_model.get_nb_trainable_parameters()
    with pytest.raises(UsageError):
        shell.run_cell_magic("peft", "model", "target_modules: [nothing_like_this]\n")
    assert shell.user_ns["peft_model"] is peft_model
    assert peft_model.get_nb_trainable_parameters() == count


def test_errors_show_without_a_traceback_in_a_real_cell(shell, capsys):
    shell.user_ns["model"] = tiny.build("llama")
    result = shell.run_cell("%%peft model\nmethod: lora\nr: -1\n")
    assert isinstance(result.error_in_exec, UsageError)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "UsageError" in text and "line 3, key 'r'" in text
    assert "Traceback" not in text and "site-packages" not in text
