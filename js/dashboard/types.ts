// The dashboard's wire types: its synced traits as Python sends them
// (jupyter_peft/ui/dashboard/widget.py; values from training/run.py and training/metrics.py),
// the custom messages Python sends, and the ones the page sends back.
// tests/ui/test_contract.py checks these types against what Python really sends (every trait
// and message of real runs): a key Python sends that is not declared here, a required key it
// does not send, or a wrong type fails it.

import type { ParamChartData } from "../common/param_chart";
import type { Empty } from "../common/types";
import type { SeriesMap } from "./series";

/** A run's state (training/run.py): "ready" is attached and not started. */
export type RunState = "ready" | "running" | "stopping" | "finished" | "stopped" | "failed";

/** The Resume button (view.resume): shown once a run has stopped, enabled when it can continue;
 * `title` says from which checkpoint, or why it cannot. */
export interface Resume {
  shown: boolean;
  enabled: boolean;
  title: string;
}

/** `view.status(run)`: the state line. `folder` and `checkpoint` are sent for tools; the page does not draw them. */
export interface Status {
  state: RunState;
  title: string;
  folder: string;
  message: string;
  error: string;
  checkpoint: string;
  resume: Resume;
}

/** `Run.progress()`: the bar's percent and the line of text; the numbers behind the text too. */
export interface Progress {
  step: number;
  max_steps: number | null;
  percent: number | null;
  epoch_text: string;
  elapsed_text: string;
  eta_text: string;
  text: string;
}

/** `Run.memory()`: measured memory and the estimate; the page shows `line`, which says both. */
export interface MemoryLine {
  label: string;
  bytes: number | null;
  text: string;
  estimate_bytes: number | null;
  estimate_text: string;
  line: string;
}

/** One chart (`view.panels(run)`, from `Tracker.panels()`): the logged keys it draws, the name of
 * each trace, its unit, the factor from logged values to that unit, and whether the axis starts at 0. */
export interface Panel {
  id: string;
  title: string;
  keys: string[];
  log_y: boolean;
  labels: Record<string, string>;
  unit: string;
  scale: number;
  from_zero: boolean;
}

/** A non-finite loss or grad norm at a step (`Tracker.flags`). */
export interface Flag {
  step: number;
  key: string;
  value: string;
}

/** The synced traits. */
export interface DashboardState {
  status: Status;
  progress: Progress;
  panels: Panel[];
  flags: Flag[];
  /** `{}` for a model without adapters. */
  params: ParamChartData | Empty<ParamChartData>;
  memory: MemoryLine;
  max_points: number;
}

/** From Python: new points only, or all points so far (the answer to "sync"); and plotly itself
 * (the answer to "plotly": its code is the message's one buffer, js/common/plotly.ts). */
/** Per-module diagnostics (jupyter_peft/ui/dashboard/modules.py, drawn by heatmap.ts): one sample is
 * `[step, values]`, `values[signal][module]` in the order of `ModulesMeta.signals` (null: not finite). */
export type ModuleSample = [number, (number | null)[][]];

/** What the heatmap's columns are: one entry per adapted module, in forward order. */
export interface ModulesMeta {
  paths: string[];
  groups: string[];
  layers: (number | null)[];
  ranks: (number | null)[];
  /** signal key -> its name, in the order of a sample's rows. */
  signals: Record<string, string>;
  every: number;
}

/** The first step whose gradients were not all finite (diagnostics/nan.py). */
export interface NanReport {
  step: number;
  path: string;
  input_norm: number | null;
  modules: string[];
  backward_order: string[];
  first_bad_input: string | null;
  text: string;
}

/** New samples only (and the NaN report once, when it happens); or the columns and every sample so
 * far; or the rank suggestion. */
export type ModulesMsg =
  | { kind: "modules"; samples: ModuleSample[]; nan?: NanReport }
  | { kind: "modules-reset"; meta: ModulesMeta; samples: ModuleSample[]; nan: NanReport | null }
  /** Once the run has ended: `run.suggest_ranks()` as a `%%peft` cell, and its reasoning. */
  | { kind: "modules-suggest"; cell: string; reasoning: string };

/** One sample generated while training (training/samples.py; ui/dashboard/samples.py sends it). */
export interface SampleRow {
  step: number;
  prompt: string;
  output: string;
  seconds: number;
}

/** New samples since the last message, or (`reset`) every sample so far: drawn by samples.ts. */
export type SamplesMsg = { kind: "samples"; rows: SampleRow[]; reset: boolean };

export type FromPython = { kind: "points" | "reset"; series: SeriesMap } | { kind: "plotly"; series?: never } | ModulesMsg | SamplesMsg;

/** To Python, routed on `kind`: Stop, Save now, Resume, "send me the history" (a new view), and
 * "send plotly" (the first chart on a page, js/common/plotly.ts). */
export type ToPython = { kind: "stop" } | { kind: "save" } | { kind: "resume" } | { kind: "sync" } | { kind: "plotly" };

/** The part of anywidget's model the dashboard uses (a fake one in the tests). */
export interface Model {
  get<K extends keyof DashboardState>(name: K): DashboardState[K];
  on(event: string, cb: (...args: any[]) => void): void;
  off(event: string, cb: (...args: any[]) => void): void;
  send(content: ToPython): void;
}
