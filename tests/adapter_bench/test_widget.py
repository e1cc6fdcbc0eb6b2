"""The bench's widget from Python: commands as the page sends them, the traits it shows, the static
snapshot, `%peft adapters`, and the wire contract (what Python sends against js/adapters/types.ts)."""

from __future__ import annotations

import pytest
import tiny
from test_bench import _two

import jupyter_peft as jp
from jupyter_peft import PlanError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_page_commands_change_the_bench_and_mistakes_show_in_the_widget():
    tok = tiny.tokenizer()
    model = _two()
    bench = jp.adapters(model, tokenizer=tok)
    w = bench.widget()
    assert [r["name"] for r in w.rows] == ["x", "y"] and w.active == "x"
    w._on_msg(w, {"kind": "activate", "name": "y"}, [])
    assert bench.active == "y" and w.active == "y" and [r["active"] for r in w.rows] == [False, True]
    w._on_msg(w, {"kind": "activate", "name": "nope"}, [])
    assert "unknown adapter 'nope'" in w.error and bench.active == "y"
    w._on_msg(w, {"kind": "compare", "prompts": ["the cat", "hello"], "max_new_tokens": 5}, [])
    c = w.comparison
    assert w.error == "" and c["columns"] == ["x", "y", "base"] and len(c["cells"]) == 2
    df = bench.last_compare
    assert c["cells"][0] == [df["x"][0], df["y"][0], df["base"][0]]
    assert c["differs"][0] == [df["x"][0] != df["base"][0], df["y"][0] != df["base"][0], False]
    w._on_msg(w, {"kind": "preview", "weights": {"x": 0.5, "y": 0.5}, "how": "cat", "density": None, "name": "m"}, [])
    shown = w.merging["preview"]
    same = bench.merge_preview({"x": 0.5, "y": 0.5}, how="cat", name="m")
    assert shown["rank"] == 8 and shown["params"] == same["params"] and shown["bytes"] == same["bytes"]
    assert "ties" in w.merging["types"]
    w._on_msg(w, {"kind": "merge", "weights": {"x": 0.5, "y": 0.5}, "how": "cat", "density": None, "name": "m"}, [])
    assert bench.names == ["x", "y", "m"] and [r["name"] for r in w.rows] == ["x", "y", "m"]
    assert next(r for r in w.rows if r["name"] == "m")["params"] == shown["params"]
    w._on_msg(w, {"kind": "rename", "old": "m", "new": "mix"}, [])
    w._on_msg(w, {"kind": "disable"}, [])
    assert w.active == "" and bench.active is None
    w._on_msg(w, {"kind": "delete", "name": "mix"}, [])
    assert bench.names == ["x", "y"]
    html = w._repr_mimebundle_()[0]["text/html"]
    assert "jp-peft-adapters-snapshot" in html and ">y</td>" in html and "compare" in html
    assert "<script" not in html


def test_the_wire_matches_the_typescript_types():
    """Every trait the widget sends, type-checked against js/adapters/types.ts by tsc."""
    import json
    import subprocess
    from pathlib import Path

    tok = tiny.tokenizer()
    bench = jp.adapters(_two(), tokenizer=tok)
    w = bench.widget()
    w._on_msg(w, {"kind": "compare", "prompts": ["the cat"], "max_new_tokens": 3}, [])
    w._on_msg(w, {"kind": "preview", "weights": {"x": 1.0}, "how": "linear", "name": "m"}, [])
    state = {name: getattr(w, name) for name in ("rows", "active", "comparison", "merging", "error", "busy")}
    root = Path(__file__).resolve().parents[2]
    out_dir = root / "tests" / "_out" / "adapters_contract"  # kept: `tsc -p` it again to see the complaint
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sent.ts").write_text('import type { AdaptersState } from "../../../js/adapters/types";\n'
                                     f"export const sent: AdaptersState = {json.dumps(state, indent=1)};\n")
    (out_dir / "tsconfig.json").write_text(json.dumps({"extends": "../../../tsconfig.json", "files": ["sent.ts"],
                                                       "include": []}))
    out = subprocess.run([str(root / "node_modules" / ".bin" / "tsc"), "-p", str(out_dir / "tsconfig.json")],
                         cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_peft_adapters_magic_finds_the_one_peft_model(shell):
    shell.user_ns["tokenizer"] = tiny.tokenizer()
    with pytest.raises(PlanError, match="no PeftModel"):
        from jupyter_peft.magics.adapters import adapters_magic

        adapters_magic([], shell.user_ns)
    shell.user_ns["peft_model"] = _two()
    w = shell.run_line_magic("peft", "adapters")
    assert type(w).__name__ == "AdaptersWidget" and w.bench.tokenizer is shell.user_ns["tokenizer"]
    shell.user_ns["other"] = _two()
    with pytest.raises(PlanError, match="2 PeftModels.*valid: other, peft_model"):
        adapters_magic([], shell.user_ns)
    assert shell.run_line_magic("peft", "adapters other").bench.model is shell.user_ns["other"]
    with pytest.raises(PlanError, match="no variable named 'otter'"):
        adapters_magic(["otter"], shell.user_ns)
