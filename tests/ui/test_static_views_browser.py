"""A saved notebook reopened without its kernel, in real JupyterLab + Chromium: where the studio
and the finished dashboard were, their static views show (the plan, the counts, the Apply
summary, the charts as images at the output's width), and no "Error displaying widget". Both
with a new kernel (the widgets' models are gone) and with no kernel at all."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.browser

SETUP = ("%load_ext jupyter_peft\nimport torch, tiny, runs, jupyter_peft as jp\ntorch.set_num_threads(1)\n"
         "model, tokenizer, ds = tiny.build('llama'), tiny.tokenizer(), runs.sft_data()")
STUDIO = "studio = %peft model\nstudio"
TRAIN = ("%%peft model --as tuned\nmethod: lora\nr: 8\ntarget_modules: [q_proj, v_proj]\n"
         "train: {trainer: sft, dataset: ds, max_steps: 6, logging_steps: 1}")
ERROR = "Error displaying widget"
# the notebook's record of its outputs: the studio's static view with the Apply summary, the
# dashboard's with the run's end
BOTH_IN_THE_MODEL = """() => {
    const html = (o) => { const h = o.data && o.data['text/html']; return Array.isArray(h) ? h.join('') : h || ''; };
    const outs = window.jupyterapp.shell.currentWidget.context.model.sharedModel.cells.flatMap((c) => c.outputs || []);
    return outs.some((o) => html(o).includes('jp-peft-studio-static') && html(o).includes('applied at'))
        && outs.some((o) => html(o).includes('jp-peft-run-snapshot') && html(o).includes('finished'));
}"""
TEXT_HAS = "([sel, text]) => (document.querySelector(sel) || {}).textContent?.includes(text)"


def saved_outputs(path) -> list[dict]:
    nb = json.loads(path.read_text())
    return [o for cell in nb["cells"] for o in cell.get("outputs", [])]


def static_html(output: dict) -> str:
    html = output.get("data", {}).get("text/html", "")
    return "".join(html) if isinstance(html, list) else html


def wait_saved(path, predicate, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate(saved_outputs(path)):
                return
        except (OSError, ValueError):
            pass  # the server is writing it
        assert time.monotonic() < deadline, "the notebook was not saved with both static views"
        time.sleep(0.5)


def check_static_views(page, out_dir, name):
    page.wait_for_selector(".jp-peft-studio-static", timeout=90_000)
    page.wait_for_selector(".jp-peft-run-snapshot img", timeout=90_000)
    page.wait_for_timeout(500)
    assert page.locator(f"text={ERROR}").count() == 0
    assert page.locator(".jp-peft-studio").count() == 0  # no live studio: its model is gone
    studio = page.locator(".jp-peft-studio-static").first
    text = studio.inner_text()
    assert "LlamaForCausalLM" in text and "%%peft model" in text and "applied at" in text
    sizes = page.evaluate(
        """() => [...document.querySelectorAll('.jp-peft-static img')].map((img) => {
            const area = img.closest('.jp-OutputArea-output').getBoundingClientRect();
            return { loaded: img.complete && img.naturalWidth > 0, width: img.getBoundingClientRect().width,
                     area: area.width, grid: !!img.closest('[style*="grid"]'), alt: img.alt,
                     natural: img.naturalWidth };
        })"""
    )
    assert len(sizes) >= 5 and all(s["loaded"] for s in sizes), sizes
    for s in sizes:  # bars as wide as the output (up to their cap); line charts fill their grid cell
        if s["alt"] == "relative update per module":  # the heatmap keeps square cells: its own size, or less
            assert s["width"] >= 0.99 * min(s["natural"], s["area"]), s
            continue
        assert s["width"] >= (0.3 if s["grid"] else 0.85) * min(s["area"], 1200), s
    page.locator(".jp-peft-studio-static").first.screenshot(path=str(out_dir / f"{name}-studio.png"))
    page.locator(".jp-peft-run-snapshot").first.screenshot(path=str(out_dir / f"{name}-dashboard.png"))


def test_a_saved_notebook_shows_both_widgets_without_their_kernel(lab, lab_page, out_dir):
    name = lab.notebook("saved.ipynb", [SETUP + f"\n%config PeftMagics.runs_dir = '{lab.root}/runs'", STUDIO, TRAIN])
    page = lab_page.page
    page.set_viewport_size({"width": 1400, "height": 1600})
    lab_page.open(name)
    lab_page.run_cell(0)
    lab_page.run_cell(1)
    page.wait_for_selector(".jp-peft-studio .js-plotly-plot .main-svg", timeout=90_000)
    page.locator(".jp-peft-studio .jp-peft-apply").click()
    page.wait_for_function(TEXT_HAS, arg=[".jp-peft-summary", "applied at"], timeout=90_000)
    lab_page.run_cell(2)
    page.wait_for_function(
        "() => { const s = document.querySelector('.jp-peft-dashboard .jp-peft-state');"
        " return s && s.textContent === 'finished'; }", timeout=120_000)
    page.wait_for_function(BOTH_IN_THE_MODEL, timeout=90_000)  # the outputs' static views are up to date
    page.evaluate("async () => { await window.jupyterapp.commands.execute('docmanager:save'); }")
    path = lab.root / name
    wait_saved(path, lambda outs: any("jp-peft-studio-static" in static_html(o) and "applied at" in static_html(o)
                                      for o in outs)
               and any("jp-peft-run-snapshot" in static_html(o) and "finished" in static_html(o) for o in outs))
    page.evaluate("async () => { await window.jupyterapp.shell.currentWidget.sessionContext.shutdown(); }")

    # reopened with a new kernel: the widgets' models are gone
    fresh = page.context.new_page()
    fresh.set_viewport_size({"width": 1400, "height": 3200})  # room for both views: element shots are not cut
    fresh.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
    fresh.wait_for_function(TEXT_HAS, arg=[".jp-Toolbar-kernelName", "Python"], timeout=90_000)
    check_static_views(fresh, out_dir, "new-kernel")
    fresh.evaluate("async () => { await window.jupyterapp.shell.currentWidget.sessionContext.shutdown(); }")
    fresh.close()

    # reopened with no kernel at all
    nb = json.loads(path.read_text())
    for key in ("kernelspec", "language_info"):  # nothing to start a kernel by: JupyterLab asks which
        nb["metadata"].pop(key, None)
    path.write_text(json.dumps(nb))
    bare = page.context.new_page()
    bare.set_viewport_size({"width": 1400, "height": 3200})
    bare.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
    bare.locator(".jp-Dialog button", has_text="No Kernel").click(timeout=90_000)
    bare.wait_for_function(TEXT_HAS, arg=[".jp-Toolbar-kernelName", "No Kernel"], timeout=30_000)
    check_static_views(bare, out_dir, "no-kernel")
    bare.screenshot(path=str(out_dir / "no-kernel-page.png"))
    # in the dark theme the charts (images drawn on white) turn dark with it (the extension's style)
    theme = "async (t) => { await window.jupyterapp.commands.execute('apputils:change-theme', {theme: t}); }"
    bare.evaluate(theme, "JupyterLab Dark")
    try:
        bare.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=60_000)
        filters = bare.evaluate(
            "() => [...document.querySelectorAll('.jp-peft-static img')].map((i) => getComputedStyle(i).filter)")
        assert filters and all("invert" in f for f in filters), filters
        bare.wait_for_timeout(500)
        bare.locator(".jp-peft-studio-static").first.screenshot(path=str(out_dir / "no-kernel-studio-dark.png"))
        bare.locator(".jp-peft-run-snapshot").first.screenshot(path=str(out_dir / "no-kernel-dashboard-dark.png"))
    finally:
        bare.evaluate(theme, "JupyterLab Light")  # the server keeps the theme for the next tests
        bare.close()
