"""What the saved notebook holds for each widget: the widget's view and, beside it, a faithful
static view (HTML with the plan, the counts and the charts as SVG images at full width) and a
readable text; the studio keeps it up to date as it changes, the dashboard at the end of a run.
(That JupyterLab shows it without a kernel: test_static_views_browser.py.)"""

from __future__ import annotations

import base64
import re
import time

import pytest
import runs
import tiny
from IPython.display import display
from IPython.utils.capture import capture_output
from runs import LORA

import jupyter_peft as jp

WIDGET = "application/vnd.jupyter.widget-view+json"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def send(studio, **msg):
    studio._on_msg(studio, msg, None)


def svgs(html: str) -> list[str]:
    return [base64.b64decode(m).decode() for m in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", html)]


def test_the_studio_output_carries_its_static_view_and_a_readable_text(shell):
    studio = jp.studio(tiny.build("llama"), name="model")
    send(studio, kind="rank", role="self_attn.q_proj", value="32")
    assert studio.wait_estimate(120)
    data, _ = studio._repr_mimebundle_()
    assert data[WIDGET]["model_id"] == studio.model_id
    html, text = data["text/html"], data["text/plain"]
    assert "object at 0x" not in text and text.startswith("jupyter_peft studio: lora on LlamaForCausalLM model")
    assert studio.cell in text  # the plan, as text
    assert "jp-peft-static" in html and "the studio as it was last shown" in html
    for shown in (studio.numbers["trainable_text"], studio.numbers["share_text"], studio.model_info["total_text"],
                  studio.memory["total_text"]):
        assert shown.replace("'", "&#x27;") in html, shown
    for group in studio.groups:  # every group, with what is ticked and its rank
        assert f"<code>{group['role']}</code>" in html
    assert ">all 2<" in html and ">32<" in html  # q_proj: both layers, rank 32
    [chart] = svgs(html)
    assert all(f">{g['role']}<" in chart for g in studio.groups if g["params"])  # every group's bars
    assert "parameters (log scale)" in chart and ">10k<" in chart  # an axis
    assert "width:100%" in html
    assert "%%peft model" in html and "self_attn.q_proj: 32" in html  # the cell


def test_the_apply_summary_is_in_the_static_view():
    studio = jp.studio(tiny.build("llama"))
    studio.apply()
    html = studio._repr_mimebundle_()[0]["text/html"]
    summary = studio.summary
    assert f"applied at {summary['applied_at']}" in html and summary["trainable_text"] in html
    assert all(f">{row['role']}<" in html for row in summary["rows"])
    # names left-aligned in its table (JupyterLab right-aligns table cells unless told)
    assert re.search(r"<td style='[^']*text-align:left'>self_attn\.q_proj</td>", html)


def test_the_studio_brings_its_saved_view_up_to_date(shell):
    studio = jp.studio(tiny.build("llama"), name="model")
    with capture_output() as cap:
        display(studio)
        send(studio, kind="view", extension=True, seq=1)  # a page with the jupyter-peft extension
        send(studio, kind="preset", name="mlp", seq=2)
        deadline = time.monotonic() + 60
        while not any("up_proj" in (o.data.get("text/plain") or "") and o.update for o in cap.outputs):
            assert time.monotonic() < deadline, "no update of the output"
            time.sleep(0.05)
    first, last = cap.outputs[0], [o for o in cap.outputs if o.update][-1]
    assert first.transient["display_id"] == last.transient["display_id"]
    assert last.data[WIDGET] == first.data[WIDGET]  # the same live view: the extension keeps it
    assert "up_proj" not in first.data["text/html"].split("<pre")[1]  # the cell shown first: attention
    assert "target_modules: [down_proj, gate_proj, up_proj]" in last.data["text/html"]  # and now the MLP


def test_without_the_extension_the_saved_view_follows_after_each_cell(shell):
    shell.user_ns["model"] = tiny.build("llama")
    with capture_output() as cap:
        shell.run_cell("import jupyter_peft as jp\nstudio = jp.studio(model)\nstudio")
        studio = shell.user_ns["studio"]
        send(studio, kind="preset", name="mlp", seq=1)  # no extension said: nothing sent yet
        time.sleep(1.0)
        assert not any(o.update for o in cap.outputs)
        shell.run_cell("x = 1")
    updates = [o for o in cap.outputs if o.update]
    assert updates and "mlp.up_proj" in updates[-1].data["text/html"]


def test_a_finished_runs_snapshot_takes_the_whole_width_and_shows_every_group(tmp_path, shell):
    plan = LORA + "train: {max_steps: 3, logging_steps: 1, eval_strategy: steps, eval_steps: 3}"
    with capture_output() as cap:
        run = jp.train(tiny.build("llama"), plan, dataset=runs.sft_data(8), eval_dataset=runs.sft_data(2),
                       tokenizer=tiny.tokenizer(), runs_dir=tmp_path)
        display(run)
        assert run.wait(120) == "finished"
    html = cap.outputs[-1].data["text/html"]
    assert "grid-template-columns:repeat(auto-fill,minmax(320px,1fr))" in html  # a grid as wide as the output
    assert html.count("width:100%") == len(svgs(html))
    charts = svgs(html)
    titles = [re.search(r"font-weight='600'[^>]*>([^<]*)<", c).group(1) for c in charts]
    assert "loss (train, eval)" in titles and "process memory (RSS)" in titles
    memory = charts[titles.index("process memory (RSS)")]
    assert ">MiB<" in memory and ">0<" in memory  # its unit, and an axis from zero
    bars = next(c for c in charts if "parameters (log scale)" in c)  # the parts' charts (module heatmap) follow it
    roles = [r["role"] for r in run.dashboard.params["rows"]]
    assert len(roles) > 5 and all(f">{role}<" in bars for role in roles)  # every group, none dropped
    assert "parameters (log scale)" in bars and ">1000<" in bars
