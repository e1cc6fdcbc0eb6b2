"""Takes the README's pictures: the studio and the live dashboard on the demo model, in real
JupyterLab and headless Chromium (the harness of the browser tests, tests/lab.py).

    .venv/bin/python scripts/screenshots.py      # writes docs/studio.png and docs/dashboard.png
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
            written = take(harness.LabPage(server, page), docs)
            browser.close()
    finally:
        server.stop()
    print("wrote " + " and ".join(str(path) for path in written))


if __name__ == "__main__":
    main()
