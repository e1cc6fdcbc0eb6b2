"""notebooks/adapters.ipynb runs top to bottom in a real kernel: two task adapters on the demo model,
the bench, compare, merge, what the merge keeps, checkpoints scrubbed, hot-swap, save.

The suite runs it with few steps (the parameters cell is rewritten: STEPS, N_EVAL) so it checks the
mechanics and the numbers' consistency, not the adapters' quality (the notebook's text gives that)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "adapters.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"

pytestmark = pytest.mark.kernel


def test_adapters_notebook_trains_two_adapters_compares_merges_and_scrubs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if "STEPS = " in c.source)
    params.source = params.source.replace("STEPS = 60", "STEPS = 6").replace("N_EVAL = 30", "N_EVAL = 3")
    assert "STEPS = 6" in params.source and "N_EVAL = 3" in params.source
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, "\n".join(f"{e.ename}: {e.evalue}" for e in errors)

    def text(source: str) -> str:
        cell = next(c for c in cells if source in c.source)
        return "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs)

    def data(source: str) -> dict:
        cell = next(c for c in cells if source in c.source)
        return {k: v for o in cell.outputs if "data" in o for k, v in o.data.items()}

    assert "finished finished ['cards', 'animal']" in text("cards_run.wait()")
    assert "step" in text("cards_run.samples")  # the samples table: steps 2, 4, 6
    bench = data("bench = jp.adapters(")
    assert WIDGET in bench and "jp-peft-adapters-snapshot" in bench["text/html"]
    assert "one batched generate" in text("bench.compare(prompts")
    assert all(c in text("bench.compare(prompts") for c in ("cards", "animal", "base"))
    assert "both = cat(1 x cards + 1 x animal), rank 16" in text("bench.merge_preview(")
    kept = text("kept = scores()")
    assert all(row in kept for row in ("cards", "animal", "both", "halves", "base"))
    assert "story card score by checkpoint step" in text("bench.load(cards_run")
    assert "animal in the tensors of cards" in text('hotswap=True')
    assert sorted(p.name for p in (tmp_path / "bench_adapters").iterdir()) == [
        "animal", "both", "cards", "cards_ckpt", "halves"]
