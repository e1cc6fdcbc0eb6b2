"""`%peft` and `%%peft`: thin text front ends over the rooms (plan, model, training, memory, exports).

A user's mistake never shows a library traceback: it becomes a `UsageError` (IPython prints
just the message) naming the line, the key, the bad value and what would be valid, and
nothing in the kernel has changed.
"""

from __future__ import annotations

import shlex
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
%peft estimate MODEL [options]   memory a training step will take (see %peft estimate --help)
%peft export PATH [options]      the plan as a script, TRL config or accelerate config

%%peft MODEL [--as NAME]         apply the YAML plan in the cell to MODEL, bind NAME (peft_model)
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

        try:
            model_name, bind_as = parse_target(line, "%%peft MODEL [--as NAME]")
        except PlanError as err:
            raise _user_error(err) from None
        try:
            plan = Plan.from_yaml(cell)
        except PlanError as err:
            raise _user_error(err, cell_offset=1) from None
        ns = self.shell.user_ns
        try:
            if plan.train is not None:
                from .train import check_from_plan

                check_from_plan(plan, ns)  # data, trainer options, rewards: before the model changes
            if plan.base is not None:
                from ..quant.loading import load_base

                model, tokenizer = load_base(plan)
                ns["model"] = model
                if tokenizer is not None:  # a weights-only folder leaves the notebook's tokenizer alone
                    ns["tokenizer"] = tokenizer
            else:
                if model_name is None:
                    raise PlanError("name the model to adapt: `%%peft model` (or give `base:` in the plan)")
                model = lookup_model(ns, model_name)
            from ..model.adapt import apply

            peft_model = apply(plan, model)
        except PlanError as err:
            raise _user_error(err, cell_offset=1) from None
        ns[bind_as] = peft_model
        if self.show_summary:
            from IPython.display import display

            from ..model.summary import summarize

            display(summarize(peft_model))
        if plan.train is not None:
            from .train import train_from_plan

            try:
                ns["peft_run"] = train_from_plan(peft_model, plan, ns, runs_dir=self.runs_dir)
            except PlanError as err:
                raise _user_error(err, cell_offset=1) from None
        return None

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

                return stop_active()
            if command == "estimate":
                from .estimate import estimate_magic

                return estimate_magic(rest, self.shell.user_ns)
            if command == "export":
                from .export import export_magic

                return export_magic(rest, self.shell.user_ns)
            if len(words) > 1 and not words[1].startswith("-"):
                raise PlanError(f"unknown command {command!r}", choices=["status", "stop", "estimate", "export"])
            return self._studio(line)
        except PlanError as err:
            raise _user_error(err) from None

    def _studio(self, line: str) -> Any:
        """`%peft MODEL [--as NAME]`: the studio for the variable MODEL; Apply binds NAME
        (peft_model), as `%%peft` does. Assign it to keep a handle: `s = %peft model`."""
        from ..ui.studio.widget import Studio

        name, bind_as = parse_target(line, "%peft MODEL [--as NAME]")
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


def parse_target(line: str, usage: str) -> tuple[str | None, str]:
    """(MODEL, NAME) from `MODEL [--as NAME]`, the line of `%%peft` and of `%peft MODEL`;
    NAME defaults to `peft_model`. A PlanError says what is wrong and what the line should be."""
    try:
        words = shlex.split(line)
    except ValueError as err:
        raise PlanError(f"cannot read the magic line {line!r}: {err}") from None
    model, bind_as = None, "peft_model"
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
        elif word.startswith("-"):
            raise PlanError(f"unknown option {word!r} (valid: --as NAME)", choices=["--as NAME"])
        elif model is None:
            model = word
        else:
            raise PlanError(f"unexpected {word!r}: the line is `{usage}`", choices=["--as NAME"])
        i += 1
    if not bind_as.isidentifier():
        raise PlanError(f"--as {bind_as!r} is not a valid Python name", value=bind_as)
    if model is not None and not all(part.isidentifier() for part in model.split(".")):
        raise PlanError(f"{model!r} is not a variable name: {usage} names a variable holding the model", value=model)
    return model, bind_as


def _peft_models(ns: dict[str, Any]) -> dict[str, Any]:
    import sys

    if "peft" not in sys.modules:  # nothing can be applied without peft imported
        return {}
    from peft import PeftModel

    return {k: v for k, v in ns.items() if not k.startswith("_") and isinstance(v, PeftModel)}
