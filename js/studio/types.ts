// The studio's state as Python sends it (jupyter_peft/ui/studio/widget.py, state.py,
// memory_panel.py), and the commands the page sends back. Every number here is computed in
// Python; the page only lays it out.
// tests/ui/test_contract.py checks these types against what Python really sends (every synced
// trait of real studios in many states, and one command of each kind): a key Python sends that
// is not declared here, a required key it does not send, or a wrong type fails it.

import type { ParamChartData } from "../common/param_chart";
import type { Empty } from "../common/types";

export interface Group {
  role: string;
  kind: string;
  section: string;
  block: "attention" | "mlp" | "other";
  count: number;
  layers: (number | null)[];
  shape: string;
  dtype: string;
  params: number;
  params_text: string;
  each_text: string | null;
  linear: boolean;
  parameter: string | null;
  adapted: boolean;
  template: string;
}

export interface MethodChoice {
  name: string;
  prompt_learning: boolean;
  targets_modules: boolean;
  per_group_rank: boolean;
  per_group_alpha: boolean;
  /** One line on what the method is, with its references ("" for peft's own methods). */
  description: string;
}

export interface OptionField {
  name: string;
  type: string;
  widget: "bool" | "int" | "float" | "choice" | "text" | "yaml";
  default: unknown;
  help: string;
  choices: unknown[];
  primary: boolean;
}

/** The live count of a valid plan (state.numbers); `{}` while the settings make none. */
export interface Count {
  trainable: number;
  total: number;
  percent: number;
  added_bytes: number;
  trainable_text: string;
  total_text: string;
  percent_text: string;
  /** The share and what it is of: "1.79% of 4,817,152 with the adapter (the model's 4,731,136 + 86,016)". */
  share_text: string;
  added_text: string;
  other_text: string;
  per_group: Record<string, { targeted: number; trainable: number; text: string }>;
}
export type Numbers = Count | Empty<Count>;

export interface Issue {
  key: string | null;
  message: string;
  choices: string[];
}

/** peft's summary after Apply (state.summary_record); `{}` before the first Apply. */
export interface AppliedSummary {
  model: string;
  method: string;
  adapter: string;
  trainable: number;
  trainable_text: string;
  total_text: string;
  percent_text: string;
  rows: { role: string; kind: string; targeted: string; rank: string; added: string }[];
  other: [string, string][];
  untouched: string[];
  bound_to: string | null;
  /** When Apply ran (the kernel's clock, HH:MM:SS). */
  applied_at: string;
  /** "" while the model still carries what the studio applied; else what changed since. */
  stale: string;
}
export type Summary = AppliedSummary | Empty<AppliedSummary>;

/** One part of the memory bar: `share` is its width in percent of the bar (Python's). */
export interface MemoryPart {
  name: string;
  bytes: number;
  text: string;
  color: string;
  help: string;
  share: number;
}

/** "What fits" (memory_panel.what_fits): the comparison and advice, or why there is none. */
export type WhatFits =
  | {
    rows: { label: string; checkpointing: string; total_text: string; fits: boolean; largest_batch_text: string }[];
    advice: { change: string; total_text: string; fits: boolean }[];
    error?: never;
  }
  | { error: string; rows?: never; advice?: never };

/** The memory panel with an estimate (memory_panel.panel); `pending` while a newer one is computed. */
export interface MemoryEstimate {
  state: "ready";
  pending: boolean;
  total_bytes: number;
  total_text: string;
  peak_text: string;
  parts: MemoryPart[];
  setup: { batch_size: number; seq_len: number; gradient_checkpointing: boolean };
  setup_text: string;
  /** Which batch of the data the estimate is for (its step and lengths), or why the plan's data is not used; "" without data. */
  data_text: string;
  gpu: {
    name: string; bytes: number; fits: boolean; verdict: string; line: number | null;
    largest_batch: number | null; largest_batch_text: string;
  } | null;
  what_fits: WhatFits | null;
  message?: never;
}

/** The memory panel (jupyter_peft/ui/studio/memory_panel.py): an estimate, the first one on its
 * way (memory_panel.pending), or words only (memory_panel.message: "error" or "off"). */
export type MemoryPanelState =
  | MemoryEstimate
  | ({ state: "pending"; pending: true } & Empty<Omit<MemoryEstimate, "state" | "pending">>)
  | ({ state: "error" | "off"; pending: boolean; message: string } & Empty<Omit<MemoryEstimate, "state" | "pending" | "message">>);

export interface MemoryInputs {
  batch_size: number | null;
  seq_len: number | null;
  gradient_checkpointing: boolean | null;
  gpu: string;
  custom_gib: number;
  what_fits: boolean;
}

/** The model (state.model_info): its notebook name, class, task type, parameters and modules. */
export interface ModelInfo {
  name: string;
  cls: string;
  task_type: string | null;
  total: number;
  total_text: string;
  total_short: string;
  modules: number;
}

export interface State {
  model_info: ModelInfo;
  groups: Group[];
  method_choices: MethodChoice[];
  method: string;
  option_fields: OptionField[];
  options: Record<string, unknown>;
  /** The rank and alpha a group gets when its own are unset; absent for a method without one, null when peft's default is None. */
  defaults: { rank?: number | null; alpha?: number | null };
  picked: Record<string, number[]>;
  ranks: Record<string, number>;
  alphas: Record<string, number>;
  targetable: Record<string, boolean | null>;
  field_errors: Record<string, string>;
  issues: Issue[];
  warnings: string[];
  numbers: Numbers;
  chart: ParamChartData;
  cell: string;
  memory: MemoryPanelState;
  memory_inputs: MemoryInputs;
  gpu_choices: { value: string; text: string }[];
  summary: Summary;
  status: "" | "applying" | "applied" | "failed";
  timing: Timing | Empty<Timing>;
}

/** The kernel's time on the last command (`{}` before the first): its kind and the `seq` the page gave it. */
export interface Timing {
  kind: Command["kind"];
  ms: number;
  seq: number | null;
}

/** The part of anywidget's model the studio uses (a fake one in the tests). */
export interface WidgetModel {
  get<K extends keyof State>(name: K): State[K];
  on(event: string, callback: () => void): void;
  off(event: string, callback: () => void): void;
  send(content: Command & { seq: number }): void;
}

/** What the memory panel's inputs send: text for the numbers, Python checks it ("" = default). */
export interface MemoryValues {
  batch_size: string;
  seq_len: string;
  custom_gib: string;
  gradient_checkpointing: boolean;
  gpu: string;
  what_fits: boolean;
}

export type PickCommand = { kind: "pick"; role: string; on: boolean; members?: number[] };
export type MemoryCommand = { kind: "memory" } & Partial<MemoryValues>;

/** A command the page sends (with a `seq`, see view.ts); Python routes it on `kind`. */
export type Command =
  | PickCommand
  | { kind: "preset"; name: string }
  | { kind: "method"; name: string }
  | { kind: "option"; name: string; value: unknown; widget: OptionField["widget"] }
  | { kind: "rank"; role: string; value: string | null }
  | { kind: "alpha"; role: string; value: string | null }
  | { kind: "apply" }
  | { kind: "view"; extension: boolean }
  | MemoryCommand;
