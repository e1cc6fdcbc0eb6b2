// The runs table's wire types: its synced traits as Python sends them (jupyter_peft/ui/runs/widget.py;
// rows from records/catalog.py Record.row, the overlay from records/compare.py overlay) and the
// messages the page sends back. tests/records/test_runs_contract.py checks these against real traits.

import type { Empty } from "../common/types";

/** A column of the table, in order. */
export interface Column {
  key: string;
  label: string;
}

/** One run's line (`Record.row()`): null where it is unknown (a run that never evaluated...). */
export interface Row {
  name: string;
  trainer: string | null;
  method: string | null;
  r: number | null;
  targets: string | null;
  learning_rate: number | null;
  state: string;
  steps: number;
  max_steps: number | null;
  train_loss: number | null;
  eval_loss: number | null;
  eval_step: number | null;
  duration_s: number | null;
  started: string | null;
  reason: string;
}

/** One run's curve: `y` smoothed (EMA), `raw` as logged. */
export interface Trace {
  name: string;
  x: number[];
  y: number[];
  raw: number[];
}

/** A plan key whose values differ between the runs: one value per run, in `names` order. */
export interface DiffRow {
  key: string;
  values: unknown[];
}

/** What the Compare draws (records/compare.overlay). */
export interface Overlay {
  metric: string;
  x: "step" | "time";
  smooth: number;
  log_y: boolean;
  metrics: string[];
  traces: Trace[];
  names: string[];
  diff: DiffRow[];
}

/** The synced traits. */
export interface RunsState {
  runs_dir: string;
  columns: Column[];
  rows: Row[];
  selected: string[];
  metric: string;
  x: "step" | "time";
  smooth: number;
  log_y: boolean;
  overlay: Overlay | Empty<Overlay>;
  error: string;
}

/** To Python, routed on `kind`: draw these runs, read the folder again, send plotly. */
export type ToPython = { kind: "compare"; names: string[] } | { kind: "refresh" } | { kind: "plotly" };

/** The part of anywidget's model the view uses (a fake one in the tests). */
export interface Model {
  get<K extends keyof RunsState>(name: K): RunsState[K];
  set<K extends keyof RunsState>(name: K, value: RunsState[K]): void;
  save_changes(): void;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event: string, cb: (...args: any[]) => void): void;
  send(content: ToPython): void;
}
