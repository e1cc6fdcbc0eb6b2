"""Launching: a plan trained by `accelerate launch` processes, watched and stopped from the notebook.

- `api.py`: `jp.launch` and `launch_from_plan` (a `%%peft` train block with `processes:`);
- `run.py`: `LaunchedRun`, a `Run` whose trainer is elsewhere: it follows the run folder's
  metrics.jsonl and writes control.json (the exported script's callback, exports/link.py);
- `process.py`: the launch command, the processes' session and tree, per-rank logs, tracebacks;
- `view.py`: its dashboard (ui/dashboard's own; Resume says how a launched run goes on).

May import: exports/ (what is launched is exactly what jp.export writes), training/ (Run, its
folders, interrupts, the trainer checks), model/, plan/, the session, ui/dashboard (the view a
launched run gets, as jp.train's), the root helpers.
"""

from .api import launch, launch_from_plan

__all__ = ["launch", "launch_from_plan"]
