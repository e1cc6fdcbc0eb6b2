// The sweep dashboard's wire types: its synced traits as Python sends them (jupyter_peft/ui/sweep/widget.py,
// computed by ui/sweep/view.py from the Optuna study) and the messages the page sends back.
// tests/sweeps/test_sweep_widget.py checks these against the traits of a real sweep.

import type { Empty } from "../common/types";

export type SweepState = "ready" | "running" | "stopping" | "finished" | "stopped" | "failed";
export type TrialState = "complete" | "pruned" | "failed" | "running" | "waiting";

export interface Status {
  state: SweepState;
  title: string;
  message: string;
  error: string;
  metric: string;
  direction: "minimize" | "maximize";
}

export interface Progress {
  done: number;
  total: number;
  percent: number;
  elapsed_text: string;
  eta_text: string;
  text: string;
}

/** A swept value as the plan takes it (lists and mappings as their JSON text). */
export type Value = number | string | boolean | null;

export interface Trial {
  number: number;
  state: TrialState;
  value: number | null;
  params: Record<string, Value>;
  /** The metric at each evaluation: steps and values (what Optuna's pruner heard). */
  curve: { x: number[]; y: (number | null)[] };
  run: string;
  why: string;
}

export interface Best {
  number: number;
  value: number;
  params: Record<string, Value>;
  run: string;
}

/** Parallel coordinates in chart units (view.parcoords): axes with ticks at 0..1, a line per complete trial. */
export interface Parcoords {
  axes: { label: string; ticks: { y: number; text: string }[] }[];
  lines: { number: number; y: number[]; value: number; t: number }[];
  metric: string;
}

export interface SweepStateTraits {
  status: Status;
  progress: Progress;
  trials: Trial[];
  best: Best | Empty<Best>;
  parcoords: Parcoords | Empty<Parcoords>;
  cell: string;
}

/** To Python: Stop, and "send plotly" (js/common/plotly.ts). */
export type ToPython = { kind: "stop" } | { kind: "plotly" };

export interface Model {
  get<K extends keyof SweepStateTraits>(name: K): SweepStateTraits[K];
  on(event: string, cb: (...args: any[]) => void): void;
  off(event: string, cb: (...args: any[]) => void): void;
  send(content: ToPython): void;
}
