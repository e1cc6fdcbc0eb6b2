"""Takes the README's pictures: the studio and the live dashboard on the demo model, in real
JupyterLab and headless Chromium (the harness of the browser tests, tests/lab.py); then both
widgets in JupyterLab's light and dark themes at 1400 and 900 px wide (`take_matrix`), the
pictures someone looks at for each change of the widgets' looks.

    .venv/bin/python scripts/screenshots.py      # docs/studio.png, docs/dashboard.png
                                                 # and the eight others in tests/_out/screenshots/
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CELLS = [
    "%load_ext jupyter_peft\nimport jupyter_peft as jp\nmodel, tokenizer = jp.demo.load()\n"
    "train = jp.demo.dataset('sft')",
    "studio = jp.studio(model)\nstudio.plan = jp.Plan.from_yaml('r: 16\\nlora_alpha: 32\\n"
    "target_modules: [q_proj, k_proj, v_proj, o_proj]\\nranks: {self_attn.q_proj: 32}')\nstudio",
    "%%peft model\nmethod: lora\nr: 16\nlora_alpha: 32\ntarget_modules: all-linear\n"
    "train: {trainer: sft, dataset: train, max_steps: 400, per_device_train_batch_size: 8, learning_rate: 0.002,"
    " lr_scheduler_type: constant_with_warmup, warmup_steps: 10, assistant_only_loss: true, max_length: 256}",
]


def take(lab_page, folder: Path, grow_ms: int = 25_000) -> tuple[Path, Path]:
    """Open the tour notebook on `lab_page` (a `lab.LabPage`), screenshot the studio and, after
    `grow_ms` of training, the dashboard into `folder`; the run is stopped after. The browser
    test (tests/test_screenshots_browser.py) runs this same code."""
    page = lab_page.page
    notebook = lab_page.open(lab_page.lab.notebook("tour.ipynb", CELLS))
    notebook.run_cell(0, timeout=180_000)
    notebook.run_cell(1)
    page.wait_for_selector(".jp-peft-studio .main-svg", timeout=120_000)
    page.wait_for_function(  # the memory panel shows a finished estimate (it comes off the click path)
        "() => { const p = document.querySelector('.jp-peft-studio .jp-peft-memory');"
        " return p && p.dataset.state === 'ready' && !p.classList.contains('jp-peft-pending'); }",
        timeout=120_000,
    )
    page.wait_for_timeout(1000)  # let the chart settle
    studio, dashboard = folder / "studio.png", folder / "dashboard.png"
    page.locator(".jp-peft-studio").first.screenshot(path=str(studio))
    notebook.run_cell(2)
    page.wait_for_selector(".jp-peft-dashboard .jp-peft-chart .main-svg", timeout=120_000)
    page.wait_for_timeout(grow_ms)  # let the curves grow
    page.locator(".jp-peft-dashboard").first.screenshot(path=str(dashboard))
    notebook.kernel_eval("peft_run.stop().wait(120)")
    return studio, dashboard


THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
WIDTHS = (1400, 900)
# what the test asserts of each picture: the studio's tree needs no horizontal scroll, and the
# charts' tick labels are in the theme's text colour (light on dark, dark on light)
MEASURE = """() => {
    const luminance = (css) => {
        const [r, g, b] = (css.match(/[\\d.]+/g) || [0, 0, 0]).map(Number);
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
    };
    const left = document.querySelector('.jp-peft-studio .jp-peft-left');
    const studio = document.querySelector('.jp-peft-studio');
    const dash = document.querySelector('.jp-peft-dashboard');
    const tick = (root) => {
        const t = root && root.querySelector('.xtick text, .ytick text');
        return t ? luminance(getComputedStyle(t).fill) : null;
    };
    return {
        treeOverflow: left ? left.scrollWidth - left.clientWidth : null,
        studioOverflow: studio ? studio.scrollWidth - studio.clientWidth : null,
        dashboardOverflow: dash ? dash.scrollWidth - dash.clientWidth : null,
        studioTicks: tick(studio), dashboardTicks: tick(dash),
        background: luminance(getComputedStyle(document.querySelector('.jp-Notebook')).backgroundColor),
        width: studio ? studio.getBoundingClientRect().width : null,
    };
}"""


def set_theme(page, theme: str) -> None:
    """JupyterLab's own theme switch (the Settings menu's), then a moment for the charts to redraw."""
    page.evaluate("async (t) => { await window.jupyterapp.commands.execute('apputils:change-theme', {theme: t}); }",
                  theme)
    page.wait_for_function("(t) => document.body.dataset.jpThemeName === t", arg=theme, timeout=60_000)
    page.wait_for_timeout(1500)


def take_matrix(lab_page, folder: Path) -> dict[str, dict]:
    """After `take`: the studio and the (stopped) dashboard in the light and the dark theme at
    1400 and 900 px wide, as `<widget>-<theme>-<width>.png` in `folder`; returns what MEASURE
    found for each `<theme>-<width>`."""
    page, found = lab_page.page, {}
    try:
        for name, theme in THEMES.items():
            set_theme(page, theme)
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 2600})
                page.wait_for_timeout(1200)  # plotly follows the new width (responsive charts)
                key = f"{name}-{width}"
                found[key] = page.evaluate(MEASURE)
                for widget in ("studio", "dashboard"):
                    page.locator(f".jp-peft-{widget}").first.screenshot(path=str(folder / f"{widget}-{key}.png"))
    finally:
        set_theme(page, THEMES["light"])  # the server keeps the theme for whatever runs next
    return found


def main() -> None:
    import lab as harness
    from playwright.sync_api import sync_playwright

    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    server = harness.Lab().start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=harness.CHROMIUM, args=harness.CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1500, "height": 1500}).new_page()
            lab_page = harness.LabPage(server, page)
            written = take(lab_page, docs)
            matrix = ROOT / "tests" / "_out" / "screenshots"
            matrix.mkdir(parents=True, exist_ok=True)
            take_matrix(lab_page, matrix)
            browser.close()
    finally:
        server.stop()
    print("wrote " + " and ".join(str(path) for path in written))


if __name__ == "__main__":
    main()
