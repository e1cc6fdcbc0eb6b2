"""`%peft` and `%%peft`: thin text front ends over the rooms (plan, model, training, memory, exports).

A user's mistake never shows a library traceback: it becomes a `UsageError` (IPython prints
just the message) naming the line, the key, the bad value and what would be valid, and
nothing in the kernel has changed.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Bool, Unicode

from .._errors import PlanError
from .._namespace import lookup_model

_HELP = """\
%peft MODEL                      the studio: pick modules, ranks and method on MODEL
%peft status                     what is applied, and runs in progress
%peft stop                       stop the active training run (its adapter is saved)
%peft free                       give back the memory finished runs hold (run.close() for each)
%peft estimate MODEL [options]   memory a training step will take (see %peft estimate --help)
%peft export PATH [options]      the plan as a script, TRL config or accelerate config
%peft data DATASET [--tokenizer T]  a look at the data as the trainer will see it
%peft adapters [MODEL]           the adapters of a PeftModel: activate, compare, merge, load
%peft runs [--runs-dir DIR]      every run in the runs folder, to look back on and compare
%peft launch [options]           train on many processes with accelerate (see %peft launch --help)

%%peft MODEL [--as NAME]         apply the YAML plan in the cell to MODEL, bind NAME (peft_model)
       [--replace]               NAME: a Python name that is no keyword, builtin or IPython name
                                 (In, Out, _, get_ipython...); if it holds something other than a
                                 model or a run (a tokenizer, data), add --replace to overwrite it
    method: lora
    r: 16
    target_modules: [q_proj, v_proj]
    train: {trainer: sft, dataset: ds, max_steps: 200}
"""


def cell_error(message: str, line: int | None = None, key: str | None = None) -> UsageError:
    """A bad %%peft cell or %peft line, as IPython's UsageError (printed without a traceback;
    IPython checks the exact class, so no subclass) carrying `.line` and `.key`."""
    err = UsageError(message)
    err.line, err.key = line, key  # type: ignore[attr-defined]
    return err


def _user_error(err: PlanError, cell_offset: int = 0) -> UsageError:
    """A PlanError as a UsageError. `cell_offset` turns YAML lines into the cell's lines (the
    `%%peft` line is line 1 of the cell as Jupyter numbers it)."""
    line = err.line + cell_offset if err.line is not None else None
    located = PlanError(err.message, key=err.key, line=line, value=err.value, choices=err.choices)
    return cell_error(str(located), line=line, key=err.key)


@magics_class
class PeftMagics(Magics):
    """The `%peft` line magic and `%%peft` cell magic. Settings: `%config PeftMagics.<name> = ...`."""

    runs_dir = Unicode("peft_runs", help="Folder where training runs save adapters and histories.").tag(config=True)
    show_summary = Bool(True, help="Display the adapter summary after %%peft applies a plan.").tag(config=True)

    # ---- %%peft ---------------------------------------------------------------------------

    @line_cell_magic
    def peft(self, line: str, cell: str | None = None) -> Any:
        """%%peft MODEL [--as NAME]: apply the YAML plan in the cell. %peft ...: see `%peft help`."""
        if cell is None:
            return self._line(line)
        return self._cell(line, cell)

    def _cell(self, line: str, cell: str) -> Any:
        from ..plan.plan import Plan

        ns = self.shell.user_ns
        try:
            model_name, bind_as = parse_target(line, "%%peft MODEL [--as NAME]", ns, self._hidden())
        except PlanError as err:
            raise _user_error(err) from None
        try:
            plan = Plan.from_yaml(cell)
            if plan.train is not None:
                binds = "peft_sweep" if "sweep" in plan.train else "peft_run"  # a sweep binds peft_sweep (issue 18)
                check_binding(ns, binds, "--replace" in line.split(), what="the sweep" if "sweep" in plan.train
                              else "the run")
            bound, run = self._apply_cell(plan, model_name, ns)
        except PlanError as err:
            raise _user_error(err, cell_offset=1) from None
        # everything succeeded: only now does the notebook change
        peft_model = bound.pop("peft_model")
        ns.update(bound)
        ns[bind_as] = peft_model
        from IPython.display import display

        if self.show_summary:
            from ..model.summary import summarize

            display(summarize(peft_model))
        if run is not None and type(run).__name__ == "Sweep":  # train: {sweep: ...} (sweeps/)
            ns["peft_sweep"] = run
            display(run)
        elif run is not None:
            ns["peft_run"] = run
            display(run.dashboard)
        return None

    def _apply_cell(self, plan: Any, model_name: str | None, ns: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Check, load the base, apply and start the run, changing nothing in the notebook: the
        names to bind (`peft_model`, and `model`/`tokenizer` a `base:` loaded) and the run. If
        anything after the apply fails, the model is put back as it was."""
        from collections import ChainMap

        from ..model.adapt import apply, check_idle
        from ..training.api import undo_on_error

        bound: dict[str, Any] = {}
        if plan.base is None:
            if model_name is None:
                raise PlanError("name the model to adapt: `%%peft model` (or give `base:` in the plan)")
            model = lookup_model(ns, model_name)
            check_idle(model)
        if plan.train is not None:
            from .train import check_from_plan

            check_from_plan(plan, ns, runs_dir=self.runs_dir)  # data, trainer options, rewards, the folder
        if plan.base is not None:
            from ..quant.loading import load_base

            model, tokenizer = load_base(plan)
            bound["model"] = model
            if tokenizer is not None:  # a weights-only folder leaves the notebook's tokenizer alone
                bound["tokenizer"] = tokenizer
        run = None
        with undo_on_error(model):
            if plan.train is None:
                peft_model = apply(plan, model)
            else:
                from ..training.trainer import apply_for_run
                from .train import train_from_plan

                peft_model = apply_for_run(plan, model)
                run = train_from_plan(peft_model, plan, ChainMap(bound, ns), runs_dir=self.runs_dir)
        return {**bound, "peft_model": peft_model}, run

    def _hidden(self) -> Any:
        """The names IPython keeps in the namespace for itself (In, Out, get_ipython, _ih...)."""
        return getattr(self.shell, "user_ns_hidden", {})

    # ---- %peft ----------------------------------------------------------------------------

    def _line(self, line: str) -> Any:
        words = shlex.split(line)
        if not words or words[0] in ("help", "-h", "--help"):
            print(_HELP)
            return None
        command, rest = words[0], words[1:]
        try:
            if command == "status":
                return self._status()
            if command == "stop":
                from .train import stop_active

                stop_active()  # it prints what stopped and where the adapter is; no list echoed
                return None
            if command == "free":
                from .train import free_runs

                free_runs()
                return None
            if command == "estimate":
                from .estimate import estimate_magic

                return estimate_magic(rest, self.shell.user_ns)
            if command == "export":
                from .export import export_magic

                return export_magic(rest, self.shell.user_ns)
            if command == "data":
                from .data import data_magic

                return data_magic(rest, self.shell.user_ns)
            if command == "adapters":
                from .adapters import adapters_magic  # issue 17

                return adapters_magic(rest, self.shell.user_ns)
            if command == "runs":
                from .runs import runs_magic  # issue 18

                return runs_magic(rest, self.shell.user_ns, runs_dir=self.runs_dir)
            if command == "launch":
                from .launch import launch_magic  # issue 20

                return launch_magic(rest, self.shell.user_ns, runs_dir=self.runs_dir)
            if len(words) > 1 and not words[1].startswith("-"):
                raise PlanError(f"unknown command {command!r}",
                                choices=["status", "stop", "free", "estimate", "export", "data", "adapters", "runs",
                                         "launch"])
            return self._studio(line)
        except PlanError as err:
            raise _user_error(err) from None

    def _studio(self, line: str) -> Any:
        """`%peft MODEL [--as NAME]`: the studio for the variable MODEL; Apply binds NAME
        (peft_model), as `%%peft` does. Assign it to keep a handle: `s = %peft model`."""
        from ..ui.studio.widget import Studio

        name, bind_as = parse_target(line, "%peft MODEL [--as NAME]", self.shell.user_ns, self._hidden())
        assert name is not None  # the line has a first word
        model = lookup_model(self.shell.user_ns, name)
        return Studio(model, name=name, user_ns=self.shell.user_ns, bind_as=bind_as)

    def _status(self) -> Any:
        from IPython.display import display

        from ..model.summary import summarize

        peft_models = _peft_models(self.shell.user_ns)
        if not peft_models:
            print("No adapter applied yet: write a %%peft cell or open the studio with %peft MODEL.")
        for name, pm in peft_models.items():
            print(f"{name}:")
            display(summarize(pm))
        from .train import runs_status

        runs_status()
        return None


def parse_target(line: str, usage: str, ns: Mapping[str, Any] | None = None,
                 hidden: Iterable[str] = ()) -> tuple[str | None, str]:
    """(MODEL, NAME) from `MODEL [--as NAME] [--replace]`, the line of `%%peft` and of `%peft MODEL`;
    NAME defaults to `peft_model`. NAME must be a name the notebook can lose to the PeftModel
    (`check_name`; with the namespace `ns`: a variable that holds something other than a model
    is replaced only with --replace). A PlanError says what is wrong and what the line should be."""
    try:
        words = shlex.split(line)
    except ValueError as err:
        raise PlanError(f"cannot read the magic line {line!r}: {err}") from None
    model, bind_as, replace = None, "peft_model", False
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("--as", "-a"):
            if i + 1 >= len(words):
                raise PlanError(f"--as needs a variable name: {usage.replace('NAME', 'tuned')}", choices=["--as NAME"])
            bind_as = words[i + 1]
            i += 2
            continue
        if word.startswith("--as="):
            bind_as = word.split("=", 1)[1]
        elif word == "--replace":
            replace = True
        elif word.startswith("-"):
            raise PlanError(f"unknown option {word!r} (valid: --as NAME, --replace)",
                            choices=["--as NAME", "--replace"])
        elif model is None:
            model = word
        else:
            raise PlanError(f"unexpected {word!r}: the line is `{usage}`", choices=["--as NAME"])
        i += 1
    check_name(bind_as, hidden)
    if ns is not None:
        check_binding(ns, bind_as, replace)
    if model is not None and not all(part.isidentifier() for part in model.split(".")):
        raise PlanError(f"{model!r} is not a variable name: {usage} names a variable holding the model", value=model)
    return model, bind_as


# IPython's own names in every notebook (its output history is `_`, `__`, `_1`, `_i1`, ...)
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "display"}
_IPYTHON_HISTORY = re.compile(r"^(_+|_i+|_i?\d+|_[iod]h|_exit_code)$")


def check_name(name: str, hidden: Iterable[str] = ()) -> None:
    """PlanError unless `name` can be bound to a PeftModel without breaking the session: a Python
    identifier that is not a keyword, a builtin, a dunder or one of IPython's own names."""
    import builtins
    import keyword

    why = ""
    if not name.isidentifier():
        why = "is not a valid Python name"
    elif keyword.iskeyword(name):
        why = "is a Python keyword"
    elif name in dir(builtins):
        why = "is a Python builtin: binding it would hide the builtin in every later cell"
    elif (name.startswith("__") and name.endswith("__")) or name in _IPYTHON_NAMES or _IPYTHON_HISTORY.match(name) \
            or name in set(hidden):
        why = "is one of IPython's own names: binding it would break later cells and magics"
    if why:
        raise PlanError(f"--as {name!r} {why}; pick another name", value=name,
                        choices=["--as tuned", "--as peft_model"])


def check_binding(ns: Mapping[str, Any], name: str, replace: bool, what: str = "the PeftModel") -> None:
    """PlanError when binding `name` would overwrite a variable that holds something other than
    a model or a run (a tokenizer, data, a function), unless the line says --replace."""
    if replace or name not in ns or ns[name] is None:  # None: a name the notebook let go of
        return
    value = ns[name]
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.nn.Module):
        return  # a model (the base, or a PeftModel bound before) is what `--as` replaces
    if any(k.__name__ in ("Run", "Sweep") and k.__module__.startswith("jupyter_peft.") for k in type(value).__mro__):
        return  # a run (a launched one too) or a sweep a cell bound before
    raise PlanError(
        f"`{name}` already holds a {type(value).__name__}; this cell would bind {what} to it. Pick another "
        "name (--as NAME), or add --replace to overwrite it",
        value=name,
        choices=["--as tuned", "--replace"],
    )


def _peft_models(ns: dict[str, Any]) -> dict[str, Any]:
    import sys

    if "peft" not in sys.modules:  # nothing can be applied without peft imported
        return {}
    from peft import PeftModel

    return {k: v for k, v in ns.items() if not k.startswith("_") and isinstance(v, PeftModel)}
