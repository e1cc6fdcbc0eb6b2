"""A studio and a training dashboard in one notebook, in real JupyterLab + Chromium: neither
widget's CSS restyles the other. (Both once put global rules on `.jp-peft-bar`: with a dashboard
on the page the studio's toolbar, a flex row, shrank to the dashboard's progress-bar fill.)"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

SETUP = ("%load_ext jupyter_peft\nimport torch, tiny, runs, jupyter_peft as jp\ntorch.set_num_threads(1)\n"
         "model, tokenizer, ds = tiny.build('llama'), tiny.tokenizer(), runs.sft_data()")
STUDIO = "studio = %peft model\nstudio"
# a long run: the dashboard stays live on the page while we look (the kernel is shut down after)
TRAIN = ("%%peft model\nmethod: lora\nr: 8\ntarget_modules: [q_proj, v_proj]\n"
         "train: {trainer: sft, dataset: ds, max_steps: 100000, learning_rate: 0.001}")

TOOLBAR = ".jp-peft-studio .jp-peft-bar"  # the studio's row: method, presets, filter
# The layout and computed style of the studio's toolbar (and of the controls in it).
MEASURE = """(sel) => {
    const bar = document.querySelector(sel);
    if (!bar) return null;
    const box = bar.getBoundingClientRect();
    const cs = getComputedStyle(bar);
    const filter = bar.querySelector('.jp-peft-filter').getBoundingClientRect();
    const root = bar.closest('.jp-peft-studio').getBoundingClientRect();
    return {
        width: box.width, rootWidth: root.width, height: box.height, display: cs.display, flexWrap: cs.flexWrap,
        background: cs.backgroundColor, backgroundImage: cs.backgroundImage, gap: cs.columnGap,
        filterWidth: filter.width, filterHeight: filter.height,
    };
}"""
# The dashboard's own style is live: its progress track is 6 px high (its CSS says so).
DASHBOARD_STYLED = """() => {
    const track = document.querySelector('.jp-peft-dashboard .jp-peft-progress');
    return !!track && getComputedStyle(track).height === '6px';
}"""


@pytest.fixture
def together_page(lab_page):
    """The session's page; afterwards the notebook's kernel is shut down, which ends the run
    (and frees the few hundred MB a kernel holding torch and peft takes)."""
    yield lab_page
    lab_page.page.evaluate(
        "async () => { const w = window.jupyterapp.shell.currentWidget;"
        " if (w && w.sessionContext) await w.sessionContext.shutdown(); }"
    )


def test_a_dashboard_leaves_the_studio_toolbar_as_it_was(lab, together_page, out_dir):
    lab_page = together_page
    name = lab.notebook("together.ipynb", [SETUP + f"\n%config PeftMagics.runs_dir = '{lab.root}/runs'", STUDIO, TRAIN])
    page = lab_page.page
    page.set_viewport_size({"width": 1400, "height": 2000})  # room for the studio and the dashboard
    lab_page.open(name)
    lab_page.run_cell(0)
    lab_page.run_cell(1)
    # the studio fully drawn: its count, its chart, its finished memory estimate
    page.wait_for_selector(".jp-peft-studio .jp-peft-big", timeout=90_000)
    page.wait_for_selector(".jp-peft-studio .js-plotly-plot .main-svg", timeout=90_000)
    page.wait_for_function(
        "() => { const p = document.querySelector('.jp-peft-studio .jp-peft-memory');"
        " return p && p.dataset.state === 'ready' && !p.classList.contains('jp-peft-pending'); }",
        timeout=90_000,
    )
    page.locator(TOOLBAR).scroll_into_view_if_needed(timeout=30_000)
    before = page.evaluate(MEASURE, TOOLBAR)
    assert before is not None and before["height"] > 0 and before["width"] > 0, before
    assert before["display"] == "flex", before
    assert abs(before["width"] - before["rootWidth"]) <= 1, before  # the row spans the studio
    page.locator(TOOLBAR).screenshot(path=str(out_dir / "toolbar-before.png"), timeout=90_000)

    lab_page.run_cell(2)  # returns at once: the run trains in the background
    page.wait_for_selector(".jp-peft-dashboard .jp-peft-chart", timeout=90_000)
    page.wait_for_function(DASHBOARD_STYLED, timeout=90_000)
    page.wait_for_function(
        "() => { const s = document.querySelector('.jp-peft-dashboard .jp-peft-state');"
        " return s && s.textContent === 'running'; }",
        timeout=90_000,
    )

    page.locator(TOOLBAR).scroll_into_view_if_needed(timeout=30_000)
    after = page.evaluate(MEASURE, TOOLBAR)
    page.screenshot(path=str(out_dir / "together.png"), timeout=90_000)
    assert after["height"] > 0, after
    for key in ("display", "flexWrap", "background", "backgroundImage", "gap"):
        assert after[key] == before[key], (key, before, after)
    for key in ("height", "filterWidth", "filterHeight"):
        assert abs(after[key] - before[key]) <= 1, (key, before, after)
    # still the studio's whole width (compared to the studio, which a scrollbar could narrow)
    assert abs(after["width"] - after["rootWidth"]) <= 1, (before, after)
    page.locator(TOOLBAR).screenshot(path=str(out_dir / "toolbar-after.png"), timeout=90_000)

    # and the other way round: the dashboard keeps its own look, none of the studio's
    dashboard = page.evaluate(
        """() => {
            const d = document.querySelector('.jp-peft-dashboard');
            const fill = d.querySelector('.jp-peft-progress > div');
            const memory = d.querySelector('.jp-peft-memory');
            return {
                fill: getComputedStyle(fill).backgroundColor,
                fillHeight: fill.getBoundingClientRect().height,
                memoryBorder: getComputedStyle(memory).borderTopWidth,
                gridDisplay: getComputedStyle(d.querySelector('.jp-peft-grid')).display,
            };
        }"""
    )
    assert dashboard == {"fill": "rgb(31, 119, 180)", "fillHeight": 6, "memoryBorder": "0px", "gridDisplay": "grid"}
    # each widget's style went into the page once, however many views drew
    styles = page.evaluate(
        "() => [...document.querySelectorAll('style[data-jp-peft-style]')].map((s) => s.dataset.jpPeftStyle).sort()"
    )
    assert styles == ["dashboard", "dashboard-modules", "dashboard-samples", "studio"]
