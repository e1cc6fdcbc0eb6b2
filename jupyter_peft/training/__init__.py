"""Training inside the kernel: a TRL trainer on a background thread, and nothing lost.

- `run.py`: `Run`, the lifecycle (ready, running, stopping, stopped/finished/failed) and its data;
- `api.py`: `jp.train` / `jp.attach`: the trainer, the Run and the dashboard that watches it;
- `trainer.py`: from a plan, a model and data to a ready TRL trainer and its run folder;
- `callback.py`: the TrainerCallback feeding the Run; `interrupts.py`: kernel interrupts stop runs;
- `folders.py`: what a run keeps on disk; `metrics.py`: history rows, rates, ETA, chart panels;
- `run_memory.py`: the estimate for a run's own settings; `generation.py`: use the tuned model.

May import: plan/, model/, memory/ (the run's estimate), the session, the root helpers; only
api.py imports ui/dashboard, for the view it attaches.
"""
