"""Hostile plans (issue 15): parsing is bounded, messages stay short, regexes that would hang
the kernel and adapter names that would become paths are refused before anything runs."""

from __future__ import annotations

import time

import pytest

import jupyter_peft as jp
from jupyter_peft import PlanError

MESSAGE = 1000  # jupyter_peft._errors.MESSAGE: the longest message


def _laughs(levels: int, width: int = 9, key: str = "m") -> str:
    """`m1: &m1 {k0: *m0, ..., k8: *m0}` nested `levels` deep: a few hundred bytes that expand 9x per level."""
    lines = [f"{key}0: &{key}0 {{a: 1}}"]
    for i in range(1, levels):
        lines.append(f"{key}{i}: &{key}{i} {{" + ", ".join(f"k{j}: *{key}{i - 1}" for j in range(width)) + "}")
    return "\n".join(lines)


def test_nested_yaml_aliases_are_refused_before_they_expand():
    text = "method: lora\n" + _laughs(7)  # 9**6 = 531441 entries once followed
    assert len(text) < 800
    start = time.monotonic()
    with pytest.raises(PlanError, match="aliases here expand") as caught:
        jp.Plan.from_yaml(text)
    assert time.monotonic() - start < 10  # generous: refused from the document's size, not its expansion
    assert caught.value.line is not None and len(str(caught.value)) < 400


def test_aliases_in_target_modules_do_not_make_a_huge_message():
    text = "method: lora\nx0: &x0 [q_proj, q_proj, q_proj, q_proj, q_proj, q_proj, q_proj, q_proj]\n"
    for i in range(1, 7):
        text += f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 8) + "]\n"
    with pytest.raises(PlanError, match="aliases") as caught:
        jp.Plan.from_yaml(text + "target_modules: *x6\n")
    assert len(str(caught.value)) < 400


def test_an_alias_inside_its_own_anchor_is_refused():
    with pytest.raises(PlanError, match="never end"):
        jp.Plan.from_yaml("method: lora\ntarget_modules: &a [q_proj, *a]\n")


def test_a_reused_alias_still_works():
    plan = jp.Plan.from_yaml("method: lora\nranks: &r {q_proj: 4}\nalphas: *r\ntarget_modules: [q_proj]\n")
    assert plan.ranks == {"q_proj": 4} and plan.alphas == {"q_proj": 4.0}


@pytest.mark.parametrize("text", [
    "method: lora\nr: [" + ", ".join(["7"] * 30_000) + "]\n",       # a 90 kB list
    "method: lora\nr: '" + "x" * 1_000_000 + "'\n",                # a 1 MB string
    "method: lora\n? lora_alphaa" + "a" * 100_000 + "\n: 3\n",      # a 100 kB key
    "method: lora\ntarget_modules: [" + ", ".join(["1"] * 30_000) + "]\n",
    "method: lora\nr: 1\n# " + "x" * (2**20) + "\n",                 # longer than any plan
])
def test_errors_echo_a_few_hundred_characters_of_a_huge_value(text):
    with pytest.raises(PlanError) as caught:
        jp.Plan.from_yaml(text)
    assert len(str(caught.value)) <= MESSAGE + 200  # the message, and at most 12 short choices


def test_values_yaml_cannot_read_are_plan_errors():
    with pytest.raises(PlanError, match="cannot be read"):
        jp.Plan.from_yaml("method: lora\nr: " + "9" * 5000 + "\n")  # past Python's int-from-str limit


@pytest.mark.parametrize("pattern", [r"(.+)+y", r"(a|ab)*c", r"(\.\w+)+\.q_proj", r".*.*.*.*x", "q" * 30_000])
def test_regexes_that_can_hang_the_kernel_are_refused(pattern):
    with pytest.raises(PlanError) as caught:
        jp.Plan.from_yaml(f"method: lora\ntarget_modules: '{pattern}'\n")
    assert caught.value.key == "target_modules" and caught.value.line == 2


@pytest.mark.parametrize("where", ["ranks: {'(.+)+y': 4}", "exclude_modules: '(.+)+y'", "layers_pattern: '(a*)*'"])
def test_every_regex_a_plan_hands_to_peft_is_checked(where):
    with pytest.raises(PlanError, match="backtrack"):
        jp.Plan.from_yaml(f"method: lora\ntarget_modules: [q_proj]\n{where}\n")


@pytest.mark.parametrize("pattern", [r".*\.(q|v)_proj", r"^(?!.*vision).*\.(q|v)_proj$",
                                     r"model\.layers\.\d+\.self_attn\..*_proj", r"lin[12]", r"(q_proj|v_proj)"])
def test_ordinary_regexes_pass(pattern):
    assert jp.Plan.from_yaml(f"method: lora\ntarget_modules: '{pattern}'\n").target_modules == pattern


def test_a_catastrophic_regex_never_reaches_the_model():
    import tiny

    model = tiny.build("llama")
    start = time.monotonic()
    with pytest.raises(PlanError, match="backtrack"):
        jp.apply("method: lora\ntarget_modules: '(.+)+y'\n", model)
    assert time.monotonic() - start < 30  # generous; it took 72 s on this model before


@pytest.mark.parametrize("name", ["/tmp/x", "sub/dir", "a" * 1_000_000, "a.b", "..", " x", "x\\y", "1st", 5])
def test_adapter_names_that_would_become_paths_are_refused(name):
    with pytest.raises(PlanError) as caught:
        jp.Plan.from_dict({"method": "lora", "adapter_name": name})
    assert caught.value.key == "adapter_name" and len(str(caught.value)) < 800


@pytest.mark.parametrize("name", ["second", "sft_v2", "my-adapter", "_x", "ünï"])
def test_adapter_names_that_fit(name):
    assert jp.Plan.from_dict({"method": "lora", "adapter_name": name}).adapter_name == name


@pytest.mark.parametrize("key", ["output_dir", "resume_from_checkpoint"])
def test_train_fields_a_run_sets_itself_are_refused(key):
    with pytest.raises(PlanError, match="not set in the train block") as caught:
        jp.Plan.from_yaml(f"method: lora\ntrain: {{trainer: sft, {key}: /tmp/elsewhere}}\n")
    assert caught.value.key == f"train.{key}"
