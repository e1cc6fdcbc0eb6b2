"""The exported script's link to a notebook: progress out as JSON lines, Stop / Save now in.

Everything below the marker line is copied verbatim into every exported train.py (script.py),
so it imports nothing of jupyter_peft and only the standard library at module level. The
notebook's side (launching/) reads the same file names from here.

Out: the main process appends one JSON object per line to `<output_dir>/metrics.jsonl`:
`{"event": "begin"|"log"|"save"|"end"|"done", "time": unix seconds, "step", ...}`; a log line
carries the trainer's numbers and the memory of every rank (one small all-gather per log).
In: `<output_dir>/control.json`, `{"stop": bool, "save": n, "final": bool}`: `save` counts the
Save-now requests, `final` asks for a checkpoint at the last step. At each step end the main
process looks at the file (one stat; read only when it changed) and broadcasts what it says, so
every rank stops or saves at the same step: a rank that stopped alone would leave the others
waiting forever in the next all-reduce. Without the file (a run by hand) nothing changes.
"""

import os

MARKER = "# ---- copied into the exported script from here ----"
# ---- copied into the exported script from here ----
METRICS = "metrics.jsonl"  # progress, one JSON object per line, written by the main process
CONTROL = "control.json"  # what the notebook asks: {"stop": bool, "save": n, "final": bool}


def notebook_link(output_dir):
    """The TrainerCallback that writes progress to `output_dir` and obeys its control file."""
    import json
    import time
    from pathlib import Path

    from transformers import TrainerCallback

    def memory(device):
        """Peak CUDA memory of this process's GPU, or this process's resident memory (bytes)."""
        import torch

        if device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(device))
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return -1

    def distributed():
        import torch.distributed as dist

        return dist if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1 else None

    class NotebookLink(TrainerCallback):
        def __init__(self):
            self.dir = Path(output_dir)
            self.seen = None  # the control file's (mtime, size) when last read
            self.asked = [0, 0, 0]  # stop, save requests, final checkpoint
            self.saves = 0  # save requests already acted on
            self.main = True

        def write(self, event, state, **values):
            if self.main:
                line = {"event": event, "time": time.time(), "step": state.global_step, **values}
                with open(self.dir / METRICS, "a") as f:
                    f.write(json.dumps(line) + "\n")

        def on_train_begin(self, args, state, control, **kwargs):
            self.main = state.is_world_process_zero
            self.dir.mkdir(parents=True, exist_ok=True)
            batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
            self.write("begin", state, max_steps=state.max_steps, epochs=state.num_train_epochs,
                       processes=args.world_size, global_batch=batch, device=args.device.type)

        def on_log(self, args, state, control, logs=None, **kwargs):
            mine = memory(args.device)
            ranks = [mine]
            dist = distributed()
            if dist is not None:  # every rank logs at the same steps: a gather of one number each
                import torch

                mine_t = torch.tensor([mine], dtype=torch.int64, device=args.device)
                parts = [torch.zeros_like(mine_t) for _ in range(dist.get_world_size())]
                dist.all_gather(parts, mine_t)
                ranks = [int(p.item()) for p in parts]
            numbers = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            self.write("log", state, logs=numbers, memory=ranks)

        def on_step_end(self, args, state, control, **kwargs):
            stop, save, final = self.control(args)
            if stop:
                control.should_training_stop = True
                control.should_save = True
            if save > self.saves:
                self.saves = save
                control.should_save = True
            if final and state.max_steps and state.global_step >= state.max_steps:
                control.should_save = True  # the notebook keeps the last step as a checkpoint

        def control(self, args):
            """What the control file asks, the same on every rank (the main process reads it)."""
            if self.main:
                try:
                    info = os.stat(self.dir / CONTROL)
                    seen = (info.st_mtime_ns, info.st_size)
                    if seen != self.seen:
                        asked = json.loads((self.dir / CONTROL).read_text())
                        self.asked = [int(bool(asked.get("stop"))), int(asked.get("save", 0)),
                                      int(bool(asked.get("final")))]
                        self.seen = seen
                except (OSError, ValueError, AttributeError):  # no file, or caught mid-write: as before
                    pass
            dist = distributed()
            if dist is not None:
                import torch

                flags = torch.tensor(self.asked, dtype=torch.int64, device=args.device)
                dist.broadcast(flags, src=0)
                self.asked = [int(x) for x in flags.tolist()]
            return self.asked

        def on_save(self, args, state, control, **kwargs):
            self.write("save", state, checkpoint=f"checkpoint-{state.global_step}")

        def on_train_end(self, args, state, control, **kwargs):
            self.write("end", state, stopped=bool(self.asked[0]))

        def done(self, state, adapter):
            """After the adapter was saved: the work is over (what remains is process teardown)."""
            self.write("done", state, adapter=str(adapter))

    return NotebookLink()
