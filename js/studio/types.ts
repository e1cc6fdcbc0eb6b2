// The studio's state as Python sends it (jupyter_peft/widgets/studio.py, _studio_state.py).
// Every number here is computed in Python; the page only lays it out.

import type { ParamChartData } from "../common/param_chart";

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

export interface Numbers {
  trainable?: number;
  total?: number;
  percent?: number;
  added_bytes?: number;
  trainable_text?: string;
  total_text?: string;
  percent_text?: string;
  added_text?: string;
  other_text?: string;
  per_group?: Record<string, { targeted: number; trainable: number; text: string }>;
}

export interface Issue {
  key: string | null;
  message: string;
  choices: string[];
}

export interface Summary {
  model?: string;
  method?: string;
  adapter?: string;
  trainable?: number;
  trainable_text?: string;
  total_text?: string;
  percent_text?: string;
  rows?: { role: string; kind: string; targeted: string; rank: string; added: string }[];
  other?: [string, string][];
  untouched?: string[];
  bound_to?: string | null;
}

/** One part of the memory bar: `share` is its width in percent of the bar (Python's). */
export interface MemoryPart {
  name: string;
  bytes: number;
  text: string;
  color: string;
  help: string;
  share: number;
}

/** The memory panel (jupyter_peft/widgets/_memory_panel.py). */
export interface MemoryPanelState {
  state?: "ready" | "pending" | "error" | "off";
  pending?: boolean;
  message?: string;
  total_bytes?: number;
  total_text?: string;
  peak_text?: string;
  parts?: MemoryPart[];
  setup?: { batch_size: number; seq_len: number; gradient_checkpointing: boolean };
  setup_text?: string;
  gpu?: {
    name: string; bytes: number; fits: boolean; verdict: string; line: number | null;
    largest_batch: number | null; largest_batch_text: string;
  } | null;
  what_fits?: {
    rows?: { label: string; checkpointing: string; total_text: string; fits: boolean; largest_batch_text: string }[];
    advice?: { change: string; total_text: string; fits: boolean }[];
    error?: string;
  } | null;
}

export interface MemoryInputs {
  batch_size: number | null;
  seq_len: number | null;
  gradient_checkpointing: boolean | null;
  gpu: string;
  custom_gib: number;
  what_fits: boolean;
}

export interface State {
  model_info: { name: string; cls: string; task_type: string | null; total_text: string; total_short: string; modules: number };
  groups: Group[];
  method_choices: MethodChoice[];
  method: string;
  option_fields: OptionField[];
  options: Record<string, unknown>;
  defaults: { rank?: number; alpha?: number };
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
  status: string;
  timing: { kind?: string; ms?: number; seq?: number };
}

/** The part of anywidget's model the studio uses (a fake one in the tests). */
export interface WidgetModel {
  get<K extends keyof State>(name: K): State[K];
  on(event: string, callback: () => void): void;
  off(event: string, callback: () => void): void;
  send(content: Record<string, unknown>): void;
}

export type Command = Record<string, unknown> & { kind: string };
