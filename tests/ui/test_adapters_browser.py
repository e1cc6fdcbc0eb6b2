"""The adapter bench in real JupyterLab and Chromium: the table renders, Activate in the page changes
`.active` in the kernel, Compare in the page fills the table with the kernel's outputs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

BENCH = ".jp-peft-adapters"
SETUP = """\
import torch, tiny, jupyter_peft as jp
from peft import LoraConfig, get_peft_model
torch.set_num_threads(1); torch.manual_seed(0)
cfg = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
peft_model = get_peft_model(tiny.build("llama"), LoraConfig(**cfg), adapter_name="cards").eval()
peft_model.add_adapter("chat", LoraConfig(**cfg))
for p in peft_model.parameters():
    p.data *= 8 if p.requires_grad else 1
tokenizer = tiny.tokenizer()
bench = jp.adapters(peft_model, tokenizer=tokenizer)"""


@pytest.fixture
def bench_page(lab_page):
    yield lab_page
    lab_page.page.evaluate(
        "async () => { const w = window.jupyterapp.shell.currentWidget;"
        " if (w && w.sessionContext) await w.sessionContext.shutdown(); }"
    )


def test_the_bench_renders_and_activate_in_the_page_changes_the_kernel(lab, bench_page, out_dir):
    notebook = lab.notebook("adapters.ipynb", ["%load_ext jupyter_peft\n" + SETUP, "%peft adapters peft_model"])
    bench_page.open(notebook)
    bench_page.run_cell(0)
    bench_page.run_cell(1)
    page = bench_page.page
    page.wait_for_selector(f"{BENCH} tr.jp-peft-row[data-name=chat]", timeout=60_000)
    names = page.locator(f"{BENCH} tr.jp-peft-row .jp-peft-name").all_text_contents()
    assert names == ["cards", "chat"]
    assert page.locator(f"{BENCH} tr.jp-peft-row-active").get_attribute("data-name") == "cards"
    params = page.locator(f"{BENCH} tr[data-name=chat] td.jp-peft-num").nth(1).inner_text()
    expected = bench_page.kernel_value("bench.rows()[1]['params']")
    assert params == f"{expected:,}"

    page.locator(f"{BENCH} tr[data-name=chat] .jp-peft-activate").click()
    page.wait_for_selector(f"{BENCH} tr.jp-peft-row-active[data-name=chat]", timeout=30_000)
    assert bench_page.kernel_value("bench.active") == "chat"  # the magic's widget shares the model
    assert bench_page.kernel_value("peft_model.active_adapter") == "chat"

    page.locator(f"{BENCH} .jp-peft-prompts").fill("the cat sat\nhello")
    page.locator(f"{BENCH} .jp-peft-tokens").fill("6")
    page.locator(f"{BENCH} .jp-peft-run").click()
    page.wait_for_selector(f"{BENCH} .jp-peft-out td[data-column=base]", timeout=60_000)
    shown = page.locator(f"{BENCH} .jp-peft-out td[data-column=chat]").all_text_contents()
    expect = bench_page.kernel_value("jp.adapters(peft_model, tokenizer).compare(['the cat sat', 'hello'], "
                                     "max_new_tokens=6)['chat'].tolist()")
    assert shown == expect
    assert "one batched generate" in page.locator(f"{BENCH} .jp-peft-how").inner_text()
    page.set_viewport_size({"width": 1400, "height": 2200})
    page.locator(BENCH).scroll_into_view_if_needed()
    page.locator(BENCH).screenshot(path=str(out_dir / "adapters.png"))
