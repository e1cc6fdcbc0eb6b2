"""The contract between the widgets' Python and their TypeScript: what Python sends is what the
views' types declare, judged by the TypeScript compiler.

Real widgets (a studio on a tiny Llama and on a plain torch module, dashboards of real runs)
are driven through many states, with commands sent as the page sends them. Every message
goes through a recording comm (tests/wire.py: serialized as over the wire), and the state the
page's model holds is rebuilt from them. Each state, every distinct value a trait took, every
custom message and every command sent is written out as a typed TypeScript constant under
tests/_out/contract/ (`export const x: State = {...}`), and `tsc` checks them against
js/studio/types.ts and js/dashboard/types.ts: a key Python sends that TypeScript does not
declare (object literals get TypeScript's excess-property check), a required key Python does not
send, or a wrong type fails the test, with the trait, key path and value in the message.

Commands go the other way: each one the test sends must be a valid TypeScript command (with
every command kind the page can send), and Python must route and act on it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import anywidget
import pytest
import runs
import tiny
import torch.nn as nn
import wire
from runs import LORA

import jupyter_peft as jp

ROOT = Path(__file__).resolve().parents[2]
TSC = ROOT / "node_modules" / ".bin" / "tsc"
OUT = ROOT / "tests" / "_out" / "contract"
WAIT = 120  # seconds: generous, on a busy 2-core machine
# anywidget's and ipywidgets' own synced traits: theirs, not part of our contract
BASE_TRAITS = {*anywidget.AnyWidget.class_trait_names(sync=True), "_esm", "_css", "_anywidget_id"}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _tsc():
    if not TSC.exists():
        pytest.skip("node_modules is missing (npm install; scripts/test installs it): no TypeScript compiler to judge")


# ---- what the page receives ----------------------------------------------------------------


def own_traits(widget: Any) -> list[str]:
    """The widget's synced traits, less anywidget's and ipywidgets' own."""
    return sorted(set(widget.trait_names(sync=True)) - BASE_TRAITS)


def page_state(widget: Any) -> dict[str, Any]:
    """The state the page's model holds now: the open message's, then each update."""
    state: dict[str, Any] = {}
    for m in widget.comm.messages:
        data = m["data"]
        if m["type"] == "comm_open" or data.get("method") == "update":
            state.update(data.get("state", {}))
    return {name: state[name] for name in own_traits(widget) if name in state}


def custom_messages(widget: Any) -> list[dict[str, Any]]:
    return [m["data"]["content"] for m in widget.comm.messages if m["data"].get("method") == "custom"]


def json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class Recorder:
    """One widget's states at the test's steps, and every value its traits took on the wire."""

    def __init__(self, ts: TsFile, prefix: str, widget: Any, state_type: str) -> None:
        self.ts, self.prefix, self.widget, self.state_type = ts, prefix, widget, state_type
        self.marks: list[tuple[int, str]] = [(0, "it was built")]  # (messages sent before it, what happened)
        self.shown: dict[str, set[str]] = {}

    def mark(self, what: str) -> None:
        self.marks.append((len(self.widget.comm.messages), what))

    def snapshot(self, step: str, note: str = "") -> dict[str, Any]:
        """The page's state now, as one typed constant; checks it is all of the widget's state."""
        state = page_state(self.widget)
        python = json.loads(json.dumps({k: v for k, v in self.widget.get_state().items() if k in state}))
        assert state == python, f"{self.prefix} at {step}: the page's state is not the widget's (a change not sent?)"
        missing = set(own_traits(self.widget)) - set(state)
        assert not missing, f"{self.prefix} at {step}: traits never sent: {sorted(missing)}"
        self.mark(f"state {step}")
        for name, value in state.items():
            self.shown.setdefault(name, set()).add(json_text(value))
        self.ts.const(f"{self.prefix}_{step}", self.state_type, state, f"{self.prefix} state `{step}`{note}")
        return state

    def sent_values(self) -> None:
        """Every other value a trait took in an update (the open message holds the defaults
        from before the widget's __init__ set them; no view draws those)."""
        seen = {name: set(values) for name, values in self.shown.items()}
        for index, m in enumerate(self.widget.comm.messages):
            if m["data"].get("method") != "update":
                continue
            after = [what for start, what in self.marks if start <= index][-1]
            for name, value in m["data"]["state"].items():
                if name in BASE_TRAITS or json_text(value) in seen.setdefault(name, set()):
                    continue
                seen[name].add(json_text(value))
                self.ts.const(f"{self.prefix}_sent_{name}_{len(seen[name])}", f'{self.state_type}["{name}"]', value,
                              f"{self.prefix} trait `{name}` as sent after {after}", root=(name,))


class Page:
    """Commands as the page sends them, through ipywidgets' own handler of custom messages."""

    def __init__(self, recorder: Recorder, seq: bool) -> None:
        self.recorder, self.widget = recorder, recorder.widget
        self.seq: int | None = 0 if seq else None
        self.sent: dict[str, list[dict[str, Any]]] = {}

    def send(self, **command: Any) -> dict[str, Any]:
        if self.seq is not None:  # the studio's view numbers its commands (view.ts)
            self.seq += 1
            command["seq"] = self.seq
        self.sent.setdefault(command["kind"], []).append(command)
        self.recorder.mark(f"the page sent {json.dumps(command)}")
        self.widget.comm.from_page(command)
        return command


# ---- the TypeScript side -------------------------------------------------------------------


class TsFile:
    """A generated .ts file of typed constants, one key per line, so that tsc's line numbers say
    which constant and key path a complaint is about."""

    def __init__(self, name: str, imports: str) -> None:
        self.name, self.path = name, OUT / f"{name}.ts"
        self.lines = ["// Generated by tests/ui/test_contract.py from what Python sent: rewritten by each run.",
                      imports, ""]
        self.where: dict[int, tuple[str, tuple[Any, ...]]] = {}  # line number -> (label, key path)

    def const(self, name: str, ts_type: str, value: Any, label: str, root: tuple[Any, ...] = ()) -> None:
        try:
            body = _literal(value, root)
        except ValueError as err:  # NaN or infinity: JSON cannot carry them
            pytest.fail(f"{label}: Python sent a value JSON cannot carry ({err}): {value!r:.300}")
        self.lines.append(f"// {label}")
        body[0] = (f"export const {name}: {ts_type} = {body[0][0]}", root)
        body[-1] = (body[-1][0] + ";", body[-1][1])
        for text, path in body:
            self.lines.append(text)
            self.where[len(self.lines)] = (label, path)
        self.lines.append("")

    def check(self) -> None:
        """Write the file and a tsconfig for it, run tsc; a readable failure when it complains."""
        OUT.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self.lines))
        config = OUT / f"tsconfig.{self.name}.json"
        # the root's settings (strict); only this file and the js/ sources it imports, not the root's `include`
        config.write_text(json.dumps({"extends": "../../../tsconfig.json", "files": [f"{self.name}.ts"], "include": []},
                                     indent=2))
        proc = subprocess.run([str(TSC), "-p", str(config), "--noEmit", "--pretty", "false"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode == 0:
            return
        pytest.fail(self.explain(proc.stdout + proc.stderr), pytrace=False)

    def explain(self, output: str) -> str:
        """tsc's complaints as: which constant (what Python sent, when), the key path and the
        generated line, tsc's words; the same complaint about other constants named once below."""
        errors: list[list[str]] = []
        for line in output.splitlines():
            if re.match(r"^\S.*\(\d+,\d+\): error TS\d+", line) or not errors:
                errors.append([line])
            else:
                errors[-1].append(line)
        found: dict[str, tuple[list[str], list[str]]] = {}  # complaint -> (its text, other constants)
        for error in errors:
            m = re.match(r"^(.*)\((\d+),(\d+)\): error (TS\d+): (.*)$", error[0])
            if m is None or Path(m[1]).name != self.path.name:  # in the TypeScript sources themselves
                found[f"{len(found)}"] = (error, [])
                continue
            number = int(m[2])
            label, path = self.where.get(number, ("?", ()))
            key = f"{_path_text(path)}: {m[4]}: {m[5]}"
            if key in found:
                found[key][1].append(label)
                continue
            source = self.lines[number - 1].strip() if number <= len(self.lines) else ""
            text = [label, f"  at {_path_text(path)} ({self.path.relative_to(ROOT)}:{number}): {source[:200]}",
                    f"  {m[4]}: {m[5]}", *(f"  {extra.strip()}" for extra in error[1:])]
            found[key] = (text, [])
        config = (OUT / f"tsconfig.{self.name}.json").relative_to(ROOT)
        shown = [f"Python and TypeScript disagree: tsc -p {config} found {len(errors)} error(s) in what Python sent.",
                 ""]
        for text, others in found.values():
            shown += text
            if others:
                names = "; ".join(others[:6]) + ("; ..." if len(others) > 6 else "")
                shown.append(f"  the same in {len(others)} more: {names}")
            shown.append("")
        return "\n".join(shown)


def _literal(value: Any, path: tuple[Any, ...] = (), depth: int = 0) -> list[tuple[str, tuple[Any, ...]]]:
    """`value` as TypeScript source lines with the key path of each: objects one key per line,
    lists of objects one item per line, everything else inline."""
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [(json.dumps(str(k)) + ": ", (*path, k), v) for k, v in value.items()]
        open_, close = "{", "}"
    elif isinstance(value, list) and any(isinstance(v, dict) and v for v in value):
        items = [("", (*path, i), v) for i, v in enumerate(value)]
        open_, close = "[", "]"
    else:
        return [(json.dumps(value, allow_nan=False), path)]
    lines = [(open_, path)]
    for key, item_path, item in items:
        sub = _literal(item, item_path, depth + 1)
        lines.append((inner + key + sub[0][0], item_path))
        lines += sub[1:]
        lines[-1] = (lines[-1][0] + ",", lines[-1][1])
    lines.append((pad + close, path))
    return lines


def _path_text(path: tuple[Any, ...]) -> str:
    if not path:
        return "the whole value"
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


def wait_for(predicate: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# ---- the studio ----------------------------------------------------------------------------


def test_the_studio_sends_what_its_typescript_types_declare():
    with wire.recording():
        studio = jp.studio(tiny.build("llama"))
        plain = jp.studio(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)), name="net")
    ts = TsFile("studio", 'import type { Command, State } from "../../../js/studio/types";\n'
                'import type { AssetModel } from "../../../js/common/plotly";')
    shots = Recorder(ts, "studio", studio, "State")
    page = Page(shots, seq=True)

    def send(**command: Any) -> None:
        command = page.send(**command)
        # Python routed it: only a handled command sets `timing`, with the page's seq
        assert (studio.timing.get("kind"), studio.timing.get("seq")) == (command["kind"], command["seq"]), command

    def snapshot(step: str, note: str = "") -> dict[str, Any]:
        assert studio.wait_estimate(WAIT), f"the memory estimate did not arrive ({step})"
        return shots.snapshot(step, note)

    q, up = "self_attn.q_proj", "mlp.up_proj"
    state = snapshot("opened", " (lora on the attention layers, estimated)")
    assert state["memory"]["state"] == "ready" and state["issues"] == [] and state["cell"]
    send(kind="view", extension=True)  # a view was drawn, on a page with the jupyter-peft extension
    plotly = asset_request(shots)

    send(kind="pick", role=up, on=True)
    send(kind="pick", role=q, members=[0], on=False)
    send(kind="rank", role=up, value="16")
    send(kind="alpha", role=up, value="32")
    assert studio.picked[up] == [0, 1] and studio.picked[q] == [1]
    assert studio.ranks == {up: 16} and studio.alphas == {up: 32}
    snapshot("picked_and_ranked")

    send(kind="rank", role=q, value="x")
    send(kind="option", name="r", value=0, widget="int")
    send(kind="option", name="lora_dropout", value=0.1, widget="float")
    send(kind="memory", batch_size="x")
    assert {f"ranks.{q}", "r", "memory.batch_size"} <= set(studio.field_errors)
    assert studio.options == {"lora_dropout": 0.1}
    snapshot("bad_inputs", " (field_errors)")

    for key, value in (("batch_size", "2"), ("seq_len", "64"), ("gradient_checkpointing", True),
                       ("gpu", "custom"), ("custom_gib", "0.001"), ("what_fits", True)):
        send(kind="memory", **{key: value})
    assert studio.memory_inputs["gpu"] == "custom" and studio.memory_inputs["what_fits"] is True
    wait_for(lambda: studio.wait_estimate(WAIT) and studio.memory.get("what_fits"), "what fits")
    memory = snapshot("what_fits_on_a_tiny_gpu")["memory"]
    assert memory["gpu"]["fits"] is False and memory["gpu"]["line"] is not None and memory["what_fits"]["advice"]

    send(kind="option", name="layers_to_transform", value="[99]", widget="yaml")
    send(kind="apply")
    assert studio.issues and studio.numbers == {} and studio.memory["state"] == "off" and studio.status == "failed"
    snapshot("no_valid_plan", " (issues, Apply failed)")
    send(kind="option", name="layers_to_transform", value=None, widget="yaml")  # the field's reset button

    send(kind="preset", name="none")
    assert studio.picked == {} and studio.numbers["trainable"] == 0 and studio.issues
    snapshot("nothing_ticked")
    methods = [m["name"] for m in studio.method_choices]
    for method in methods:  # every method's form, nothing to estimate
        send(kind="method", name=method)
        assert (studio.method == method or "method" in studio.field_errors) and studio.wait_estimate(WAIT)
    send(kind="preset", name="attention")
    # with a selection, their estimates too: deft's and supertuning's defaults hold nulls, poly's estimate fails
    for method in [m for m in ("ia3", "prefix_tuning", "deft", "supertuning", "poly") if m in methods]:
        send(kind="method", name=method)
        assert studio.method == method
        if method in ("ia3", "prefix_tuning"):
            snapshot(method)
        assert studio.wait_estimate(WAIT)

    send(kind="method", name="lora")
    send(kind="apply")
    assert studio.status == "applied" and studio.summary["rows"] and studio.peft_model is not None
    snapshot("applied", " (summary)")

    plain_shots = Recorder(ts, "plain", plain, "State")
    assert plain.wait_estimate(WAIT)
    assert plain_shots.snapshot("torch_module", " (no transformers config: the memory panel says why)")["memory"][
        "state"] == "error"

    shots.sent_values()
    plain_shots.sent_values()
    # every kind Python routes (Studio._cmd_<kind>) was sent; tsc checks they are all the page's kinds
    routed = {name.removeprefix("_cmd_") for name in dir(type(studio)) if name.startswith("_cmd_")}
    assert routed, "the studio no longer routes commands by _cmd_<kind>: update this test"
    assert set(page.sent) == routed, f"send one command of each kind Python routes: {sorted(routed - set(page.sent))}"
    ts.const("commands", '{ [K in Command["kind"]]: (Extract<Command, { kind: K }> & { seq: number })[] }',
             page.sent, "the commands the test sent as the page (each kind the page sends, each routed by Python)")
    ts.const("asset_request", 'Parameters<AssetModel["send"]>[0]', plotly, "the page asking for plotly")
    for widget in (studio, plain):  # a custom message from Python needs a type and a check here
        kinds = [m["kind"] for m in custom_messages(widget)]
        assert kinds == (["plotly"] if widget is studio else []), "the studio sends custom messages: declare them"
    ts.const("answers", "{ kind: \"plotly\" }[]", custom_messages(studio), "Python's answer (the code is its buffer)")
    ts.check()


def asset_request(recorder: Recorder) -> dict[str, Any]:
    """The page's first chart asks for plotly (js/common/plotly.ts, no seq): the answer carries
    static/plotly.js as its one buffer."""
    widget = recorder.widget
    before = len(widget.comm.messages)
    request = {"kind": "plotly"}
    recorder.mark("the page asked for plotly")
    widget.comm.from_page(dict(request))
    answers = [m for m in widget.comm.messages[before:] if m["data"].get("method") == "custom"]
    assert [m["data"]["content"] for m in answers] == [{"kind": "plotly"}]
    from jupyter_peft.ui.plotly_asset import PLOTLY

    assert answers[0]["bytes"] >= PLOTLY.stat().st_size  # the code went along, as a buffer
    return request


# ---- the dashboard -------------------------------------------------------------------------


def test_the_dashboard_sends_what_its_typescript_types_declare(tmp_path, monkeypatch):
    from trl import SFTConfig, SFTTrainer

    tok = tiny.tokenizer()
    ts = TsFile("dashboard", 'import type { DashboardState, FromPython, ToPython } from "../../../js/dashboard/types";')

    # a trainer of your own, attached, not started: no adapter, so no parameter chart
    args = SFTConfig(output_dir=str(tmp_path / "plain"), max_steps=1, logging_steps=1, report_to="none", bf16=False,
                     use_cpu=True, save_strategy="no", disable_tqdm=True)
    with wire.recording():
        attached = jp.attach(SFTTrainer(model=tiny.build("llama"), args=args, train_dataset=runs.sft_data(4),
                                        processing_class=tok))
    shots = [Recorder(ts, "attached", attached, "DashboardState")]
    assert shots[0].snapshot("ready", " (no adapter)")["params"] == {}

    # a short real SFT run with evaluation
    plan = LORA + "train: {max_steps: 3, logging_steps: 1, eval_strategy: steps, eval_steps: 3}"
    with wire.recording():
        run = jp.train(tiny.build("llama"), plan, dataset=runs.sft_data(8), eval_dataset=runs.sft_data(2),
                       tokenizer=tok, runs_dir=tmp_path)
    assert run.wait(WAIT) == "finished"
    dashboard = run.dashboard
    shots.append(Recorder(ts, "sft", dashboard, "DashboardState"))
    state = shots[-1].snapshot("finished")
    assert state["params"]["rows"] and state["panels"] and state["status"]["checkpoint"]

    # what the page sends: Python routes each kind
    page = Page(shots[-1], seq=False)
    calls: list[str] = []
    monkeypatch.setattr(run, "stop", lambda *a, **k: calls.append("stop"))
    monkeypatch.setattr(run, "save", lambda *a, **k: calls.append("save"))
    before = len(custom_messages(dashboard))
    page.send(kind="sync")
    assert [m["kind"] for m in custom_messages(dashboard)[before:]] == ["reset", "modules-reset", "modules-suggest"]
    page.send(kind="stop")
    page.send(kind="save")
    assert calls == ["stop", "save"]
    page.send(kind="resume")  # run with data objects: Resume says how to continue instead
    assert "resume_from" in dashboard.status["error"] and not dashboard.status["resume"]["enabled"]
    plotly = asset_request(shots[-1])
    page.sent["plotly"] = [plotly]
    shots[-1].snapshot("after_the_page_asked")

    # a run whose loss turns NaN: flags, and a failed state with its error
    model = tiny.build("llama")
    forwards: list[int] = []

    def poison(module: Any, args: Any, output: Any) -> Any:  # the 2nd training forward turns NaN
        forwards.append(1)
        return output * float("nan") if len(forwards) == 2 else output

    model.model.norm.register_forward_hook(poison)
    with wire.recording():
        failed = jp.train(model, LORA + "train: {max_steps: 10, logging_steps: 1}", dataset=runs.sft_data(8),
                          tokenizer=tok, runs_dir=tmp_path)
    assert failed.wait(WAIT) == "failed"
    shots.append(Recorder(ts, "nan", failed.dashboard, "DashboardState"))
    state = shots[-1].snapshot("failed", " (a NaN loss)")
    assert state["flags"] and state["status"]["error"]

    for recorder in shots:
        recorder.sent_values()
    messages = [m for r in shots for m in custom_messages(r.widget)]
    # the heatmap's "modules" (new samples only) come or not by timing: tests/diagnostics checks them
    kinds = {m["kind"] for m in messages} - {"modules"}
    assert kinds == {"points", "reset", "plotly", "modules-reset", "modules-suggest"}
    ts.const("messages", "FromPython[]", messages, "the custom messages Python sent (points, reset)")
    ts.const("commands", '{ [K in ToPython["kind"]]: Extract<ToPython, { kind: K }>[] }', page.sent,
             "the commands the test sent as the page (each kind the page sends, each routed by Python)")
    ts.check()
