"""The browser harness itself: JupyterLab serves, a kernel runs a cell, we read it back."""

import pytest

pytestmark = pytest.mark.browser


def test_lab_runs_a_cell_and_loads_the_extension(lab, lab_page, out_dir):
    name = lab.notebook("smoke.ipynb", ["%load_ext jupyter_peft\nx = 41 + 1\nx"])
    lab_page.open(name).run_cell(0)
    assert lab_page.kernel_value("x") == 42
    assert lab_page.kernel_value("'jupyter_peft' in get_ipython().extension_manager.loaded") is True
    lab_page.page.screenshot(path=str(out_dir / "smoke.png"))
