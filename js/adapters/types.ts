// The adapter bench's wire types: its synced traits as Python sends them
// (jupyter_peft/ui/adapters/widget.py; values from jupyter_peft/adapter_bench/), and the commands
// the page sends back, routed on `kind`. tests/adapter_bench/test_widget.py checks these against
// what Python really sends.

import type { Empty } from "../common/types";

/** One adapter (`Adapters.rows()`). `steps` are the checkpoint steps of the run it came from. */
export interface AdapterRow {
  name: string;
  method: string;
  targets: string;
  ranks: string;
  params: number;
  bytes: number;
  bytes_text: string;
  source: string;
  source_kind: "trained" | "folder" | "checkpoint" | "merge";
  run_folder: string;
  step: number | null;
  steps: number[];
  active: boolean;
}

/** The last compare: a row of cells per prompt, one per column (adapters, then "base"), and which
 * cells differ from the base's. `how` says whether it was one mixed batch or a loop, and why. */
export interface Comparison {
  prompts: string[];
  columns: string[];
  cells: string[][];
  differs: boolean[][];
  how: string;
  max_new_tokens: number;
}

/** What a merge would make (adapter_bench/combine.py `preview`), before it runs. */
export interface MergePreview {
  adapters: string[];
  weights: number[];
  how: string;
  name: string;
  method: string;
  rank: number | null;
  params: number;
  bytes: number;
  layers: number;
  text: string;
}

export interface Merging {
  types: string[];
  preview: MergePreview | Empty<MergePreview>;
}

/** The synced traits. */
export interface AdaptersState {
  rows: AdapterRow[];
  active: string;
  comparison: Comparison | Empty<Comparison>;
  merging: Merging | Empty<Merging>;
  error: string;
  busy: boolean;
}

export interface MergeArgs {
  weights: Record<string, number>;
  how: string;
  density: number | null;
  name: string;
}

/** To Python, routed on `kind`. */
export type Command =
  | { kind: "activate"; name: string; hotswap?: boolean }
  | { kind: "disable" }
  | { kind: "delete"; name: string }
  | { kind: "rename"; old: string; new: string }
  | { kind: "compare"; prompts: string[]; max_new_tokens: number }
  | ({ kind: "preview" } & MergeArgs)
  | ({ kind: "merge" } & MergeArgs)
  | { kind: "swap"; name: string; step: number };

/** The part of anywidget's model the view uses (a fake one in the tests). */
export interface Model {
  get<K extends keyof AdaptersState>(name: K): AdaptersState[K];
  on(event: string, cb: (...args: any[]) => void): void;
  off(event: string, cb: (...args: any[]) => void): void;
  send(content: Command): void;
}
