"""Running a notebook of notebooks/ in a real kernel (nbclient), as a reader would, and reading
what its cells show. The notebooks' tests are split over files (tests/demo/) so that the suite's
workers, which take a file each, run the long ones side by side."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run(name: str, tmp_path: Path, timeout: int = 600) -> list[nbformat.NotebookNode]:
    """Execute notebooks/NAME in a fresh kernel inside tmp_path (run folders, saved adapters and
    exports land there); the code cells, with outputs, in order."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    resources = {"metadata": {"path": str(tmp_path)}}
    with as_a_reader():
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources).execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, "\n".join(f"{e.ename}: {e.evalue}" for e in errors)
    return cells


def text(cell: nbformat.NotebookNode) -> str:
    """Everything a cell shows as plain text (streams and text/plain results)."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif "data" in out:
            parts.append(out.data.get("text/plain", ""))
    return "\n".join(parts)


def mimes(cell: nbformat.NotebookNode) -> set[str]:
    return {m for out in cell.outputs if "data" in out for m in out.data}


def cell_with(cells: list[nbformat.NotebookNode], source: str) -> nbformat.NotebookNode:
    return next(c for c in cells if source in c.source)


@contextlib.contextmanager
def as_a_reader() -> Iterator[None]:
    """The kernel starts with torch's default threads, as on a reader's machine, not the one
    thread scripts/test gives the suite's processes: the quickstart's quality claim (1.00 after
    360 steps) was measured so, and another thread count is another training trajectory."""
    saved = os.environ.pop("OMP_NUM_THREADS", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["OMP_NUM_THREADS"] = saved

