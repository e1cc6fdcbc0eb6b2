"""A notebook in a real kernel (nbclient): training in the background while other cells run,
`%peft stop`, kernel interrupts (idle and during a cell), and the static snapshot that the
saved notebook keeps for a reopen without a kernel."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import nbformat
import pytest
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).resolve().parents[2]
TRAIN = "%%peft model\n" + "method: lora\nr: 8\ntarget_modules: [q_proj, v_proj]\n" + \
    "train: {trainer: sft, dataset: ds, max_steps: 100000}"


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.fixture
def client(out_dir, monkeypatch):
    paths = [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(out_dir)}})
    with client.setup_kernel():
        yield client


def interrupt(client) -> None:
    """The kernel's interrupt, as the notebook's stop button sends it (nbclient's km is async)."""
    run_sync(client.km.interrupt_kernel)()


def run_cell(client, source: str, allow_error: bool = False):
    nb = client.nb
    nb.cells.append(nbformat.v4.new_code_cell(source))
    try:
        client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
    except CellExecutionError:
        if not allow_error:
            raise
    return nb.cells[-1]


def test_train_in_the_background_stop_interrupt_and_keep_a_snapshot(client, out_dir, tmp_path):
    run_cell(client, "%load_ext jupyter_peft\nimport time, torch, tiny, runs\ntorch.set_num_threads(1)\n"
             "model, tokenizer, ds = tiny.build('llama'), tiny.tokenizer(), runs.sft_data()\n"
             f"%config PeftMagics.runs_dir = '{tmp_path}'")
    started = run_cell(client, TRAIN)  # returns at once with the dashboard
    mimes = [set(o.get("data", {})) for o in started.outputs if o.output_type == "display_data"]
    assert any("application/vnd.jupyter.widget-view+json" in m for m in mimes)

    # another cell runs while it trains, and sees it progress
    cell = run_cell(client, "while peft_run.tracker.step < 3: time.sleep(0.05)\nfirst = peft_run.tracker.step\n"
                    "print(peft_run.state, sum(range(10**5)))")
    assert _text(cell).split() == ["running", str(sum(range(10**5)))]
    cell = run_cell(client, "time.sleep(0.5)\nprint(peft_run.state, peft_run.tracker.step > first)")
    assert _text(cell).split() == ["running", "True"]

    cell = run_cell(client, "%peft stop")
    assert "Stopped run" in _text(cell) and "checkpoint-" in _text(cell)
    cell = run_cell(client, "print(peft_run.state, (peft_run.checkpoint / 'adapter_model.safetensors').exists())")
    assert _text(cell).split() == ["stopped", "True"]
    # the first run's cell keeps its live view (Resume, full-width charts) with the static snapshot
    # beside it, which a notebook reopened without a kernel shows
    final = [o for o in started.outputs if o.output_type == "display_data"][-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in final
    assert "data:image/svg+xml;base64," in final["text/html"] and "stopped" in final["text/html"]
    nbformat.write(client.nb, out_dir / "training.ipynb")
    saved = nbformat.read(out_dir / "training.ipynb", as_version=4)
    assert "data:image/svg+xml;base64," in str(saved.cells[1].outputs)

    # an interrupt while the kernel is idle stops the run cleanly
    run_cell(client, TRAIN)
    run_cell(client, "while peft_run.tracker.step < 2: time.sleep(0.05)")
    interrupt(client)
    cell = run_cell(client, "print(peft_run.wait(60), peft_run.checkpoint.name == f'checkpoint-{peft_run.step}')")
    assert _text(cell).split() == ["stopped", "True"]

    # an interrupt during another cell: that cell gets its KeyboardInterrupt, the run stops too
    run_cell(client, TRAIN)
    timer = threading.Timer(3.0, interrupt, args=(client,))
    timer.start()
    cell = run_cell(client, "while peft_run.tracker.step < 2: time.sleep(0.05)\ntime.sleep(60)", allow_error=True)
    timer.join()
    assert any(o.get("ename") == "KeyboardInterrupt" for o in cell.outputs)
    assert "stops at the next step" in _text(cell)
    cell = run_cell(client, "print(peft_run.wait(60), 1 + 1)")  # and the kernel is alive
    assert _text(cell).split() == ["stopped", "2"]
