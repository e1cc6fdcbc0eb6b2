// The studio's page: header, method and presets, module tree, live numbers and chart, the
// options form, warnings, the %%peft cell with Write cell / Copy / Apply, and the summary.
// It renders the model's traits and sends commands; it computes no number itself.

import { copyText, extensionPresent, insertCell } from "./cell";
import { h, fill, Listeners } from "./dom";
import { OptionsForm } from "./form";
import { MemoryPanel } from "./memory";
import { TreeView } from "./tree";
import type { Command, MethodChoice, State, WidgetModel } from "./types";

const TRAITS: (keyof State)[] = [
  "model_info", "groups", "method_choices", "method", "option_fields", "options", "defaults", "picked",
  "ranks", "alphas", "targetable", "field_errors", "issues", "warnings", "numbers", "chart", "cell",
  "memory", "memory_inputs", "gpu_choices", "summary", "status", "timing",
];
export interface ChartLike {
  el: HTMLElement;
  update(chart: State["chart"]): void;
  purge(): void;
}

const PRESETS: [string, string][] = [["attention", "Attention"], ["mlp", "MLP"], ["all-linear", "All linear"], ["none", "None"]];

export function readState(model: WidgetModel): State {
  const state = {} as Record<string, unknown>;
  for (const name of TRAITS) state[name] = model.get(name);
  return state as unknown as State;
}

export class StudioView {
  readonly root: HTMLDivElement;
  private listeners = new Listeners();
  private tree: TreeView;
  private form: OptionsForm;
  private memory: MemoryPanel;
  private seq = 0;
  private sentAt = new Map<number, number>();
  /** The cell text "Write cell" last wrote, and when: the note says if the plan changed since. */
  private written: { text: string; at: string } | null = null;
  private pending = false;
  private built = { groups: null as unknown, fields: null as unknown, methods: null as unknown };
  private parts: Record<string, HTMLElement> = {};
  private drawnChart: State["chart"] | null = null;
  private chartFrame: number | null = null;

  /** `chart`: the plotly chart (index.ts); the tests run without one. */
  constructor(private model: WidgetModel, private chart: ChartLike | null = null) {
    const send = (c: Command) => this.send(c);
    this.tree = new TreeView(send);
    this.form = new OptionsForm(send);
    this.memory = new MemoryPanel(send);
    this.root = h("div", { class: "jp-peft-studio" });
    this.layout();
    this.listeners.on(this.root, "keydown", (e: KeyboardEvent) => this.keydown(e));
    for (const name of TRAITS) {
      const handler = () => this.schedule();
      model.on(`change:${name}`, handler);
      this.listeners.add(() => model.off(`change:${name}`, handler));
    }
  }

  /** Put the studio into `parent` and draw it (the chart measures its width once attached); tell
   * Python whether this page has the jupyter-peft extension (it then keeps the output's static
   * view up to date after each change: widget.py). */
  attach(parent: HTMLElement): void {
    parent.append(this.root);
    this.render();
    this.send({ kind: "view", extension: extensionPresent(parent.ownerDocument) });
  }

  send(command: Command): void {
    const seq = ++this.seq;
    this.sentAt.set(seq, performance.now());
    this.model.send({ ...command, seq });
  }

  /** Several traits change per command (one synced message): draw once after them. */
  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    queueMicrotask(() => {
      this.pending = false;
      this.render();
    });
  }

  destroy(): void {
    this.listeners.off();
    if (this.chartFrame !== null) cancelAnimationFrame(this.chartFrame);
    this.tree.destroy();
    this.form.destroy();
    this.memory.destroy();
    this.chart?.purge();
    this.root.remove();
  }

  private layout(): void {
    const p = this.parts;
    p.header = h("div", { class: "jp-peft-header" });
    p.method = h("select", { class: "jp-peft-method", "aria-label": "method" });
    p.presets = h("div", { class: "jp-peft-presets" });
    for (const [name, label] of PRESETS) {
      const button = h("button", { type: "button", "data-preset": name, text: label });
      this.listeners.on(button, "click", () => this.send({ kind: "preset", name }));
      p.presets.append(button);
    }
    const filter = h("input", { type: "search", class: "jp-peft-filter", placeholder: "filter groups (q_proj, mlp, vision…)", "aria-label": "filter groups" });
    this.listeners.on(filter, "input", () => {
      this.tree.setFilter(filter.value);
      this.render();
    });
    this.listeners.on(p.method, "change", () => this.send({ kind: "method", name: (p.method as HTMLSelectElement).value }));
    p.treeNote = h("div", { class: "jp-peft-note-line" });
    p.numbers = h("div", { class: "jp-peft-numbers" });
    p.warnings = h("div", { class: "jp-peft-warnings" });
    p.issues = h("div", { class: "jp-peft-issues" });
    p.formTitle = h("div", { class: "jp-peft-title" });
    p.cell = h("pre", { class: "jp-peft-cell" });
    p.cellNote = h("div", { class: "jp-peft-note-line" });
    p.write = h("button", { type: "button", class: "jp-peft-write", text: "Write cell" });
    p.copy = h("button", { type: "button", class: "jp-peft-copy", text: "Copy" });
    p.apply = h("button", { type: "button", class: "jp-peft-apply jp-peft-primary", text: "Apply" });
    p.status = h("span", { class: "jp-peft-status" });
    p.summary = h("div", { class: "jp-peft-summary" });
    this.listeners.on(p.write, "click", () => this.writeCell());
    this.listeners.on(p.copy, "click", () => this.copyCell());
    this.listeners.on(p.apply, "click", () => {
      p.status.textContent = "applying…";
      this.send({ kind: "apply" });
    });
    const left = h("div", { class: "jp-peft-left" }, p.treeNote, this.tree.el);
    const right = h("div", { class: "jp-peft-right" }, p.numbers);
    fill(
      this.root,
      p.header,
      h("div", { class: "jp-peft-bar" }, h("label", {}, "method ", p.method), p.presets, filter),
      h("div", { class: "jp-peft-main" }, left, right),
      h("div", { class: "jp-peft-main" }, this.chart ? this.chart.el : null, this.memory.el),
      p.warnings,
      p.issues,
      h("div", { class: "jp-peft-section" }, p.formTitle, this.form.el),
      h("div", { class: "jp-peft-section" }, h("div", { class: "jp-peft-title", text: "%%peft cell" }), p.cell,
        h("div", { class: "jp-peft-actions" }, p.write, p.copy, p.apply, p.status), p.cellNote),
      p.summary,
    );
  }

  /** Keys typed in the studio's fields are the field's, not the notebook's shortcuts (JupyterLab
   * listens on the document in the bubbling phase); Enter commits a field, as a form would. */
  private keydown(e: KeyboardEvent): void {
    const target = e.target as HTMLElement;
    if (!(target instanceof HTMLInputElement || target instanceof HTMLSelectElement)) return;
    e.stopPropagation();
    if (e.key === "Enter" && target instanceof HTMLInputElement && target.type !== "checkbox") {
      e.preventDefault();
      target.blur(); // fires "change" when the value changed
    }
  }

  private render(): void {
    const state = readState(this.model);
    const method = state.method_choices.find((m) => m.name === state.method);
    if (this.built.groups !== state.groups) {
      this.tree.build(state.groups);
      this.built.groups = state.groups;
    }
    if (this.built.fields !== state.option_fields) {
      this.form.build(state.option_fields);
      this.built.fields = state.option_fields;
    }
    if (this.built.methods !== state.method_choices) {
      this.buildMethods(state.method_choices);
      this.built.methods = state.method_choices;
    }
    (this.parts.method as HTMLSelectElement).value = state.method;
    this.renderHeader(state);
    this.tree.update(state, Boolean(method?.per_group_rank), Boolean(method?.per_group_alpha));
    this.parts.treeNote.textContent = method && !method.targets_modules
      ? `${method.name} learns virtual tokens: it adapts no modules.` : method?.description ?? "";
    this.form.update(state);
    this.parts.formTitle.textContent = `${state.method} options (from peft's ${state.method} config)`;
    this.renderNumbers(state);
    this.memory.update(state);
    this.renderMessages(state);
    this.renderCell(state);
    this.renderSummary(state);
    this.noteRoundTrip(state);
    if (this.chart && state.chart !== this.drawnChart) this.scheduleChart(state.chart);
  }

  /** The chart follows a frame after the numbers: plotly takes ~20 ms, the count should not
   * wait for it; and it is redrawn only when Python sent new chart data. */
  private scheduleChart(chart: State["chart"]): void {
    this.drawnChart = chart;
    if (this.chartFrame !== null) cancelAnimationFrame(this.chartFrame);
    this.chartFrame = requestAnimationFrame(() => {
      this.chartFrame = null;
      this.chart?.update(chart);
    });
  }

  private buildMethods(choices: MethodChoice[]): void {
    fill(this.parts.method, ...choices.map((m) => h("option", { value: m.name, text: m.name, title: m.description })));
  }

  private renderHeader(state: State): void {
    const info = state.model_info;
    fill(
      this.parts.header,
      h("span", { class: "jp-peft-model", text: info.cls }),
      h("span", { class: "jp-peft-muted", text: ` ${info.name} · ${info.total_text} parameters · ${info.modules} modules` }),
      info.task_type ? h("span", { class: "jp-peft-muted", text: ` · task ${info.task_type}` }) : null,
    );
  }

  private renderNumbers(state: State): void {
    const n = state.numbers;
    const known = n.trainable !== undefined;
    fill(
      this.parts.numbers,
      h("div", { class: "jp-peft-label", text: "trainable parameters" }),
      h("div", { class: "jp-peft-big", "data-value": known ? String(n.trainable) : "", text: known ? n.trainable_text! : "—" }),
      h("div", { class: "jp-peft-muted jp-peft-share", text: known ? n.share_text! : "no valid plan yet" }),
      known ? h("div", { class: "jp-peft-muted", text: `adapter weights +${n.added_text}` }) : null,
      n.other_text ? h("div", { class: "jp-peft-muted", text: `of which outside adapted layers: ${n.other_text}` }) : null,
    );
  }

  private renderMessages(state: State): void {
    fill(this.parts.warnings, ...state.warnings.map((w) => h("div", { class: "jp-peft-warning", text: `⚠ ${w}` })));
    const fieldKeys = new Set(state.option_fields.map((f) => f.name));
    const general = state.issues.filter((i) => !i.key || !fieldKeys.has(i.key));
    fill(
      this.parts.issues,
      ...general.map((i) => h("div", { class: "jp-peft-error", text: i.message })),
      state.field_errors.selection ? h("div", { class: "jp-peft-error", text: state.field_errors.selection }) : null,
      state.field_errors.method ? h("div", { class: "jp-peft-error", text: state.field_errors.method }) : null,
      state.field_errors.preset ? h("div", { class: "jp-peft-error", text: state.field_errors.preset }) : null,
    );
  }

  private renderCell(state: State): void {
    const p = this.parts;
    p.cell.textContent = state.cell || "(no valid plan: see the messages above)";
    (p.write as HTMLButtonElement).disabled = !state.cell;
    (p.copy as HTMLButtonElement).disabled = !state.cell;
    (p.apply as HTMLButtonElement).disabled = !state.cell || state.status === "applying";
    p.write.title = extensionPresent() ? "insert this cell below" : "needs the jupyter-peft JupyterLab extension: use Copy";
    if (this.written && state.cell !== this.written.text) {
      p.cellNote.textContent = `written below at ${this.written.at}; the plan has changed since`;
    } else if (this.written) {
      p.cellNote.textContent = `written below this cell at ${this.written.at}`;
    }
    if (state.status === "applied") p.status.textContent = "applied";
    else if (state.status === "failed") p.status.textContent = "not applied: see the message above";
    else if (state.status !== "applying") p.status.textContent = "";
  }

  private renderSummary(state: State): void {
    const s = state.summary;
    if (!s.rows) {
      fill(this.parts.summary);
      return;
    }
    const same = !s.stale && s.trainable === state.numbers.trainable;
    const rows = s.rows.map((r) =>
      h("tr", {}, h("td", { text: r.role }), h("td", { text: r.kind }), h("td", { text: r.targeted }),
        h("td", { text: r.rank }), h("td", { class: "jp-peft-num", text: r.added })));
    const other = (s.other ?? []).map(([name, n]) => h("tr", {}, h("td", { colspan: 4, text: name }), h("td", { class: "jp-peft-num", text: n })));
    fill(
      this.parts.summary,
      h("div", { class: "jp-peft-title", text: `applied at ${s.applied_at}` + (s.bound_to ? ` → ${s.bound_to}` : "") }),
      s.stale ? h("div", { class: "jp-peft-warning", text: `no longer true: ${s.stale}. Below is what was applied at ${s.applied_at}.` }) : null,
      h("div", {}, `${s.method} adapter '${s.adapter}' on ${s.model}: `, h("b", { text: s.trainable_text! }),
        ` trainable of ${s.total_text} (${s.percent_text})`,
        h("span", { class: same ? "jp-peft-ok" : "jp-peft-muted", text: same ? " · same as the preview ✓" : "" })),
      h("table", { class: "jp-peft-table" },
        h("thead", {}, h("tr", {}, ...["group", "kind", "targeted", "rank", "added"].map((t) => h("th", { text: t })))),
        h("tbody", {}, ...rows, ...other)),
      s.untouched?.length ? h("div", { class: "jp-peft-muted", text: `frozen: ${s.untouched.join(", ")}` }) : null,
    );
  }

  /** Round trip of the last command (click sent -> its state drawn), on the root for tools. */
  private noteRoundTrip(state: State): void {
    const seq = state.timing?.seq;
    if (seq === undefined || seq === null || !this.sentAt.has(seq)) return;
    const ms = performance.now() - this.sentAt.get(seq)!;
    this.sentAt.delete(seq);
    this.root.dataset.roundTripMs = ms.toFixed(1);
    this.root.dataset.kernelMs = String(state.timing.ms ?? "");
    this.root.dataset.seq = String(seq);
  }

  private writeCell(): void {
    const text = this.model.get("cell");
    if (!text) return;
    const done = insertCell(this.root, text);
    this.written = done ? { text, at: new Date().toTimeString().slice(0, 8) } : null;
    this.parts.cellNote.textContent = done
      ? `written below this cell at ${this.written!.at}`
      : "this front end cannot insert cells (no jupyter-peft extension): copy the text above into a new cell";
    if (!done) void copyText(text, this.parts.cell);
  }

  private copyCell(): void {
    const text = this.model.get("cell");
    if (!text) return;
    void copyText(text, this.parts.cell).then((ok) => {
      this.parts.cellNote.textContent = ok ? "copied" : "selected: press Ctrl+C to copy";
    });
  }
}
