"""The runs table in real JupyterLab + Chromium: `%peft runs` lists the runs of a folder, a
header click sorts them, ticking two and Compare draws their curves overlaid (the points are
the runs' histories), the metric picker and log y redraw it, and the plan diff names the key
that differs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

SETUP = "%load_ext jupyter_peft"


def _write_run(folder, name, r, state, offset):
    """A run folder as training/ writes it (plan.yaml, history.jsonl, run.json): the table and the
    overlay are the view's to test here; tests/records/ reads back folders of real runs."""
    import json

    import jupyter_peft as jp

    path = folder / name
    path.mkdir(parents=True)
    plan = jp.Plan.from_yaml(f"method: lora\nr: {r}\ntarget_modules: [q_proj, v_proj]\n"
                             "train: {trainer: sft, max_steps: 6, learning_rate: 0.005}")
    (path / "plan.yaml").write_text(plan.to_yaml())
    rows = [{"step": s, "time": 0.5 * s, "loss": 3.0 - 0.2 * s - offset} for s in range(1, 7)]
    rows += [{"step": s, "time": 0.5 * s + 0.1, "eval_loss": 3.1 - 0.15 * s - offset} for s in (2, 4, 6)]
    rows.sort(key=lambda row: row["time"])
    (path / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (path / "run.json").write_text(json.dumps({"state": state, "error": None, "started": 1.7e9 + offset * 100,
                                               "ended": 1.7e9 + offset * 100 + 3, "steps": 6, "max_steps": 6}))
    return rows


TRACES = """() => {
    const chart = document.querySelector('.jp-peft-runs-chart');
    return chart && chart.data ? chart.data.map((t) => [t.name, t.x.length]) : [];
}"""


def test_runs_table_sorts_ticks_and_overlays(lab, lab_page, out_dir):
    folder = lab.root / "runs18"
    histories = {"20240101-000000-lora-sft": _write_run(folder, "20240101-000000-lora-sft", 4, "finished", 0.0),
                 "20240102-000000-lora-sft": _write_run(folder, "20240102-000000-lora-sft", 8, "stopped", 0.3)}
    names = list(histories)
    name = lab.notebook("runs.ipynb", [SETUP, f"table = %peft runs --runs-dir {folder}\ntable"])
    page = lab_page.open(name).page
    lab_page.run_cell(0)
    lab_page.run_cell(1)
    page.wait_for_selector(".jp-peft-runs tbody tr", timeout=90_000)
    rows = page.locator(".jp-peft-runs tbody tr")
    assert rows.count() == 2
    assert [rows.nth(i).get_attribute("data-name") for i in range(2)] == names[::-1]  # newest first
    page.locator('.jp-peft-runs th[data-key="r"]').click()  # sort by rank: 4 first
    assert [rows.nth(i).get_attribute("data-name") for i in range(2)] == names
    assert page.locator('.jp-peft-runs th[data-key="r"]').get_attribute("data-sort") == "asc"
    assert page.locator('.jp-peft-runs td[data-state="finished"]').count() == 1
    assert page.locator('.jp-peft-runs td[data-state="stopped"]').count() == 1
    for i in range(2):
        rows.nth(i).locator(".jp-peft-runs-tick").check()
    page.locator(".jp-peft-runs-compare").click()
    page.wait_for_selector(".jp-peft-runs-chart .main-svg", timeout=90_000)
    page.wait_for_function(f"({TRACES})().length === 2", timeout=60_000)
    # every logged point of each run, the runs in the folder's order (newest first)
    assert page.evaluate(TRACES) == [[n, 6] for n in names[::-1]]
    ys = page.evaluate("() => document.querySelector('.jp-peft-runs-chart').data.map((t) => t.y)")
    assert ys == [[r["loss"] for r in histories[n] if "loss" in r] for n in names[::-1]]
    diff = page.locator(".jp-peft-runs-diff").inner_text()
    assert "r" in diff.split() and "4" in diff.split() and "8" in diff.split()
    page.screenshot(path=str(out_dir / "loss.png"), full_page=True, timeout=90_000)

    page.locator(".jp-peft-runs-metric").select_option("eval_loss")  # the picker: Python redraws
    page.wait_for_function(
        "() => { const c = document.querySelector('.jp-peft-runs-chart');"
        " return c && c.layout && c.layout.title && c.layout.title.text === 'eval_loss'; }", timeout=60_000)
    assert [n for _, n in page.evaluate(TRACES)] == [3, 3]  # evaluations at steps 2, 4 and 6
    page.locator(".jp-peft-runs-logy").check()
    page.wait_for_function(
        "() => { const c = document.querySelector('.jp-peft-runs-chart'); return c && c.layout.yaxis.type === 'log'; }",
        timeout=60_000)
    assert lab_page.kernel_value("[table.widget.log_y, table.widget.metric, table.widget.selected]") == [
        True, "eval_loss", names[::-1]]  # the page's settings are the kernel's traits
    page.screenshot(path=str(out_dir / "eval_loss_log.png"), full_page=True, timeout=90_000)
