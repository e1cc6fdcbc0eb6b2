"""The dashboard of a launched run: the one every run has (ui/dashboard), and what Resume says.

Resume continues a run in this kernel from its checkpoint; a launched run's trainer lived in
other processes, so the button says where the adapter is and how to go on instead.
"""

from __future__ import annotations

from typing import Any

from ..ui.dashboard.widget import Dashboard


class LaunchedDashboard(Dashboard):
    """`Dashboard` for a `LaunchedRun` (imported on use: it needs anywidget)."""

    def _resume(self) -> None:
        run: Any = self.run
        self._resume_error = (f"{run.folder.name} trained in {run.processes} processes: its adapter is in "
                              f"{run.checkpoint}; load it with run.load_into(peft_model), or launch again "
                              "with jp.launch(...)")
        self.refresh()
