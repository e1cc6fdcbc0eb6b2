"""Where a NaN starts: gradient hooks on the adapter parameters, read once per step.

Every trainable adapter parameter gets a post-accumulate-grad hook that stores the norm of its
gradient as a 0-d tensor (no device sync; the last micro-batch's value is the accumulated,
pre-clip gradient) and the order it fired in during backward. Each module's forward pre-hook
keeps a reference to its input (autograd holds that tensor until the step ends anyway; under
gradient checkpointing it would not, so there it is not kept). Before the optimizer step
`check` stacks the norms and asks once whether all are finite; only on a step where they are
not does it look further:

- the first non-finite gradient *in backward order* is where it started: backward runs from the
  loss to the first layer, and once a module's input-gradient is non-finite every module before
  it gets non-finite gradients too (reported: the earliest in forward order as well, and how many);
- its input norm (a large input is what makes LoRA's gradients blow up: dL/dB = g^T (A x));
- when the loss itself was non-finite every gradient is, and the first module (forward order)
  whose *input* was non-finite says where the forward pass broke.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class GradWatch:
    """Hooks on the adapted modules of one run (removed by `remove`)."""

    def __init__(self, modules: list[Any], keep_inputs: bool) -> None:
        self.modules = modules
        self.param_module: list[int] = []
        self.handles: list[Any] = []
        for mi, m in enumerate(modules):
            for p in m.params:
                if p.requires_grad:
                    hook = self._grad_hook(len(self.param_module), mi)
                    self.handles.append(p.register_post_accumulate_grad_hook(hook))
                    self.param_module.append(mi)
            if keep_inputs:
                self.handles.append(m.layer_obj.register_forward_pre_hook(self._input_hook(mi)))
        self._zero = torch.zeros((), device=modules[0].params[0].device) if modules else None
        self.norms: list[Any] = []
        self.order: list[int] = []
        self.inputs: list[Any] = [None] * len(modules)
        self._index = torch.tensor(self.param_module, dtype=torch.long)
        self.new_step()

    def _grad_hook(self, i: int, mi: int) -> Any:
        def hook(p: Any) -> None:
            self.norms[i] = torch.linalg.vector_norm(p.grad.detach())
            self.order[mi] = self._count
            self._count += 1
        return hook

    def _input_hook(self, mi: int) -> Any:
        def hook(module: Any, args: Any) -> None:
            if args and isinstance(args[0], torch.Tensor):
                self.inputs[mi] = args[0]
        return hook

    def new_step(self) -> None:
        self.norms = [self._zero] * len(self.param_module)
        self.order = [-1] * len(self.modules)
        self._count = 0

    def check(self, want_norms: bool) -> tuple[bool, Any]:
        """(all gradients finite, per-module pre-clip gradient norms on the CPU or None)."""
        if not self.param_module:
            return True, None
        try:
            stacked = torch.stack(self.norms).float()
        except RuntimeError:  # parameters on several devices
            stacked = torch.stack([n.float().cpu() for n in self.norms])
        per_module = None
        if want_norms:
            squares = torch.zeros(len(self.modules), dtype=torch.float64)
            squares.index_add_(0, self._index, stacked.double().cpu() ** 2)
            per_module = squares.sqrt()
            finite = bool(torch.isfinite(per_module).all())
        else:
            finite = bool(torch.isfinite(stacked).all())
        return finite, per_module

    def report(self, step: int, loss_finite: bool | None = None) -> dict[str, Any]:
        """What the hooks saw at a step whose gradients were not all finite."""
        norms = torch.stack([n.float().cpu() for n in self.norms])
        bad = sorted({self.param_module[i] for i in range(len(norms)) if not math.isfinite(float(norms[i]))})
        fired = [mi for mi in bad if self.order[mi] >= 0]
        first = min(fired, key=lambda mi: self.order[mi]) if fired else bad[0]
        paths = [m.path for m in self.modules]
        x = self.inputs[first]
        input_norm = float(torch.linalg.vector_norm(x.detach().float())) if x is not None else None
        bad_input = next((mi for mi, t in enumerate(self.inputs)
                          if t is not None and not bool(torch.isfinite(t.detach()).all())), None)
        text = f"first non-finite gradient at step {step}: {paths[first]}"
        text += f" (input norm {input_norm:.3g})" if input_norm is not None else ""
        if len(bad) > 1:
            text += (f"; {len(bad)} of {len(paths)} adapted modules non-finite, earliest in forward order "
                     f"{paths[bad[0]]}")
        if bad_input is not None:
            text += f"; first non-finite input (forward order): {paths[bad_input]}"
        return {"step": step, "path": paths[first], "input_norm": input_norm, "modules": [paths[i] for i in bad],
                "backward_order": [paths[i] for i in sorted(fired, key=lambda mi: self.order[mi])],
                "first_bad_input": paths[bad_input] if bad_input is not None else None, "text": text}

    def drop_inputs(self) -> None:
        self.inputs = [None] * len(self.modules)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self.drop_inputs()
