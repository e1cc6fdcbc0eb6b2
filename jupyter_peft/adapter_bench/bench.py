"""`Adapters`: the adapters one PeftModel carries, as a bench to load, switch, compare and merge.

Every call checks first and changes nothing on a mistake (PlanError naming the key). The base
model is never reloaded: `load` adds an adapter beside the others with peft's `load_adapter`,
`swap` puts another checkpoint's weights into an adapter loaded from a run, and hot-swapping
(`activate(name, hotswap=True)`) copies an adapter's weights into the active adapter's own
tensors with peft's `hotswap_adapter_from_state_dict`, so a compiled model stays compiled.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .._errors import PlanError, unknown
from .._format import format_bytes
from ..model.adapt import find_peft_model
from ..model.summary import method_name
from ..session import session
from ..training import folders
from . import combine, compare, sources
from .sources import Source

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class Adapters:
    """The adapter bench over `model` (see the package docstring). Display it for the widget."""

    def __init__(self, model: Any, tokenizer: Any = None) -> None:
        peft_model = find_peft_model(model)
        if peft_model is None or not hasattr(peft_model, "peft_config"):
            raise PlanError(f"the adapter bench needs a model with adapters (a PeftModel: what jp.apply or %%peft "
                            f"returns), got {type(model).__name__}", key="model")
        self.model = peft_model
        self.tokenizer = tokenizer if tokenizer is not None else _tokenizer_of(peft_model)
        self.sources: dict[str, Source] = {n: Source("trained", note=_trained_note(peft_model, n))
                                           for n in peft_model.peft_config}
        self._slot: tuple[str, str] | None = None  # (active adapter, the adapter whose weights it holds now)
        self._stash: dict[str, Any] = {}  # the active adapter's own weights while it holds another's
        self.last_compare: Any = None
        """The last table `compare` made (the widget shows it)."""
        self._listeners: list[Any] = []

    # ---- what is there -------------------------------------------------------------------

    @property
    def _disabled(self) -> bool:
        """Whether the adapter layers are switched off (read from the model: every bench of it agrees)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        layer = next((m for m in self.model.modules() if isinstance(m, BaseTunerLayer)), None)
        return bool(getattr(layer, "disable_adapters", False))

    @property
    def names(self) -> list[str]:
        return list(self.model.peft_config)

    @property
    def active(self) -> str | None:
        """The adapter in use, or None when the adapters are disabled (the base alone)."""
        if self._disabled:
            return None
        if self._slot is not None:
            return self._slot[1]
        return self.model.active_adapter

    def rows(self) -> list[dict[str, Any]]:
        """A row per adapter: name, method, targets, ranks, params, bytes, source, active."""
        from peft import get_peft_model_state_dict

        tensors = dict(self.model.named_parameters(remove_duplicate=False))
        out = []
        for name in self.names:
            config = self.model.peft_config[name]
            state = get_peft_model_state_dict(self.model, tensors, adapter_name=name)
            params = sum(t.numel() for t in state.values())
            size = sum(t.numel() * t.element_size() for t in state.values())
            src = self.sources.get(name) or Source("trained")
            out.append({"name": name, "method": method_name(config), "targets": _targets(config),
                        "ranks": self._ranks(name), "params": params, "bytes": size,
                        "bytes_text": format_bytes(size), "source": src.text, "source_kind": src.kind,
                        "run_folder": str(src.run_folder or ""), "step": src.step,
                        "steps": self.steps(name), "active": name == self.active})
        return out

    @property
    def df(self) -> Any:
        import pandas as pd

        cols = ["name", "method", "targets", "ranks", "params", "bytes", "source", "active"]
        return pd.DataFrame([{k: r[k] for k in cols} for r in self.rows()], columns=cols)

    def steps(self, name: str) -> list[int]:
        """The checkpoint steps of the run `name` was loaded from ([] for other adapters)."""
        src = self.sources.get(name)
        if src is None or src.run_folder is None:
            return []
        return [folders.checkpoint_step(c) for c in folders.checkpoints(src.run_folder)]

    # ---- changing what is there ----------------------------------------------------------

    def load(self, path_or_run: Any, name: str | None = None, step: int | None = None) -> str:
        """Add an adapter from a folder, a run folder or a Run (its checkpoint at `step`, default the
        newest), beside the others; the base is not reloaded. Returns its name."""
        _check_idle(self.model)
        path, source = sources.resolve(path_or_run, step)
        name = self._new_name(name, sources.default_name(source, self.names), key="name")
        sources.check_fits(self.model, path)
        self._settle()
        try:
            self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        except (ValueError, RuntimeError, KeyError, OSError) as err:
            if name in self.model.peft_config:
                self.model.delete_adapter(name)
            raise PlanError(f"peft could not load {str(path)!r}: {err}", key="path_or_run", value=str(path)) from None
        self.sources[name] = source
        self._changed()
        return name

    def swap(self, name: str, step: int) -> None:
        """Put the weights of the checkpoint at `step` of the run `name` came from into `name`: scrub a
        run's checkpoints without another adapter per step, and without reloading the base."""
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        _check_idle(self.model)
        self._known(name)
        src = self.sources[name]
        if src.run_folder is None:
            raise PlanError(f"{name!r} was not loaded from a run ({src.text}): swap is for run checkpoints",
                            key="name", value=name)
        path, found = sources.resolve(src.run_folder, step)
        config = sources.check_fits(self.model, path)
        if _shape_key(config) != _shape_key(self.model.peft_config[name]):
            raise PlanError(f"checkpoint {step} of {src.run_folder.name} is not the same adapter shape as {name!r}",
                            key="step", value=step)
        self._settle()
        state = load_peft_weights(str(path), device=str(next(self.model.parameters()).device))
        result: Any = set_peft_model_state_dict(self.model, state, adapter_name=name)
        unexpected = list(getattr(result, "unexpected_keys", None) or [])
        if unexpected:
            raise PlanError(f"checkpoint {step} has weights without a place: {unexpected[:3]}", key="step")
        self.sources[name] = found
        self._changed()

    def activate(self, name: str, hotswap: bool = False) -> None:
        """Use `name` from now on. hotswap=True copies its weights into the active adapter's tensors
        instead (peft's hotswap: a torch.compile'd model is not recompiled); LoRA of the same shape only."""
        _check_idle(self.model)
        self._known(name)
        if hotswap:
            self._hotswap(name)
        else:
            self._settle()
            self.model.set_adapter(name, inference_mode=True)
            self._enable()
        self._changed()

    def disable(self) -> None:
        """The base alone from now on (activate an adapter to use it again)."""
        _check_idle(self.model)
        tuner = self.model.base_model
        if not hasattr(tuner, "disable_adapter_layers"):
            raise PlanError(f"{method_name(self.model.active_peft_config)} adapters cannot be switched off in place; "
                            "use `with peft_model.disable_adapter():`", key="disable")
        tuner.disable_adapter_layers()
        self._changed()

    def rename(self, old: str, new: str) -> None:
        """Call `old` `new` (its weights, config and source move; the others are untouched)."""
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        _check_idle(self.model)
        self._known(old, key="old")
        new = self._new_name(new, None, key="new")
        self._settle()
        was_active, was_disabled = self.model.active_adapter == old, self._disabled
        config = self.model.peft_config[old]
        state = get_peft_model_state_dict(self.model, dict(self.model.named_parameters(remove_duplicate=False)),
                                          adapter_name=old)
        self.model.add_adapter(new, config)
        set_peft_model_state_dict(self.model, {k: v.clone() for k, v in state.items()}, adapter_name=new)
        if was_active:
            self.model.set_adapter(new, inference_mode=True)
        self.model.delete_adapter(old)
        if not was_active and self.model.active_adapter in self.names:
            self.model.set_adapter(self.model.active_adapter, inference_mode=True)
        _freeze(self.model, new)
        if was_disabled:
            self.model.base_model.disable_adapter_layers()
        self.sources[new] = self.sources.pop(old, Source("trained"))
        self._changed()

    def delete(self, name: str) -> None:
        """Remove `name` and its weights (the others stay; the base keeps at least one adapter)."""
        _check_idle(self.model)
        self._known(name)
        if len(self.names) == 1:
            raise PlanError(f"{name!r} is the model's only adapter: a PeftModel keeps one (disable() to use the base "
                            "alone)", key="name", value=name)
        self._settle()
        active = self.model.active_adapter
        self.model.delete_adapter(name)
        if active == name:
            self.model.set_adapter(self.names[0], inference_mode=True)
        self.sources.pop(name, None)
        self._changed()

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Every adapter in its own subfolder of `folder`, each loadable by `PeftModel.from_pretrained`."""
        root = Path(folder)
        folders.check_writable(root, key="folder")
        self._settle()
        root.mkdir(parents=True, exist_ok=True)
        saved = {}
        for name in self.names:
            with tempfile.TemporaryDirectory(dir=root) as tmp:
                self.model.save_pretrained(tmp, selected_adapters=[name])
                inner = Path(tmp) / name if name != "default" else Path(tmp)
                target = root / name
                if target.exists():
                    shutil.rmtree(target)
                target.mkdir()
                for file in inner.iterdir():
                    if file.is_file():
                        shutil.move(str(file), target / file.name)
            saved[name] = target
        return saved

    # ---- using them ----------------------------------------------------------------------

    def compare(self, prompts: Any, adapters: list[str] | None = None, max_new_tokens: int = 64) -> Any:
        """Greedy outputs of each adapter and of the base for each prompt: a DataFrame with a `prompt`
        column, one per adapter and `base`. One batched generate where peft can mix the adapters."""
        items = compare.check_prompts(prompts)
        names = self._selection(adapters)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise PlanError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}",
                            key="max_new_tokens", value=max_new_tokens)
        if self.tokenizer is None:
            raise PlanError("compare needs the model's tokenizer: jp.adapters(model, tokenizer=tok)", key="tokenizer")
        _check_idle(self.model)
        self._settle()
        columns = [*names, compare.BASE]
        why = compare.mixed_reason(self.model, names)
        how = compare.MIXED_NOTE if why is None else f"one generate per adapter ({why})"
        was_disabled = self._disabled
        self._enable()
        try:
            outputs = compare.generate_columns(self.model, self.tokenizer, items, columns, max_new_tokens,
                                               mixed=why is None)
        finally:
            if was_disabled:
                self.model.base_model.disable_adapter_layers()
        self.last_compare = compare.table(items, outputs, how)
        self._changed()
        return self.last_compare

    def merge_preview(self, weights: dict[str, float], how: str = "linear", density: float | None = None,
                      name: str = "merged", svd_rank: int | None = None) -> dict[str, Any]:
        """What `merge` would make (rank, parameters, bytes, text), computed before anything runs."""
        return combine.preview(self.model, weights, how, density, name, svd_rank)

    def merge(self, weights: dict[str, float], how: str = "linear", density: float | None = None,
              name: str = "merged", svd_rank: int | None = None) -> str:
        """A new adapter `name` combining others by weight (peft's add_weighted_adapter). `how`: any
        combination type peft offers for their method (`combination_types`). Returns `name`."""
        _check_idle(self.model)
        combine.check(self.model, weights, how, density, name, svd_rank)
        self._settle()
        shown = combine.run(self.model, weights, how, density, name, svd_rank)
        _freeze(self.model, name)
        self.sources[name] = Source("merge", note=shown["text"].split(":")[0])
        self._changed()
        return name

    def combination_types(self, names: list[str] | None = None) -> list[str]:
        """The combination types peft offers for the method of these adapters (default: the active one)."""
        first = (names or [self.model.active_adapter])[0]
        self._known(first)
        return combine.combination_types(self.model, method_name(self.model.peft_config[first]))

    # ---- display -------------------------------------------------------------------------

    def widget(self) -> Any:
        from ..ui.adapters.widget import AdaptersWidget

        return AdaptersWidget(self)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget())

    def __repr__(self) -> str:
        return f"<Adapters {', '.join(self.names)}; active: {self.active}>"

    def on_change(self, callback: Any) -> None:
        """Call `callback()` after every change (the widget redraws)."""
        self._listeners.append(callback)

    # ---- helpers -------------------------------------------------------------------------

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()

    def _known(self, name: Any, key: str = "name") -> None:
        if name not in self.model.peft_config:
            raise unknown("adapter", str(name), self.names, key=key)

    def _new_name(self, name: str | None, default: str | None, key: str) -> str:
        name = default if name is None else name
        if not isinstance(name, str) or not _NAME.match(name):
            raise PlanError(f"an adapter name is letters, digits, _ and - (not starting with a digit), got {name!r}",
                            key=key, value=name)
        if name in self.model.peft_config:
            raise PlanError(f"there is already an adapter named {name!r}", key=key, value=name, choices=self.names)
        return name

    def _selection(self, adapters: list[str] | None) -> list[str]:
        if adapters is None:
            return self.names
        if isinstance(adapters, str):
            adapters = [adapters]
        if not isinstance(adapters, (list, tuple)) or not adapters:
            raise PlanError("adapters is a list of adapter names", key="adapters", value=adapters)
        for n in adapters:
            if n == compare.BASE:
                raise PlanError("the base is always compared: list adapters only", key="adapters", value=n)
            self._known(n, key="adapters")
        return list(dict.fromkeys(adapters))

    def _enable(self) -> None:
        if self._disabled:
            self.model.base_model.enable_adapter_layers()

    def _ranks(self, name: str) -> str:
        from peft.tuners.tuners_utils import BaseTunerLayer

        ranks = set()
        for module in self.model.modules():
            r = getattr(module, "r", None)
            if isinstance(module, BaseTunerLayer) and isinstance(r, dict) and name in r:
                ranks.add(int(r[name]))
        if not ranks:
            return "-"
        return str(min(ranks)) if len(ranks) == 1 else f"{min(ranks)}-{max(ranks)}"

    # ---- hot-swap ------------------------------------------------------------------------

    def _hotswap(self, name: str) -> None:
        """Copy `name`'s weights into the active adapter's tensors (the active adapter's own are kept)."""
        from peft import get_peft_model_state_dict
        from peft.utils.hotswap import check_hotswap_configs_compatible, hotswap_adapter_from_state_dict

        slot = self._slot[0] if self._slot else self.model.active_adapter
        holding = self._slot[1] if self._slot else slot
        if name == holding:
            return
        a, b = self.model.peft_config[slot], self.model.peft_config[name]
        try:
            check_hotswap_configs_compatible(a, b)
        except ValueError as err:
            raise PlanError(f"cannot hot-swap {name!r} into {slot!r}: {err}; activate({name!r}) switches without "
                            "hot-swapping", key="hotswap") from None
        if _shape_key(a) != _shape_key(b):
            raise PlanError(f"cannot hot-swap {name!r} into {slot!r}: different ranks or target modules "
                            f"({_shape_key(b)} vs {_shape_key(a)}); activate({name!r}) switches without hot-swapping",
                            key="hotswap")
        tensors = dict(self.model.named_parameters(remove_duplicate=False))
        if slot not in self._stash:
            own = get_peft_model_state_dict(self.model, tensors, adapter_name=slot)
            self._stash[slot] = {k: v.detach().clone() for k, v in own.items()}
        source = self._stash[slot] if name == slot else get_peft_model_state_dict(self.model, tensors,
                                                                                    adapter_name=name)
        hotswap_adapter_from_state_dict(self.model, _with_name(source, slot), slot, config=b)
        self._enable()
        self._slot = None if name == slot else (slot, name)
        if name == slot:
            self._stash.pop(slot, None)

    def _settle(self) -> None:
        """The active adapter gets its own weights back after hot-swaps (before anything else is done)."""
        if self._slot is None:
            return
        slot = self._slot[0]
        self._hotswap(slot)


def _with_name(state: dict[str, Any], name: str) -> dict[str, Any]:
    """peft's saved keys (`...lora_A.weight`) with the adapter's name put back (`...lora_A.<name>.weight`)."""
    out = {}
    for key, value in state.items():
        out[re.sub(r"\.(lora_[A-Za-z_]+)\.", rf".\1.{name}.", key, count=1)] = value
    return out


def _shape_key(config: Any) -> tuple[Any, ...]:
    targets = config.target_modules
    targets = tuple(sorted(targets)) if isinstance(targets, (set, list, tuple)) else targets
    return (str(config.peft_type), getattr(config, "r", None), tuple(sorted((getattr(config, "rank_pattern", None)
                                                                            or {}).items())), targets)


def _targets(config: Any) -> str:
    targets = config.target_modules
    if isinstance(targets, (set, list, tuple)):
        return ", ".join(sorted(targets))
    return str(targets or "-")


def _freeze(peft_model: Any, name: str) -> None:
    for key, param in peft_model.named_parameters():
        if f".{name}." in key or key.endswith(f".{name}"):
            param.requires_grad_(False)


def _trained_note(peft_model: Any, name: str) -> str:
    for run in [*session().active_runs(), *session().recent_runs()]:
        if getattr(run, "model", None) is peft_model:
            return f"trained here ({Path(run.folder).name})"
    return "on the model"


def _tokenizer_of(peft_model: Any) -> Any:
    for run in [*session().active_runs(), *session().recent_runs()]:
        if getattr(run, "model", None) is peft_model:
            return getattr(run.trainer, "processing_class", None)
    return None


def _check_idle(peft_model: Any) -> None:
    from ..model.adapt import check_idle

    check_idle(peft_model)
