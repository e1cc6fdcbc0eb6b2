"""What you see is what peft does: preview (`ModelMap.match`), `jp.apply` and the studio's count
agree with the installed peft's own `get_peft_model`, case by case.

The tables are ported from huggingface/peft's tests (tests/test_tuners_utils.py: REGEX_TEST_CASES,
TestTargetedModuleNames, TestTargetedParameterNames, TestExcludedModuleNames,
test_maybe_include_all_linear_*; tests/test_target_parameters.py; tests/test_decoder_models.py's
grid of methods on a decoder). Every case is judged against the installed peft, not against the
expected value written in peft's tables: where peft's own table is stale for the installed
version, the installed peft wins (none was, on peft 0.21.2).

One difference is on purpose: peft drops a name in a `target_modules` list that matches nothing
as long as another one matches; `jp.apply` refuses it (a misspelt `vproj` must not silently
train `q_proj` alone). The preview still shows what peft would do.
"""

from __future__ import annotations

import copy

import pytest
import tiny
import torch.nn as nn

import jupyter_peft as jp
from jupyter_peft._compat import adapter_layer_types
from jupyter_peft.model.adapt import check
from jupyter_peft.model.counting import ParamCounter

# ---- the judge: what the installed peft adapts -------------------------------------------------


def peft_targets(model, config) -> list[str] | None:
    """The module paths (and `module.parameter` paths for target_parameters) that peft's own
    get_peft_model adapts on a copy of `model`; None when peft refuses the config."""
    from peft import get_peft_model

    try:
        peft_model = get_peft_model(copy.deepcopy(model), copy.deepcopy(config))
    except (ValueError, TypeError, RuntimeError, NotImplementedError, ImportError):
        return None
    return adapted_paths(peft_model.get_base_model() if hasattr(peft_model, "get_base_model") else peft_model)


def adapted_paths(base) -> list[str]:
    layer_type, _ = adapter_layer_types()
    out: list[str] = []
    skip: list[str] = []
    for path, module in base.named_modules():
        if any(path.startswith(s) for s in skip) or not isinstance(module, layer_type):
            continue
        skip.append(path + ".")
        params = []
        inner = module
        while isinstance(inner, layer_type) and type(inner).__name__ == "ParamWrapper":
            params.append(inner.parameter_name)
            inner = inner.get_base_layer()
        out += [f"{path}.{p}" for p in sorted(params)] if params else [path]
    return out


def judge(model, plan_text: str) -> None:
    """preview == apply == peft for `plan_text` on `model`, and the studio's count == peft's."""
    plan = jp.Plan.from_yaml(plan_text)
    model_map = jp.inspect(model)
    try:
        config = plan.peft_config(task_type=model_map.task_type)
    except jp.PlanError:  # peft cannot even build the config here (AdaMSS without scikit-learn)
        config = None
    expected = peft_targets(model, config) if config is not None else None
    if expected is None:  # peft refuses: apply refuses too, in words, and leaves the model as it was
        modules = dict(model.named_modules())
        with pytest.raises(jp.PlanError):
            jp.apply(plan, model)
        assert dict(model.named_modules()) == modules
        return
    assert sorted(model_map.match(plan)) == sorted(expected)
    checked = check(plan, model)
    assert sorted(checked.targets) == sorted(expected)
    count = ParamCounter(checked.model_map).count(checked.config, checked.targets)
    peft_model = jp.apply(plan, model)
    assert sorted(adapted_paths(peft_model.get_base_model())) == sorted(expected)
    assert (count.trainable, count.total) == peft_model.get_nb_trainable_parameters()


# ---- REGEX_TEST_CASES: one module at `key`, peft's matching rules --------------------------------

REGEX_CASES = [
    # key, target_modules, layers_to_transform, layers_pattern (peft's expected result is not used)
    ("foo", ["foo"], None, None),
    ("foo", ["bar"], None, None),
    ("foo", ["foo", "bar"], None, None),
    ("foo", "foo", None, None),
    ("foo", ".*oo", None, None),
    ("foo", "fo.*", None, None),
    ("foo", ".*bar.*", None, None),
    ("foobar", ".*oba.*", None, None),
    ("foo.bar.1.baz", ["baz"], [1], ["bar"]),
    ("foo.bar.1.baz", ["baz"], [0], ["bar"]),
    ("foo.bar.1.baz", ["baz"], [2], ["bar"]),
    ("foo.bar.10.baz", ["baz"], [0], ["bar"]),
    ("foo.bar.10.baz", ["baz"], [1], ["bar"]),
    ("foo.bar.1.baz", ["baz"], [0, 1, 2], ["bar"]),
    ("foo.bar.1.baz", ["baz", "spam"], [1], ["bar"]),
    ("foo.bar.1.baz", ["baz", "spam"], [0, 1, 2], ["bar"]),
    ("foo.whatever.1.baz", ["baz"], [1], []),
    ("foo.whatever.1.baz", ["baz"], [0], []),
    ("foo.whatever.1.baz", ["baz"], [1], ""),
    ("foo.whatever.1.baz", ["baz"], [0], ""),
    ("foo.whatever.1.baz", ["baz"], [1], None),
    ("foo.whatever.1.baz", ["baz"], [0], None),
    ("transformer.h.1.attn.attention.q_proj", ["q_proj"], None, []),
    ("transformer.h.1.attn.attention.q_proj", ["q_proj", "v_proj"], None, []),
    ("transformer.h.1.attn.attention.resid_dropout", ["q_proj", "v_proj"], None, []),
    ("transformer.h.1.attn.attention.q_proj", ["q_proj"], [1], ["h"]),
    ("transformer.h.1.attn.attention.q_proj", ["q_proj"], [0], ["h"]),
    ("transformer.h.1.attn.attention.q_proj", ["q_proj"], [2], ["h"]),
    ("transformer.h.1.attn.attention.q_proj", ["q_proj"], [0, 1, 2], ["h"]),
    ("transformer.h.1.attn.attention.q_proj", ["q_proj", "v_proj"], [0, 1, 2], ["h"]),
    ("foo.bar.q_proj", ["q_proj"], None, []),
    ("foo.bar.1.baz", ["baz"], [1], ["foo"]),
    ("foo.bar.1.baz", ["baz"], [1], ["baz"]),
    ("bar.1.baz", ["baz"], [1], ["bar"]),
    ("foo.bar.001.baz", ["baz"], [1], ["bar"]),
    ("foo.bar.1.spam.2.baz", ["baz"], [1], ["bar"]),
    ("foo.bar.2.spam.1.baz", ["baz"], [1], ["bar"]),
    ("mlp.blocks.1.weight", ["weight"], [1], ["blocks"]),
    ("blocks.1.weight", ["weight"], [1], ["blocks"]),
]


def _model_with(path: str) -> nn.Module:
    """A model holding one Linear at `path` (containers on the way), plus a decoy beside it."""
    root = nn.Module()
    node = root
    parts = path.split(".")
    for part in parts[:-1]:
        if not hasattr(node, part):
            node.add_module(part, nn.Module())
        node = getattr(node, part)
    node.add_module(parts[-1], nn.Linear(4, 4))
    root.add_module("decoy", nn.Linear(4, 4))
    return root


@pytest.mark.parametrize("key,targets,layers,pattern", REGEX_CASES, ids=[f"{c[0]}~{c[1]}" for c in REGEX_CASES])
def test_regex_cases_match_like_peft(key, targets, layers, pattern):
    from peft import LoraConfig

    model = _model_with(key)
    options = {"layers_to_transform": layers, "layers_pattern": pattern}
    expected = peft_targets(model, LoraConfig(target_modules=targets, **options)) or []
    assert sorted(jp.inspect(model).match(targets, **options)) == sorted(expected)


# ---- TestTargetedModuleNames / TestTargetedParameterNames / TestExcludedModuleNames on peft's MLP --


class MLP(nn.Module):
    """peft's test MLP (tests/test_tuners_utils.py)."""

    def __init__(self, bias: bool = True):
        super().__init__()
        self.lin0 = nn.Linear(10, 20, bias=bias)
        self.relu = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.lin1 = nn.Linear(20, 20, bias=bias)
        self.lin2 = nn.Linear(20, 20, bias=bias)
        self.lin3 = nn.Linear(20, 2, bias=bias)
        self.sm = nn.LogSoftmax(dim=-1)

    def forward(self, x):
        return self.sm(self.lin3(self.lin2(self.lin1(self.drop(self.relu(self.lin0(x)))))))


MLP_PLANS = [
    "method: lora\ntarget_modules: 'lin0'",
    "method: lora\ntarget_modules: 'lin.*'",
    "method: lora\ntarget_modules: [lin0]",
    "method: lora\ntarget_modules: [lin0, lin1]",
    "method: ia3\ntarget_modules: '^lin.*'\nfeedforward_modules: '^lin.*'",
    "method: ia3\ntarget_modules: [lin1, lin0]\nfeedforward_modules: [lin1]",
    "method: lora\ntarget_modules: []\ntarget_parameters: [lin0.weight]",
    "method: lora\ntarget_parameters: [lin0.weight, lin1.weight]",
    "method: lora\ntarget_modules: [lin0]\ntarget_parameters: [lin1.weight]\nranks: {lin1.weight: 2}",
    "method: lora\ntarget_modules: [lin0, lin1, lin2]\nexclude_modules: [lin1, lin2]",
    "method: lora\ntarget_modules: 'lin.*'\nexclude_modules: 'lin[12]'",
    "method: lora\ntarget_modules: all-linear\nexclude_modules: [lin3]",
    "method: ia3\ntarget_modules: [lin0, lin1, lin2]\nfeedforward_modules: [lin1]\nexclude_modules: [lin1]",
    "method: lora\ntarget_modules: [lin0, lin1]\nmodules_to_save: [lin1]",
    "method: loha\ntarget_modules: [lin0, lin1]",
    "method: lokr\ntarget_modules: [lin0, lin1]",
    "method: vera\nr: 4\ntarget_modules: [lin1, lin2]",
    "method: oft\noft_block_size: 4\nr: 0\ntarget_modules: [lin1, lin2]",
    "method: boft\nboft_block_size: 4\ntarget_modules: [lin1, lin2]",
    "method: fourierft\nn_frequency: 10\ntarget_modules: [lin1, lin2]",
    "method: hra\nr: 2\ntarget_modules: [lin1, lin2]",
    "method: ln_tuning\ntarget_modules: [lin1]",
]


@pytest.mark.parametrize("text", MLP_PLANS, ids=range(len(MLP_PLANS)))
def test_custom_mlp_cases_agree_with_peft(text):
    judge(MLP(), text)


def test_all_modules_excluded_is_refused_like_peft():
    """peft: "All modules were excluded" (test_all_modules_excluded)."""
    with pytest.raises(jp.PlanError):
        jp.apply("method: lora\ntarget_modules: [lin0, lin1]\nexclude_modules: [lin0, lin1]", MLP())


def test_a_misspelt_name_is_refused_where_peft_drops_it():
    from peft import LoraConfig

    model = MLP()
    assert peft_targets(model, LoraConfig(target_modules=["lin0", "lin9"])) == ["lin0"]  # peft: silently one
    assert jp.inspect(model).match(["lin0", "lin9"]) == ["lin0"]  # the preview shows what peft does
    with pytest.raises(jp.PlanError, match="'lin9' in target_modules matches no module") as err:
        jp.apply("method: lora\ntarget_modules: [lin0, lin9]", model)
    assert "lin0" in err.value.choices or "lin1" in err.value.choices
    assert not hasattr(model, "peft_config") and type(model.lin0) is nn.Linear  # nothing changed


def test_misspelt_target_parameters_are_refused():
    with pytest.raises(jp.PlanError, match="selects no parameter"):
        jp.apply("method: lora\ntarget_modules: []\ntarget_parameters: [lin0.wieght]", MLP())


def test_an_empty_target_list_needs_target_parameters():
    with pytest.raises(jp.PlanError, match="empty list"):
        jp.Plan.from_yaml("method: lora\ntarget_modules: []")
    assert jp.Plan.from_yaml("method: lora\ntarget_modules: []\ntarget_parameters: [lin0.weight]").target_modules == []


# ---- decoders: every method that adapts modules, with and without target_modules ---------------

METHOD_OPTIONS = {
    "adalora": "total_step: 10",
    "vblora": "vector_length: 16\nnum_vectors: 8",
    "boft": "boft_block_size: 4",
    "fourierft": "n_frequency: 10",
    "oft": "oft_block_size: 4\nr: 0",
    "vera": "r: 4",
    "shira": "r: 4",
    "randlora": "r: 4",
}


def _targeting_methods() -> list[str]:
    # qlora needs a 4-bit base (tests/quant); adaption_prompt is no BaseTuner: it wraps whole
    # attention blocks of the top layers, and its preview is the studio's prompt-learning one
    skipped = ("qlora", "adaption_prompt")
    return [n for n in jp.methods.names() if jp.methods.get(n).targets_modules and n not in skipped]


@pytest.fixture(scope="module")
def llama():
    return tiny.build("llama")


@pytest.mark.parametrize("method", _targeting_methods())
@pytest.mark.parametrize("extra", ["", "layers_to_transform: [0]"], ids=["default", "layer0"])
def test_every_method_without_target_modules_agrees_with_peft(llama, method, extra):
    """peft fills the architecture's default targets (119 cases of the decoder grid once previewed
    as empty): preview, apply and count must follow it, or refuse where peft refuses."""
    text = "\n".join(filter(None, [f"method: {method}", METHOD_OPTIONS.get(method, ""), extra]))
    try:
        jp.Plan.from_yaml(text)
    except jp.PlanError:
        pytest.skip(f"{method} needs options a generic plan does not give")
    judge(copy.deepcopy(llama), text)


@pytest.mark.parametrize(
    "text",
    [
        "method: lora\ntarget_modules: all-linear",
        "method: lora\ntarget_modules: [q_proj, v_proj]\nlayers_to_transform: [1]\nlayers_pattern: layers",
        "method: lora\ntarget_modules: all-linear\nexclude_modules: [o_proj, down_proj]",
        "method: lora\ntarget_modules: '.*\\.layers\\.0\\..*_proj'",
        "method: lora\ntarget_modules: [q_proj, v_proj]\nranks: {self_attn.q_proj: 2}",
        "method: ia3",
        "method: dora\ntarget_modules: [q_proj]\nmodules_to_save: [lm_head]",
    ],
)
def test_decoder_options_agree_with_peft(llama, text):
    judge(copy.deepcopy(llama), text)


@pytest.mark.parametrize("arch", ["gpt2", "t5", "gpt_neox", "falcon", "phi3"])
def test_all_linear_and_defaults_on_other_families(arch):
    """test_maybe_include_all_linear_layers_*: Conv1D on GPT-2, T5's q/k/v/o/wi/wo, GPT-NeoX's
    embed_out left out; and each family's default targets."""
    model = tiny.build(arch)
    judge(copy.deepcopy(model), "method: lora\ntarget_modules: all-linear")
    judge(copy.deepcopy(model), "method: lora")


# ---- task types: the heads peft saves whole are never targeted -----------------------------------


def test_sequence_classification_heads_are_saved_not_targeted():
    """peft's PeftModelForSequenceClassification adds `classifier` and `score` to modules_to_save
    before it injects: all-linear leaves them out (RoBERTa's classifier.dense/out_proj, BERT's
    classifier), and naming them targets nothing of them."""
    bert = tiny.build("bert")
    judge(copy.deepcopy(bert), "method: lora\ntarget_modules: all-linear")
    assert not [p for p in jp.inspect(bert).match("all-linear") if "classifier" in p]
    with pytest.raises(jp.PlanError, match="trained whole"):  # peft would drop it without a word
        jp.apply("method: lora\ntarget_modules: [query, classifier]", copy.deepcopy(bert))
    gpt2 = tiny.build("gpt2", architectures=None)
    from transformers import GPT2ForSequenceClassification

    score = GPT2ForSequenceClassification(tiny.config("gpt2", num_labels=2, pad_token_id=0))
    judge(score, "method: lora\ntarget_modules: all-linear")
    assert "score" not in jp.inspect(score).match(["c_attn", "score"])
    del gpt2


# ---- mixture of experts: fused experts through target_parameters ---------------------------------


def test_moe_target_parameters_agree_with_peft():
    mixtral = tiny.build("mixtral")
    judge(copy.deepcopy(mixtral), "method: lora\ntarget_modules: [q_proj]\n"
                                  "target_parameters: [mlp.experts.gate_up_proj]")
    judge(copy.deepcopy(mixtral), "method: lora\ntarget_modules: []\ntarget_parameters: [mlp.experts.down_proj]")
    judge(copy.deepcopy(mixtral), "method: lora\ntarget_modules: [q_proj, w1, w3]")  # v4 names, converted


def test_a_partly_fused_moe_target_is_a_plan_error_not_peft_traceback():
    qwen = tiny.build("qwen3_moe") if "qwen3_moe" in tiny.ARCHS else None
    if qwen is None:
        pytest.skip("tiny.py has no qwen3_moe")
    with pytest.raises(jp.PlanError) as err:
        jp.apply("method: lora\ntarget_modules: [up_proj, down_proj]", qwen)
    assert "target" in str(err.value)
