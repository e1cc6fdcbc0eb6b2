"""The dashboard in real JupyterLab + Chromium: it renders, the loss trace grows while the run
trains, Stop in the page stops the run in the kernel, the view stays with Resume, and the output's
static snapshot follows."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.browser

SETUP = ("%load_ext jupyter_peft\nimport torch, tiny, runs\ntorch.set_num_threads(1)\n"
         "model, tokenizer, ds = tiny.build('llama'), tiny.tokenizer(), runs.sft_data()")
TRAIN = ("%%peft model\nmethod: lora\nr: 8\ntarget_modules: [q_proj, v_proj]\n"
         "train: {trainer: sft, dataset: ds, max_steps: 100000, learning_rate: 0.001}")
# the notebook's own record of the dashboard's output: the snapshot beside the widget says "stopped"
SAVED_SNAPSHOT = """() => {
    const cells = window.jupyterapp.shell.currentWidget.context.model.sharedModel.cells;
    return cells.some((c) => (c.outputs || []).some((o) => {
        const html = o.data && o.data['text/html'];
        const text = Array.isArray(html) ? html.join('') : html || '';
        return text.includes('jp-peft-run-snapshot') && text.includes('stopped');
    }));
}"""
LOSS_POINTS = """() => {
    const chart = document.querySelector('.jp-peft-chart[data-panel="loss"]');
    return chart && chart.data ? chart.data[0].x.length : 0;
}"""


def test_dashboard_streams_and_stop_in_the_page_stops_the_kernels_run(lab, lab_page, out_dir):
    name = lab.notebook("dashboard.ipynb", [SETUP + f"\n%config PeftMagics.runs_dir = '{lab.root}/runs'", TRAIN])
    page = lab_page.open(name).page
    lab_page.run_cell(0)
    lab_page.run_cell(1)  # returns at once: the run trains in the background
    page.wait_for_selector(".jp-peft-dashboard .jp-peft-chart .main-svg", timeout=90_000)
    page.wait_for_function(f"({LOSS_POINTS})() >= 3", timeout=60_000)
    first = page.evaluate(LOSS_POINTS)
    page.wait_for_function(f"({LOSS_POINTS})() > {first}", timeout=60_000)  # the trace grows
    assert page.locator(".jp-peft-state").inner_text() == "running"
    assert "step" in page.locator(".jp-peft-progress-text").inner_text()
    page.screenshot(path=str(out_dir / "live.png"), timeout=90_000)

    page.locator(".jp-peft-stop").click()
    deadline = time.time() + 60
    while lab_page.kernel_value("peft_run.state") != "stopped":
        assert time.time() < deadline, "the run did not stop"
        time.sleep(0.5)
    step = lab_page.kernel_value("peft_run.step")
    assert lab_page.kernel_value("peft_run.checkpoint.name") == f"checkpoint-{step}"
    # the live view stays, stopped, with Resume; the output's static snapshot (what a reopen
    # without the kernel shows: test_static_views_browser.py) now shows the stop
    page.wait_for_function(
        "() => { const s = document.querySelector('.jp-peft-dashboard .jp-peft-state');"
        " return s && s.textContent === 'stopped'; }", timeout=30_000)
    resume = page.locator(".jp-peft-dashboard .jp-peft-resume")
    assert resume.is_visible() and resume.is_enabled() and f"checkpoint-{step}" in resume.get_attribute("title")
    page.wait_for_function(SAVED_SNAPSHOT, timeout=30_000)
    page.screenshot(path=str(out_dir / "stopped.png"), timeout=90_000)
