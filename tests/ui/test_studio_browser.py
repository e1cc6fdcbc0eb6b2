"""The studio in real JupyterLab and Chromium: tick, rank, Apply, Write cell, and names as text."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

STUDIO = ".jp-peft-studio"
EVIL = """<img src=x onerror="window['__pwned']=1">"""


@pytest.fixture
def studio_page(lab_page):
    """The session's page; the notebook's kernel is shut down after the test (a kernel holding
    torch and peft is a few hundred MB, and the Lab server lives for the whole session)."""
    yield lab_page
    lab_page.page.evaluate(
        "async () => { const w = window.jupyterapp.shell.currentWidget;"
        " if (w && w.sessionContext) await w.sessionContext.shutdown(); }"
    )


def _open_studio(lab, lab_page, name: str, setup: str, magic: str):
    notebook = lab.notebook(
        name, [f"%load_ext jupyter_peft\nimport tiny, jupyter_peft as jp\n{setup}", magic]
    )
    lab_page.open(notebook)
    lab_page.run_cell(0)
    lab_page.run_cell(1)
    page = lab_page.page
    page.wait_for_selector(f"{STUDIO} .jp-peft-big", timeout=60_000)
    return page


def _shown_count(page) -> int:
    return int(page.get_attribute(f"{STUDIO} .jp-peft-big", "data-value"))


def _wait_count_change(page, before: int) -> int:
    page.wait_for_function(
        "(v) => { const b = document.querySelector('.jp-peft-studio .jp-peft-big');"
        " return b && b.dataset.value !== '' && b.dataset.value !== String(v); }",
        arg=before,
        timeout=30_000,
    )
    return _shown_count(page)


def _shown_memory(page) -> int:
    """The memory panel's total once it shows a finished estimate (not one on its way)."""
    page.wait_for_function(
        "() => { const p = document.querySelector('.jp-peft-studio .jp-peft-memory');"
        " return p && p.dataset.state === 'ready' && !p.classList.contains('jp-peft-pending'); }",
        timeout=60_000,
    )
    return int(page.get_attribute(f"{STUDIO} .jp-peft-mem-total", "data-bytes"))


def _group(page, role: str):
    return page.locator(f"{STUDIO} tr.jp-peft-group[data-role='{role}']")


def test_tick_rank_apply_and_write_cell(lab, studio_page, out_dir):
    lab_page = studio_page
    page = _open_studio(
        lab, lab_page, "studio.ipynb", "model = tiny.build('llama')", "studio = %peft model\nstudio"
    )
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    start = _shown_count(page)
    assert start == lab_page.kernel_value("studio.numbers['trainable']")
    estimate = "jp.estimate(model, studio.plan, gpu='A100-80GB').total_bytes"  # the panel's default card
    first = _shown_memory(page)
    assert first == lab_page.kernel_value(estimate)
    assert page.inner_text(f"{STUDIO} .jp-peft-mem-total") == lab_page.kernel_value("studio.memory['total_text']")

    _group(page, "mlp.down_proj").locator("input[type=checkbox]").click()  # tick a group
    ticked = _wait_count_change(page, start)
    rank = _group(page, "self_attn.q_proj").locator("input[aria-label^='rank']")
    rank.fill("16")
    rank.press("Enter")  # change a rank
    shown = _wait_count_change(page, ticked)
    plan = lab_page.kernel_value("studio.plan.to_dict()")
    assert "down_proj" in plan["target_modules"] and plan["ranks"] == {"self_attn.q_proj": 16}
    lab_page.kernel_value("studio.wait_estimate()")
    assert _shown_memory(page) == lab_page.kernel_value(estimate) != first  # the panel followed the clicks

    page.click(f"{STUDIO} .jp-peft-apply")
    page.wait_for_selector(f"{STUDIO} .jp-peft-summary table", timeout=60_000)
    trainable, total = lab_page.kernel_value("peft_model.get_nb_trainable_parameters()")  # peft's own count
    assert trainable == shown and f"of {total:,}" in page.inner_text(f"{STUDIO} .jp-peft-numbers")
    assert "same as the preview" in page.inner_text(f"{STUDIO} .jp-peft-summary")

    cells = page.locator(".jp-Notebook .jp-Cell")
    assert page.evaluate("document.body.dataset.jupyterPeft") == "1"  # the labextension is loaded
    page.click(f"{STUDIO} .jp-peft-write")
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-Notebook .jp-Cell').length === 3", timeout=20_000
    )
    source = page.evaluate(
        "window.jupyterapp.shell.currentWidget.content.widgets[2].model.sharedModel.getSource()"
    )
    assert source == lab_page.kernel_value("studio.cell")
    assert lab_page.kernel_value(f"jp.Plan.from_yaml({source.split(chr(10), 1)[1]!r}) == studio.plan") is True
    assert cells.count() == 3
    lab_page.run_cell(2)  # the written cell applies the same plan
    assert lab_page.kernel_value("peft_model.get_nb_trainable_parameters()") == [trainable, total]
    _screenshot(page, out_dir / "studio.png")


def test_module_names_never_run_as_html(lab, studio_page, out_dir):
    lab_page = studio_page
    setup = (
        "import torch.nn as nn\n"
        "evil = nn.Module()\n"
        f"evil.add_module({EVIL!r}, nn.Linear(8, 8))\n"
        "evil.add_module('ok', nn.Linear(8, 8))"
    )
    page = _open_studio(lab, lab_page, "evil.ipynb", setup, "s = %peft evil\ns")
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    row = page.locator(f"{STUDIO} tr.jp-peft-group").filter(has_text="onerror")
    assert row.locator(".jp-peft-role span").inner_text() == EVIL
    row.locator("input[type=checkbox]").click()
    page.wait_for_function(
        "() => document.querySelector('.jp-peft-studio .jp-peft-cell').textContent.includes('onerror')",
        timeout=30_000,
    )
    page.wait_for_timeout(500)  # an injected <img src=x> would have failed to load by now
    assert page.evaluate("window.__pwned") is None
    assert page.locator(f"{STUDIO} img").count() == 0
    ticks = page.locator(".js-plotly-plot .xtick text").all_text_contents()
    assert EVIL in ticks  # the chart shows the name as text too
    _screenshot(page, out_dir / "evil.png")


def _screenshot(page, path) -> None:
    """The whole widget: a viewport taller than it, so JupyterLab's bars do not cover it."""
    page.set_viewport_size({"width": 1400, "height": 2200})
    page.locator(STUDIO).scroll_into_view_if_needed()
    page.locator(STUDIO).screenshot(path=str(path))
