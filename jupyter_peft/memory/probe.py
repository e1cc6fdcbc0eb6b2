"""The per-model work of the instant estimate: what the model holds, and what a layer saves.

Two things are read off the model, once per (config, plan, precision, checkpointing) and
cached, so that moving a batch or sequence slider is arithmetic:

- the parameter inventory (inventory.py): every tensor of the base built on `meta` plus the
  adapters peft builds for the plan;
- the layer probe: how many activation bytes a decoder layer keeps for backward, and how far
  memory rises inside its forward and its backward. Architectures differ here (norms that
  upcast, fused projections, activation functions written in Python, peft's fp32 copies of
  adapter inputs, DoRA's norms...), so instead of a table per architecture the backbone is run
  on fake tensors with one and with two layers, at two token counts. Bytes are linear in
  tokens (flash-style attention has no s^2 term), so four small runs give every coefficient.

The LM head and the loss are generic code and stay formulas (`analytic.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from .._compat import base_model, pattern_key
from ..model.adapt import check
from ..model.modelmap import layer_indices
from ..session import session
from .build import meta_model, num_layers
from .inventory import Tensor, inventory
from .settings import Setup

_PROBE_ROWS, _PROBE_SEQ = 2, 16  # probe token counts: 2 x 16 and 2 x 32


@dataclass(frozen=True)
class Line:
    """Bytes as `const + rows * (per_token * seq + per_pair * seq**2)`: per-row memory grows
    with the sequence, and with its square where attention scores are materialised (eager
    attention); what does not grow (weight casts) is the constant."""
    const: float
    per_token: float
    per_pair: float = 0.0

    def at(self, rows: int, seq: int) -> float:
        return self.const + rows * (self.per_token * seq + self.per_pair * seq * seq)

    def __sub__(self, other: Line) -> Line:
        return Line(self.const - other.const, self.per_token - other.per_token, self.per_pair - other.per_pair)

    @staticmethod
    def fit(rows: int, seqs: tuple[int, ...], ys: tuple[float, ...]) -> Line:
        """The line through (seq, y) points measured with `rows` rows: two points for a
        straight line, three for one with a square term."""
        if len(seqs) == 2:
            (s1, s2), (y1, y2) = seqs, ys
            slope = (y2 - y1) / (rows * (s2 - s1))
            return Line(y1 - rows * slope * s1, slope)
        (s1, s2, s3), (y1, y2, y3) = seqs, ys
        # divided differences of y / rows in s: the square term, then the linear one
        d12, d23 = (y2 - y1) / (rows * (s2 - s1)), (y3 - y2) / (rows * (s3 - s2))
        square = (d23 - d12) / (s3 - s1)
        linear = d12 - square * (s1 + s2)
        return Line(y1 - rows * (linear * s1 + square * s1 * s1), linear, square)


@dataclass(frozen=True)
class Curve:
    """A peak over a phase as a function of the batch: the largest of the lines each moment of
    the phase follows (the probe runs the same ops at several sequence lengths, moment by
    moment). Small batches peak where weight-sized buffers are, large ones where activations
    are; one line could not say both."""
    lines: tuple[Line, ...]

    def at(self, rows: int, seq: int) -> float:
        return max(line.at(rows, seq) for line in self.lines)

    @staticmethod
    def fit(rows: int, seqs: tuple[int, ...], timelines: tuple[list[int], ...]) -> Curve:
        if len({len(t) for t in timelines}) != 1:  # the runs took different paths: keep their peaks
            return Curve((Line.fit(rows, seqs, tuple(max(t) for t in timelines)),))
        lines = {Line.fit(rows, seqs, ys) for ys in zip(*timelines)}
        # the upper envelope: a line below another for every batch never peaks
        front = [
            ln
            for ln in lines
            if not any(
                o != ln and o.const >= ln.const and o.per_token >= ln.per_token and o.per_pair >= ln.per_pair
                for o in lines
            )
        ]
        return Curve(tuple(sorted(front, key=lambda ln: (ln.per_pair, ln.per_token))))


@dataclass
class Profile:
    """The per-model facts the instant estimate composes (see the module docstring)."""
    tensors: list[Tensor] = field(default_factory=list)
    layers: int = 0
    layer_retained: Line = Line(0, 0)
    """Activation bytes one more layer keeps until its backward."""
    end_forward: Line = Line(0, 0)
    """Activation bytes alive after a one-layer backbone's forward (embeddings, norms, output)."""
    forward_peak: Curve = Curve((Line(0, 0),))
    backward_peak: Curve = Curve((Line(0, 0),))
    """Peaks of a one-layer backbone's forward and backward (one layer's gradients at a time)."""
    hidden: int = 0
    vocab: int = 0
    head_trains: bool = False
    head_dtype: str = "float32"
    tied: bool = False
    """The head shares its weight with the input embedding."""
    frozen_below: int = 0
    """Layers under the first one that trains: they keep nothing for backward."""
    notes: list[str] = field(default_factory=list)


def profile(setup: Setup) -> Profile:
    """The Profile of `setup`, cached in the session by everything but batch size and sequence length."""
    return session().profile(setup.key, lambda: _build(setup))


def _build(setup: Setup) -> Profile:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total_layers = num_layers(setup.config)
        probe_setup, adapted, lowest = _probe_setup(setup, total_layers)
        prof = Profile(layers=total_layers, frozen_below=lowest)
        one, two = meta_model(probe_setup, num_layers=1), meta_model(probe_setup, num_layers=2)
        prof.tensors = inventory(setup, one, two, adapted)
        _head_facts(prof, one)
        # eager attention (a model without SDPA support, or asked for) and a padded batch's
        # mask (b x s x s per layer, trace.batch_rows) need the square term
        eager = one.config._attn_implementation != "sdpa" if hasattr(one, "config") else False
        square = eager or setup.masked
        seqs = (_PROBE_SEQ, 2 * _PROBE_SEQ, 4 * _PROBE_SEQ) if square else (_PROBE_SEQ, 2 * _PROBE_SEQ)
        runs = {
            (n_layers, seq): _run(setup, model, _PROBE_ROWS, seq, backward=n_layers == 1)
            for n_layers, model in ((1, one), (2, two))
            for seq in seqs
        }
    extra = setup.virtual_tokens
    total = tuple(seq + extra for seq in seqs)

    def end(n_layers: int) -> Line:
        return Line.fit(_PROBE_ROWS, total, tuple(runs[(n_layers, seq)][0] for seq in seqs))

    prof.end_forward = end(1)
    prof.layer_retained = end(2) - end(1)
    prof.forward_peak = Curve.fit(_PROBE_ROWS, total, tuple(runs[(1, seq)][1] for seq in seqs))
    prof.backward_peak = Curve.fit(_PROBE_ROWS, total, tuple(runs[(1, seq)][2] for seq in seqs))
    return prof


def _probe_setup(setup: Setup, total_layers: int) -> tuple[Setup, int, int]:
    """(the setup the one- and two-layer probes run, layers that carry adapters, layers below
    the first one that trains). The probes adapt every layer the way the plan adapts its top
    adapted layer: a plan that picks layers (layers_to_transform, a per-layer regex) becomes
    role patterns with that layer's ranks and alphas."""
    plan = setup.plan
    if plan is None or not plan.method_spec.targets_modules or _uniform(plan):
        return setup, total_layers, 0
    from .build import build_base, unquantized

    plan = unquantized(plan)
    checked = check(plan, build_base(setup.model_class, setup.config, setup.dtype))
    top: dict[str, tuple[int, str]] = {}
    for path in checked.targets:
        group = checked.model_map.group_of(path)
        template = group.template if group is not None else path
        index = layer_indices([path])[0]
        if template not in top or (index or -1) > top[template][0]:
            top[template] = (index if index is not None else -1, path)
    config = checked.config
    ranks, alphas = {}, {}
    for template, (_, path) in top.items():
        if getattr(config, "rank_pattern", None):
            ranks[template] = config.rank_pattern.get(pattern_key(config.rank_pattern, path), config.r)
        if getattr(config, "alpha_pattern", None):
            alphas[template] = config.alpha_pattern.get(pattern_key(config.alpha_pattern, path), config.lora_alpha)
    options = {
        k: v for k, v in plan.options.items() if k not in ("layers_to_transform", "layers_pattern", "exclude_modules")
    }

    groups = [checked.model_map.group_of(path) for _, path in top.values()]
    regex = checked.model_map.targets_for(  # the shortest form that selects them (a safe, short regex)
        [p for g, (_, path) in zip(groups, top.values()) for p in (g.paths if g is not None else [path])])
    probe_plan = plan.replace(options=options, target_modules=regex, ranks=ranks, alphas=alphas)
    indices = [i for i in layer_indices(checked.targets) if i is not None]
    adapted = len(set(indices)) or total_layers
    lowest = min(indices) if indices and not setup.gradient_checkpointing else 0
    return setup.replace(plan=probe_plan), adapted, lowest


def _uniform(plan: Any) -> bool:
    """Whether the plan adapts every layer alike (names or all-linear, no layer picks)."""
    targets = plan.target_modules
    if isinstance(targets, str) and targets.lower() != "all-linear":
        return False  # a regex over full paths may pick layers
    if any(k in plan.options for k in ("layers_to_transform", "layers_pattern", "exclude_modules")):
        return False
    return not any(re.search(r"\d", key) for key in [*plan.ranks, *plan.alphas])


# ---- the probe runs ----------------------------------------------------------------------


def _run(setup: Setup, model: Any, rows: int, seq: int, backward: bool = True) -> tuple[int, list[int], list[int]]:
    """(activation bytes after forward, the forward's and the backward's timelines) of the
    backbone of `model` on `rows` x `seq` tokens; parameters are not counted. Without
    `backward` the backward timeline is empty (the two-layer runs only say what a layer keeps)."""
    import copy

    from torch._subclasses.fake_tensor import FakeTensorMode

    from .trace import ByteCounter, batch_rows, cuda_like, to_fake

    model = copy.deepcopy(model)
    backbone = _backbone(model)
    fake = FakeTensorMode()
    to_fake(model, fake)
    embedded: list[Any] = []
    hook = _input_embeddings(model).register_forward_hook(lambda m, i, out: embedded.append(out))
    autocast = getattr(torch, setup.autocast) if setup.autocast else None
    with fake, batch_rows(setup.masked):
        ids = torch.zeros((rows, seq + setup.virtual_tokens), dtype=torch.long)
        weights = torch.empty(_hidden_size(model), dtype=getattr(torch, setup.dtype))
        with ByteCounter() as counter:
            counter.ignore([ids, weights, *model.parameters(), *model.buffers()])
            counter.start_phase()
            with cuda_like(autocast):
                extra = {"targets": max(round(seq * setup.targets / setup.seq_len), 1)} if _seq2seq(model) else {}
                hidden = _last_hidden(backbone(input_ids=ids, use_cache=False, **extra))
                forward, end = counter.timeline, counter.current
                loss = (hidden * weights).sum()  # a stand-in head: the real one is a formula
            del hidden
            counter.start_phase()
            if not backward:
                hook.remove()
                return end, forward, []
            # The layer's own weight gradients appear as its activations go, so they are part
            # of its backward; the embedding's (made last, when activations are gone) is not
            flows = [e for e in embedded[:1] if e.requires_grad]
            table = _input_embeddings(model).weight
            trained = [p for p in model.parameters() if p.requires_grad and p is not table]
            torch.autograd.backward(loss, inputs=[*flows, *trained] if flows else None)
    hook.remove()
    return end, forward, counter.timeline


def _input_embeddings(model: Any) -> Any:
    base = base_model(model)
    return base.get_input_embeddings()


def _hidden_size(model: Any) -> int:
    return int(_input_embeddings(model).weight.shape[-1])


def _backbone(model: Any) -> Any:
    """A function from input ids to the last hidden states (the model minus its LM head)."""
    from .build import is_causal_lm

    base = base_model(model)
    if getattr(model, "peft_config", None) and _is_prompt_learning(model):
        base.enable_input_require_grads()  # virtual tokens train: gradient flows from the input
    if getattr(base.config, "is_encoder_decoder", False):
        encoder, decoder = base.get_encoder(), base.get_decoder()

        def run(input_ids: Any, targets: int, **kw: Any) -> Any:
            memory = _last_hidden(encoder(input_ids=input_ids))
            return decoder(input_ids=input_ids[:, :1].expand(-1, targets), encoder_hidden_states=memory, **kw)

        return run
    inner = getattr(base, "base_model", base)
    if inner is base and not is_causal_lm(base):
        return base
    return inner


def _seq2seq(model: Any) -> bool:
    base = base_model(model)
    return bool(getattr(base.config, "is_encoder_decoder", False))


def _is_prompt_learning(model: Any) -> bool:
    config = model.peft_config.get(getattr(model, "active_adapter", "default"))
    return bool(getattr(config, "is_prompt_learning", False))


def _last_hidden(output: Any) -> torch.Tensor:
    if hasattr(output, "last_hidden_state") and output.last_hidden_state is not None:
        return output.last_hidden_state
    return output[0]


def _head_facts(prof: Profile, model: Any) -> None:
    base = base_model(model)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if head is None:
        return
    weight = head.weight
    prof.vocab, prof.hidden = int(weight.shape[0]), int(weight.shape[1])
    prof.head_trains = bool(weight.requires_grad)
    prof.head_dtype = str(weight.dtype).replace("torch.", "")
    embedding = base.get_input_embeddings() if hasattr(base, "get_input_embeddings") else None
    prof.tied = embedding is not None and getattr(embedding, "weight", None) is weight
