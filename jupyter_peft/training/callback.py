"""The TrainerCallback that connects a trainer to its `Run` (imported only when a run is made).

It runs on the training thread. Stop and Save now are requests the Run holds as flags; the
callback turns them into the trainer's own controls at the next step boundary, so the
trainer itself writes the checkpoint (adapter, optimizer, scheduler, state) and stops.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class Recorder(TrainerCallback):
    """Feeds logs to the Run and applies its Stop / Save now requests."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.run._began(state)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        run = self.run
        if run._stop_requested.is_set():
            control.should_training_stop = True
            control.should_save = True
        if run._save_requested.is_set() or (state.max_steps and state.global_step >= state.max_steps):
            control.should_save = True  # asked for, or the last step: nothing is lost at the end

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if self.run._logged(state.global_step, logs or {}):
            return
        # a non-finite loss: stop now, and do not checkpoint weights that are already NaN
        control.should_training_stop = True
        control.should_save = False

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.run._saved(f"{args.output_dir}/checkpoint-{state.global_step}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.run._train_ended()
