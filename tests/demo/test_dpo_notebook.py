"""notebooks/dpo.ipynb runs top to bottom in a real kernel and shows what its text promises
(in a file of its own: the suite's workers take a file each, and it is one of the long ones)."""

from __future__ import annotations

import pytest
from notebook_run import cell_with, run, text

pytestmark = pytest.mark.kernel


def test_dpo_trains_and_the_held_out_margin_grows(tmp_path):
    cells = run("dpo.ipynb", tmp_path)
    frame = cell_with(cells, "peft_run.wait()")
    margins = [float(line.split()[-1]) for line in text(frame).splitlines()[1:]]
    assert len(margins) == 3 and margins[-1] > margins[0] > 0, text(frame)
