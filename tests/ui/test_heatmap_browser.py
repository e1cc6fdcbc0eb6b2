"""The module heatmap in real JupyterLab + Chromium: a run's per-module signals render as a
plotly heatmap with a cell per adapted module, grow while the run trains, follow the signal
select, and hover names the module; when the run ends its button writes the rank suggestion as
the next %%peft cell."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

SETUP = ("%load_ext jupyter_peft\nimport torch, tiny, runs\ntorch.set_num_threads(1)\n"
         "model, tokenizer, ds = tiny.build('llama'), tiny.tokenizer(), runs.sft_data()")
TRAIN = ("%%peft model\nmethod: lora\nr: 4\ntarget_modules: all-linear\n"
         "train: {trainer: sft, dataset: ds, max_steps: 60, learning_rate: 0.005, diagnostics: 2}")
HEATMAP = """() => {
    const plot = document.querySelector('.jp-peft-modules-plot');
    if (!plot || !plot.data || !plot.data[0]) return null;
    const z = plot.data[0].z;
    return {cells: z.flat().filter((v) => v !== null).length, rows: z.length, cols: z[0].length,
            samples: Number(document.querySelector('.jp-peft-modules-step').max) + 1,
            text: plot.data[0].text[1][2]};
}"""


def test_the_module_heatmap_renders_a_cell_per_adapted_module_and_grows(lab, lab_page, out_dir):
    name = lab.notebook("heatmap.ipynb", [SETUP + f"\n%config PeftMagics.runs_dir = '{lab.root}/runs'", TRAIN])
    page = lab_page.open(name).page
    lab_page.run_cell(0)
    lab_page.run_cell(1)
    page.wait_for_selector(".jp-peft-modules-plot .main-svg", timeout=90_000)
    page.wait_for_function(f"(({HEATMAP})() || {{samples: 0}}).samples >= 2", timeout=60_000)
    first = page.evaluate(HEATMAP)
    assert (first["rows"], first["cols"], first["cells"]) == (2, 7, 14)  # 2 layers x 7 roles, all adapted
    assert first["text"].startswith("model.layers.1.self_attn.v_proj, r=4<br>relative update: ")
    page.wait_for_function(f"({HEATMAP})().samples > {first['samples']}", timeout=60_000)  # live
    assert page.locator(".jp-peft-modules-plot .hm image").count() == 1  # plotly drew the cells
    caption = page.locator(".jp-peft-modules-caption").inner_text()
    assert "not proof of a useless module" in caption
    page.select_option(".jp-peft-modules-signal", "grad")
    page.wait_for_function("() => document.querySelector('.jp-peft-modules-plot').data[0].text[0][0]"
                           ".includes('gradient norm')", timeout=30_000)
    page.locator(".jp-peft-modules").scroll_into_view_if_needed()
    page.locator(".jp-peft-modules-plot .nsewdrag").first.hover(position={"x": 30, "y": 10})
    page.screenshot(path=str(out_dir / "heatmap.png"), timeout=90_000)
    assert lab_page.kernel_value("peft_run.wait(120)") == "finished"
    assert lab_page.kernel_value("len(peft_run.modules)") == 14
    # the run ended: its rank suggestion, and the button that writes it as the next cell
    page.wait_for_selector(".jp-peft-modules-suggest button", state="visible", timeout=60_000)
    assert "uses" in page.inner_text(".jp-peft-modules-suggest-text")
    page.click(".jp-peft-modules-suggest button")
    page.wait_for_function("() => document.querySelectorAll('.jp-Notebook .jp-Cell').length === 3", timeout=20_000)
    source = page.evaluate("window.jupyterapp.shell.currentWidget.content.widgets[2].model.sharedModel.getSource()")
    assert source == lab_page.kernel_value("peft_run.suggest_ranks().cell()")
    assert "ranks:" in source and "alphas:" in source
    page.screenshot(path=str(out_dir / "suggest.png"), timeout=90_000)
