"""The studio: pick modules, ranks and method on the live model (`%peft MODEL`, `jp.studio(model)`).

Python owns the state and every number: the browser renders the traits below and sends
commands as custom messages routed on a `kind` field (pick, preset, method, option, rank,
alpha, apply, memory). Each command edits a `Draft` (draft.py), then the derived traits (plan text,
counts, chart, warnings) are rebuilt in one synced update. Counts come from `counting.py`
and equal peft's own count after `jp.apply`, exactly.

The memory panel follows every click without slowing it: the click asks for `jp.estimate`
and returns; a background thread (`_latest.Latest`: debounced, the newest request wins, stale
results dropped) estimates from a copy of the model's config read once on the kernel's
thread (never from the model's weights), and sets the `memory` trait when done.

The "write cell" button is the browser's: it hands the `cell` text to the jupyter-peft
JupyterLab extension (labextension/), which inserts it below the widget's cell; without the
extension (VS Code, Colab) the page shows the text with a Copy button.

The output is the widget and, beside it, the studio as static HTML (static_view.py), which a
notebook reopened without its kernel shows (the extension falls back to it when the widget's
model is gone; nbviewer and GitHub show it anyway). The studio keeps it up to date: a moment
after each change where the page has the extension (updating the output there keeps the live
view as it is), else after each cell.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..._errors import PlanError
from ...memory.settings import read_model
from ...model.adapt import applied_plan, apply, as_plan, check, find_peft_model
from ...model.counting import Count, ParamCounter
from ...model.modelmap import inspect
from ...model.summary import summarize
from ...session import session
from .. import plotly_asset
from ..latest import Latest
from ..param_chart import from_count
from . import memory_panel, state
from .draft import Draft
from .static_view import studio_html, studio_text

_STATIC = Path(__file__).resolve().parents[2] / "static"


class Studio(anywidget.AnyWidget):
    """The interactive studio for one model. `studio.plan` is its state as a `jp.Plan`."""
    _esm = _STATIC / "studio.js"

    model_info = t.Dict().tag(sync=True)
    """The model: variable name, class, task type, total parameters."""
    groups: t.List[Any] = t.List().tag(sync=True)
    """The ModelMap's groups, one compact record each (see `_studio_state.group_record`)."""
    method_choices: t.List[Any] = t.List().tag(sync=True)
    """Every method peft offers, with what it adapts and whether ranks go per group."""
    method = t.Unicode("lora").tag(sync=True)
    """The current method."""
    option_fields: t.List[Any] = t.List().tag(sync=True)
    """The current method's options form, from peft's config dataclass (`Option.to_json`)."""
    options = t.Dict().tag(sync=True)
    """Options the user set; unset ones keep peft's defaults."""
    defaults = t.Dict().tag(sync=True)
    """The rank and alpha a group gets when its own are unset."""
    picked = t.Dict().tag(sync=True)
    """Group role -> ticked member indices (into the group's layers)."""
    ranks = t.Dict().tag(sync=True)
    """Group role -> rank (peft's rank_pattern)."""
    alphas = t.Dict().tag(sync=True)
    """Group role -> alpha (peft's alpha_pattern)."""
    targetable = t.Dict().tag(sync=True)
    """Group role -> whether the method can adapt it (false greys the row out)."""
    field_errors = t.Dict().tag(sync=True)
    """Inline messages by field: an option name, `ranks.<role>` or `alphas.<role>`."""
    issues: t.List[Any] = t.List().tag(sync=True)
    """Why the current settings make no valid plan ({key, message, choices}); Apply is off."""
    warnings: t.List[Any] = t.List().tag(sync=True)
    """Things to know about the selection (modules outside the language model...)."""
    numbers = t.Dict().tag(sync=True)
    """Trainable / total / percent / added bytes and per-group counts; {} when unknown."""
    chart = t.Dict().tag(sync=True)
    """Frozen and trainable parameters per group, for the chart (`param_chart.from_count`)."""
    cell = t.Unicode("").tag(sync=True)
    """The equivalent `%%peft` cell ("" while the settings make no valid plan)."""
    memory = t.Dict().tag(sync=True)
    """The memory panel (`_memory_panel.panel`): `state` ready | pending | error | off, and
    `pending` while a newer estimate is computed (the last numbers stay shown)."""
    memory_inputs = t.Dict().tag(sync=True)
    """The memory panel's inputs: batch_size, seq_len, gradient_checkpointing (None: the
    plan's train block, else memory's defaults), gpu, custom_gib, what_fits."""
    gpu_choices: t.List[Any] = t.List().tag(sync=True)
    """The GPU picker's entries, {value, text}."""
    summary = t.Dict().tag(sync=True)
    """peft's summary after Apply (summary.py), as JSON."""
    status = t.Unicode("").tag(sync=True)
    """"", "applying", "applied" or "failed"."""
    timing = t.Dict().tag(sync=True)
    """Milliseconds the kernel spent on the last command (shown small; used by the benchmark)."""
    def __init__(
        self,
        model: Any,
        plan: Any = None,
        *,
        name: str | None = None,
        user_ns: dict[str, Any] | None = None,
        bind_as: str = "peft_model",
        dataset: Any = None,
        tokenizer: Any = None,
        **kwargs: Any,
    ) -> None:
        if dataset is not None and tokenizer is None:
            raise PlanError("dataset= needs tokenizer=: the memory panel tokenizes the rows as the trainer will",
                            key="tokenizer")
        super().__init__(**kwargs)
        self._sync = threading.RLock()  # trait updates come from the kernel's thread and the estimator's
        self._estimator = Latest()
        self._viewer = Latest(delay=0.4, max_delay=2.0, name="jupyter_peft studio view")
        self._display_id: str | None = None
        self._shown = ""  # the static HTML the output carries now
        self._often = False  # the page has the jupyter-peft extension: update the output after each change
        session().studios.add(self)
        session().after_each_cell("studios", _recheck_studios)
        self.model = model
        self.peft_model: Any = None
        """The PeftModel the last Apply made."""
        self._user_ns, self._bind_as = user_ns, bind_as
        self._data = (dataset, tokenizer)  # the memory panel's data (else the plan's train block names it)
        self._map = inspect(model)
        self._counter = ParamCounter(self._map)
        self._draft = Draft(self._map)
        self._facts, self._facts_error = _read_model(model)
        with self._batch():
            self.memory_inputs = memory_panel.default_inputs()
            self.gpu_choices = memory_panel.gpu_choices()
            self.model_info = state.model_info(self._map, name or _name_of(model, user_ns) or "model")
            self.groups = [state.group_record(g) for g in self._map.groups]
            self.method_choices = state.method_records()
            plan = plan if plan is not None else _applied_plan(model)
            if plan is not None:
                self.plan = plan
            else:
                self._draft.preset("attention")
                self._on_method()
                self._refresh()
        self.on_msg(self._on_msg)

    # ---- the plan ------------------------------------------------------------------------------

    @property
    def plan(self) -> Any:
        """The studio's settings as a `jp.Plan`; PlanError while they make none."""
        return self._draft.plan()

    @plan.setter
    def plan(self, plan: Any) -> None:
        self._draft = Draft.from_plan(self._map, as_plan(plan))
        with self._batch():
            self._on_method()
            self._refresh()

    # ---- commands from the page ----------------------------------------------------------------

    def _on_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if plotly_asset.answer(self, content):  # the page's first chart: plotly itself
            return
        kind = content.get("kind")
        handler = getattr(self, f"_cmd_{kind}", None) if isinstance(kind, str) else None
        if handler is None:
            return
        start = time.perf_counter()
        with self._batch():
            self.recheck()
            handler(content)
            self.timing = {
                "kind": kind,
                "ms": round(1000 * (time.perf_counter() - start), 1),
                "seq": content.get("seq"),
            }
        self._view_changed()

    def _cmd_pick(self, msg: dict[str, Any]) -> None:
        self._edit("selection", self._draft.pick, msg.get("role"), msg.get("members"), bool(msg.get("on", True)))

    def _cmd_preset(self, msg: dict[str, Any]) -> None:
        self._edit("preset", self._draft.preset, msg.get("name"))

    def _cmd_method(self, msg: dict[str, Any]) -> None:
        if self._edit("method", self._draft.set_method, msg.get("name"), refresh=False):
            self._on_method()
            self._refresh()

    def _cmd_option(self, msg: dict[str, Any]) -> None:
        name = str(msg.get("name"))
        self._edit(name, self._draft.set_option, name, _typed(msg.get("value"), msg.get("widget")))
        self.options = dict(self._draft.options)
        self.defaults = _defaults(self._draft)

    def _cmd_rank(self, msg: dict[str, Any]) -> None:
        self._edit(f"ranks.{msg.get('role')}", self._draft.set_rank, msg.get("role"), msg.get("value"))

    def _cmd_alpha(self, msg: dict[str, Any]) -> None:
        self._edit(f"alphas.{msg.get('role')}", self._draft.set_alpha, msg.get("role"), msg.get("value"))

    def _cmd_apply(self, _msg: dict[str, Any]) -> None:
        self.apply()

    def _cmd_view(self, msg: dict[str, Any]) -> None:
        """A view was drawn; `extension`: its page has the jupyter-peft extension (see the module docstring)."""
        self._often = self._often or bool(msg.get("extension"))

    def _cmd_memory(self, msg: dict[str, Any]) -> None:
        changed = [k for k in msg if k not in ("kind", "seq")]
        field = f"memory.{changed[0]}" if len(changed) == 1 else "memory"
        if self._edit(field, self._set_memory_inputs, msg, refresh=False):
            self._estimate(self._draft_plan())

    def _edit(self, field: str, action: Any, *args: Any, refresh: bool = True) -> bool:
        """Run one edit of the draft; a PlanError becomes an inline message on `field` (the
        draft is unchanged), then the derived traits follow."""
        errors = {k: v for k, v in self.field_errors.items() if k != field}
        try:
            action(*args)
        except PlanError as err:
            errors[field] = err.message
            self.field_errors = errors
            return False
        self.field_errors = errors
        if refresh:
            self._refresh()
        return True

    # ---- apply ---------------------------------------------------------------------------------

    def apply(self) -> Any:
        """Apply the studio's plan to the model (`jp.apply`); returns the PeftModel, or None
        when the settings make no valid plan (the messages say why; nothing changed)."""
        self.status = "applying"
        try:
            peft_model = apply(self._draft.plan(), self.model)
        except PlanError as err:
            self.issues = [_issue(err)]
            self.status = "failed"
            return None
        self.peft_model = peft_model
        plan_now = applied_plan(peft_model)
        self._applied = (peft_model, peft_model.active_adapter, plan_now[1] if plan_now else None)
        if self._user_ns is not None:
            self._user_ns[self._bind_as] = peft_model
        self._map = inspect(peft_model)
        self._counter.rebind(self._map)
        self._draft.model_map = self._map
        with self._batch():
            self.groups = [state.group_record(g) for g in self._map.groups]
            self.summary = {
                **state.summary_record(summarize(peft_model)),
                "bound_to": self._bound_name(),
                "applied_at": time.strftime("%H:%M:%S"),
                "stale": "",
            }
            self.status = "applied"
            self._refresh()
        return peft_model

    def recheck(self) -> None:
        """Say so when what the studio applied is no longer what the model carries (a later
        cell replaced the adapter, switched it, or merged it): the summary then tells when it
        was true instead of claiming it still is. Run after every cell and every command."""
        applied = getattr(self, "_applied", None)
        if applied is None or not self.summary:
            return
        peft_model, adapter, plan = applied
        now = find_peft_model(self.model)
        if now is not peft_model or adapter not in getattr(now, "peft_config", {}):
            stale = "the model no longer carries this adapter (a later cell replaced or merged it)"
        elif session().plans_of(now).get(adapter) is not plan:
            stale = f"adapter {adapter!r} was replaced by a later plan"
        elif now.active_adapter != adapter:
            stale = f"the active adapter is now {now.active_adapter!r}"
        else:
            stale = ""
        if stale != self.summary.get("stale", ""):
            self.summary = {**self.summary, "stale": stale}
            self._view_changed()

    def _bound_name(self) -> str | None:
        return self._bind_as if self._user_ns is not None else None

    # ---- derived state -------------------------------------------------------------------------

    def _on_method(self) -> None:
        spec = self._draft.spec
        self.method = spec.name
        self.option_fields = state.option_fields(spec)
        self.options = dict(self._draft.options)
        self.targetable = state.targetable(self._map, spec)
        self.defaults = _defaults(self._draft)

    def _refresh(self) -> None:
        """Rebuild everything that follows from the draft: ticks, plan text, counts, chart."""
        draft = self._draft
        self.picked = {role: sorted(members) for role, members in draft.picked.items()}
        self.ranks, self.alphas = dict(draft.ranks), dict(draft.alphas)
        plan, count, adapted = None, None, None
        try:
            plan = draft.plan()
            checked = check(plan, self.model, model_map=self._map)
            count = self._counter.count(checked.config, checked.targets)
            adapted = checked.targets
        except PlanError as err:
            self.issues, self.cell = [_issue(err)], ""
        except Exception as err:  # peft refusing a config it accepted: say so, keep the page alive
            self.issues, self.cell = (
                [{"key": None, "message": f"peft: {type(err).__name__}: {err}", "choices": []}],
                "",
            )
        else:
            self.issues, self.cell = [], _cell_text(self.model_info.get("name", "model"), plan, self._bind_as)
        empty = not draft.paths() and not draft.parameter_keys() and draft.spec.targets_modules
        shown = count or (_zero(self._counter) if empty else None)
        self.numbers = state.numbers(shown, self._counter.base_total) if shown else {}
        self.chart = from_count(self._map, count)
        self.warnings = state.warnings(draft, adapted)
        self._estimate(plan if count is not None else None)

    # ---- the memory panel ----------------------------------------------------------------------

    def _set_memory_inputs(self, msg: dict[str, Any]) -> None:
        self.memory_inputs = memory_panel.updated_inputs(self.memory_inputs, msg)

    def _draft_plan(self) -> Any:
        """The draft's plan when it makes a valid one (the cell is written only then)."""
        return self._draft.plan() if self.cell else None

    def _estimate(self, plan: Any) -> None:
        """Ask for the estimate of `plan` with the panel's inputs, off the click path."""
        if self._facts is None:
            self._estimator.cancel()
            self.memory = memory_panel.message("error", f"no memory estimate: {self._facts_error}")
            return
        if plan is None:
            self._estimator.cancel()  # an estimate still running is for an older plan
            self.memory = memory_panel.message("off", "no valid plan to estimate")
            return
        facts, inputs, data = self._facts, dict(self.memory_inputs), self._data_source(plan)

        def job(seq: int) -> None:  # on the estimator's thread: the config copy, never the model
            memory_panel.compute(
                facts, plan, inputs, lambda panel: self._publish(seq, panel), lambda: self._estimator.is_current(seq),
                data,
            )

        self.memory = memory_panel.pending(self.memory)
        self._estimator.request(job)

    def _data_source(self, plan: Any) -> Any:
        """The data the estimate is for: what the studio was given, else what the plan's train
        block names in the notebook (data/sources.py), else none (the panel's batch and length)."""
        from ...data.sources import DataSource, from_train_block

        dataset, tokenizer = self._data
        if dataset is not None:
            return DataSource(dataset, tokenizer)
        return from_train_block(plan, self._user_ns)

    def _publish(self, seq: int, panel: dict[str, Any]) -> None:
        with self._sync:
            if self._estimator.is_current(seq):
                self.memory = panel
        self._view_changed()

    def wait_estimate(self, timeout: float | None = 60) -> bool:
        """Block until the memory panel shows the estimate for the current settings."""
        return self._estimator.wait(timeout)

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        """Trait changes sent as one update, never interleaved with the estimator's."""
        with self._sync, self.hold_sync():
            yield

    # ---- the output: the widget and its static view ------------------------------------------

    def _ipython_display_(self) -> None:
        from IPython.display import display

        self._display_id = self._display_id or uuid.uuid4().hex
        display(self._repr_mimebundle_()[0], raw=True, display_id=self._display_id)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The widget's view, and the studio as static HTML and text beside it."""
        with self._sync:
            state_now = {name: getattr(self, name) for name in self.trait_names(sync=True) if not name.startswith("_")}
        self._shown = studio_html(state_now)
        data: dict[str, Any] = {"text/plain": studio_text(state_now), "text/html": self._shown}
        widget = super()._repr_mimebundle_(**kwargs) if self.comm is not None else None
        return ({**widget[0], **data} if widget else data), {}

    def __repr__(self) -> str:
        return f"<Studio: {self.method} on {self.model_info.get('cls')} {self.model_info.get('name')}>"

    def _view_changed(self) -> None:
        """The studio changed: bring the output's static view up to date, soon (see the module docstring)."""
        if self._display_id is not None and self._often:
            self._viewer.request(lambda seq: self._update_display(seq))

    def _update_display(self, seq: int | None = None) -> None:
        if self._display_id is None or (seq is not None and not self._viewer.is_current(seq)):
            return
        before = self._shown
        bundle, _ = self._repr_mimebundle_()
        if bundle["text/html"] != before:
            from IPython.display import update_display

            update_display(bundle, raw=True, display_id=self._display_id)

    def after_cell(self) -> None:
        """After each cell: what it applied still holds? and the output's static view up to date."""
        self.recheck()
        if self._display_id is not None and not self._often:
            self._update_display()

    def close(self) -> None:
        for worker in (getattr(self, "_estimator", None), getattr(self, "_viewer", None)):
            if worker is not None:  # None: refused in __init__, before they were made
                worker.close()
        session().studios.discard(self)
        super().close()


def _read_model(model: Any) -> tuple[Any, str | None]:
    """What the estimate needs of `model`, read now on the kernel's thread: (facts, None), or
    (None, why) for a model memory cannot estimate (no transformers config)."""
    try:
        return read_model(model), None
    except PlanError:  # its only refusal: no config to build the model from
        return None, f"{type(model).__name__} is not a transformers model (the estimate reads its config)"


def _recheck_studios(result: Any = None) -> None:
    """After each cell: every open studio says whether what it applied still holds."""
    for studio in list(session().studios):
        try:
            studio.after_cell()
        except Exception:  # noqa: BLE001 - a studio must never break the user's cell
            pass


def _applied_plan(model: Any) -> Any:
    """The plan `jp.apply` (or %%peft) last put on this model, so the studio opens on it."""
    found = applied_plan(model)
    return found[1] if found is not None else None


def _issue(err: PlanError) -> dict[str, Any]:
    return {"key": err.key, "message": str(err), "choices": [str(c) for c in err.choices[:8]]}


def _defaults(draft: Any) -> dict[str, Any]:
    spec = draft.spec
    out: dict[str, Any] = {}
    for key, name in (("rank", spec.rank_option), ("alpha", spec.alpha_option)):
        if name is not None:
            out[key] = draft.options.get(name, spec.options[name].default)
    return out


def _typed(value: Any, widget: Any) -> Any:
    """A form value as the option wants it: "yaml" fields arrive as text and are parsed."""
    if widget == "yaml" and isinstance(value, str):
        import yaml

        if not value.strip():
            return None
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise PlanError(f"cannot read {value!r}: {err}") from None
    if widget == "text" and value == "":
        return None
    return value


def _cell_text(model_name: str, plan: Any, bind_as: str) -> str:
    head = f"%%peft {model_name}" + (f" --as {bind_as}" if bind_as != "peft_model" else "")
    return f"{head}\n{plan.to_yaml().rstrip()}\n"


def _zero(counter: Any) -> Any:
    return Count(trainable=0, total=counter.base_total, added_bytes=0)


def _name_of(model: Any, user_ns: dict[str, Any] | None) -> str | None:
    """The notebook variable that holds `model`, so the written cell names it."""
    if user_ns is None:
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:  # pragma: no cover - IPython is a dependency
            shell = None
        user_ns = shell.user_ns if shell is not None else {}
    names = [k for k, v in user_ns.items() if v is model and not k.startswith("_")]
    return names[0] if names else None


def studio(model: Any, plan: Any = None, **kwargs: Any) -> Studio:
    """The studio for `model` (any torch module; a PeftModel shows its base). `plan`: a Plan,
    YAML text or mapping to start from; else the plan last applied to the model, else its
    attention layers at peft's default rank."""
    return Studio(model, plan, **kwargs)
