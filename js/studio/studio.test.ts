// @vitest-environment happy-dom
// The studio's view against a fake anywidget model: what clicks send, and how the state that
// comes back is drawn. The maths are Python's (tests/test_studio.py); here only the view.

import { afterEach, describe, expect, it, vi } from "vitest";
import { asText, fieldCommand } from "./form";
import { STYLE } from "./style";
import { groupClick, layerClick, matchesFilter, memberMatches, moduleText, tickState, TYPE_DELAY_MS } from "./tree";
import type { Group, MemoryEstimate, OptionField, State, WidgetModel } from "./types";
import { StudioView } from "./view";

function group(role: string, count = 4, extra: Partial<Group> = {}): Group {
  return {
    role, kind: "Linear", section: "language", block: "attention", count,
    layers: Array.from({ length: count }, (_, i) => i), shape: "64×64", dtype: "float32",
    params: 4096 * count, params_text: "16.4K", each_text: "4.1K", linear: true, parameter: null,
    adapted: false, template: `model.layers.*.${role}`, ...extra,
  };
}

const FIELDS: OptionField[] = [
  { name: "r", type: "int", widget: "int", default: 8, help: "Lora attention dimension", choices: [], primary: true },
  { name: "use_rslora", type: "bool", widget: "bool", default: false, help: "rank-stabilized", choices: [], primary: true },
  { name: "bias", type: "one of 'none', 'all'", widget: "choice", default: "none", help: "bias", choices: ["none", "all"], primary: true },
  { name: "exclude_modules", type: "list of str or str or null", widget: "yaml", default: null, help: "", choices: [], primary: false },
];

function baseState(): State {
  return {
    model_info: { name: "model", cls: "LlamaForCausalLM", task_type: "CAUSAL_LM", total: 106816, total_text: "106,816", total_short: "106.8K", modules: 21 },
    groups: [group("self_attn.q_proj"), group("mlp.down_proj", 4, { block: "mlp" }), group("lm_head", 1, { section: "head" })],
    method_choices: [
      { name: "lora", prompt_learning: false, targets_modules: true, per_group_rank: true, per_group_alpha: true, description: "" },
      { name: "prefix_tuning", prompt_learning: true, targets_modules: false, per_group_rank: false, per_group_alpha: false, description: "" },
    ],
    method: "lora", option_fields: FIELDS, options: {}, defaults: { rank: 8, alpha: 8 },
    picked: { "self_attn.q_proj": [0, 1, 2, 3] }, ranks: {}, alphas: {},
    targetable: { "self_attn.q_proj": true, "mlp.down_proj": true, lm_head: true },
    field_errors: {}, issues: [], warnings: [],
    numbers: { trainable: 2048, total: 108864, percent: 1.88, added_bytes: 8192, trainable_text: "2,048", percent_text: "1.88%",
      share_text: "1.88% of 108,864 with the adapter (the model's 106,816 + 2,048)",
      total_text: "108,864", added_text: "8.0 KiB", other_text: "",
      per_group: { "self_attn.q_proj": { targeted: 4, trainable: 2048, text: "2,048" } } },
    chart: { title: "", trainable: 2048, total: 108864, rows: [] }, cell: "%%peft model\nmethod: lora\ntarget_modules: [q_proj]\n",
    memory: { state: "pending", pending: true }, summary: {}, status: "", timing: {},
    memory_inputs: { batch_size: null, seq_len: null, gradient_checkpointing: null, gpu: "A100-80GB", custom_gib: 24, what_fits: false },
    gpu_choices: [{ value: "L4-24GB", text: "L4-24GB · 22.49 GiB" }, { value: "A100-80GB", text: "A100-80GB · 80.00 GiB" },
      { value: "custom", text: "custom size (GiB)" }],
  };
}

class FakeModel implements WidgetModel {
  sent: Record<string, unknown>[] = [];
  handlers = new Map<string, Set<() => void>>();
  constructor(public state: State) {}
  get<K extends keyof State>(name: K): State[K] {
    return this.state[name];
  }
  on(event: string, cb: () => void): void {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(cb);
  }
  off(event: string, cb: () => void): void {
    this.handlers.get(event)?.delete(cb);
  }
  send(content: Record<string, unknown>): void {
    this.sent.push(content);
  }
  /** What Python does: change traits, then the page hears about each. */
  async set(changes: Partial<State>): Promise<void> {
    Object.assign(this.state, changes);
    for (const name of Object.keys(changes)) for (const cb of this.handlers.get(`change:${name}`) ?? []) cb();
    await Promise.resolve();
  }
  listening(): number {
    let n = 0;
    for (const set of this.handlers.values()) n += set.size;
    return n;
  }
}

const last = (model: FakeModel) => model.sent[model.sent.length - 1];

let view: StudioView | null = null;
function mount(state = baseState()): { model: FakeModel; root: HTMLElement } {
  const model = new FakeModel(state);
  view = new StudioView(model);
  view.attach(document.body);
  return { model, root: view.root };
}
afterEach(() => {
  view?.destroy();
  view = null;
  document.body.replaceChildren();
});

const row = (root: HTMLElement, role: string) =>
  [...root.querySelectorAll<HTMLTableRowElement>("tr.jp-peft-group")].find((tr) => tr.dataset.role === role)!;
const box = (root: HTMLElement, role: string) => row(root, role).querySelector("input[type=checkbox]") as HTMLInputElement;

describe("tree logic", () => {
  it("tick state of a group from its ticked members", () => {
    expect(tickState(undefined, 4)).toBe("none");
    expect(tickState([1], 4)).toBe("some");
    expect(tickState([0, 1, 2, 3], 4)).toBe("all");
  });

  it("a click on a group ticks it all, or unticks it when all are ticked", () => {
    expect(groupClick(group("q"), [0])).toEqual({ kind: "pick", role: "q", on: true });
    expect(groupClick(group("q"), [0, 1, 2, 3])).toEqual({ kind: "pick", role: "q", on: false });
  });

  it("shift-click on a layer sends the range from the last clicked layer", () => {
    expect(layerClick("q", 5, true, 2, true)).toEqual({ kind: "pick", role: "q", members: [2, 3, 4, 5], on: true });
    expect(layerClick("q", 1, false, 6, true).members).toEqual([1, 2, 3, 4, 5, 6]);
    expect(layerClick("q", 5, true, 2, false).members).toEqual([5]);
  });

  it("the filter matches every word against role, kind, section and block", () => {
    const g = group("self_attn.q_proj");
    expect(matchesFilter(g, "q_proj")).toBe(true);
    expect(matchesFilter(g, "ATTENTION linear")).toBe(true);
    expect(matchesFilter(g, "mlp")).toBe(false);
    expect(matchesFilter(g, "")).toBe(true);
    expect(moduleText(g)).toBe("Linear 64×64 float32");
  });
});

describe("studio view", () => {
  it("draws the groups with their tick states and Python's numbers", async () => {
    const { model, root } = mount();
    expect(box(root, "self_attn.q_proj").checked).toBe(true);
    expect(box(root, "mlp.down_proj").checked).toBe(false);
    expect(root.querySelector(".jp-peft-big")!.textContent).toBe("2,048");
    expect(root.querySelector(".jp-peft-big")!.getAttribute("data-value")).toBe("2048");
    await model.set({ picked: { "mlp.down_proj": [1] }, numbers: {} });
    expect(box(root, "self_attn.q_proj").checked).toBe(false);
    expect(box(root, "mlp.down_proj").indeterminate).toBe(true);
    expect(root.querySelector(".jp-peft-big")!.textContent).toBe("—");
  });

  it("a click sends a command and leaves the box to Python's answer", async () => {
    const { model, root } = mount();
    box(root, "mlp.down_proj").click();
    expect(last(model)).toMatchObject({ kind: "pick", role: "mlp.down_proj", on: true });
    expect(box(root, "mlp.down_proj").checked).toBe(false);
    await model.set({ picked: { ...model.state.picked, "mlp.down_proj": [0, 1, 2, 3] } });
    expect(box(root, "mlp.down_proj").checked).toBe(true);
  });

  it("expands a group to one box per layer; shift-click sends a range", async () => {
    const { model, root } = mount();
    (row(root, "mlp.down_proj").querySelector(".jp-peft-toggle") as HTMLButtonElement).click();
    const layers = root.querySelectorAll<HTMLInputElement>(".jp-peft-layers:not([hidden]) .jp-peft-grid input");
    expect(layers.length).toBe(4);
    layers[1].click();
    expect(last(model)).toMatchObject({ kind: "pick", role: "mlp.down_proj", members: [1], on: true });
    await model.set({ picked: { "mlp.down_proj": [1] } });
    expect(layers[1].checked).toBe(true);
    layers[3].dispatchEvent(new MouseEvent("click", { shiftKey: true, bubbles: true, cancelable: true }));
    expect(last(model)).toMatchObject({ members: [1, 2, 3], on: true });
  });

  it("the filter box hides groups that do not match", () => {
    const { root } = mount();
    const filter = root.querySelector(".jp-peft-filter") as HTMLInputElement;
    filter.value = "mlp";
    filter.dispatchEvent(new Event("input"));
    expect(row(root, "self_attn.q_proj").hidden).toBe(true);
    expect(row(root, "mlp.down_proj").hidden).toBe(false);
  });

  it("rank inputs send text for Python to check, and show its message inline", async () => {
    const { model, root } = mount();
    const rank = row(root, "mlp.down_proj").querySelector('input[aria-label^="rank"]') as HTMLInputElement;
    expect(rank.placeholder).toBe("8");
    rank.value = "0";
    rank.dispatchEvent(new Event("change"));
    expect(last(model)).toEqual(expect.objectContaining({ kind: "rank", role: "mlp.down_proj", value: "0" }));
    await model.set({ field_errors: { "ranks.mlp.down_proj": "0 is not valid: expected a positive integer" } });
    expect(rank.classList.contains("jp-peft-bad")).toBe(true);
    expect(root.textContent).toContain("0 is not valid: expected a positive integer");
  });

  it("presets and the method picker send commands; prompt learning says it adapts no module", async () => {
    const { model, root } = mount();
    (root.querySelector('[data-preset="mlp"]') as HTMLButtonElement).click();
    expect(last(model)).toMatchObject({ kind: "preset", name: "mlp" });
    const method = root.querySelector(".jp-peft-method") as HTMLSelectElement;
    method.value = "prefix_tuning";
    method.dispatchEvent(new Event("change"));
    expect(last(model)).toMatchObject({ kind: "method", name: "prefix_tuning" });
    await model.set({ method: "prefix_tuning", targetable: { "self_attn.q_proj": false, "mlp.down_proj": false, lm_head: false } });
    expect(box(root, "mlp.down_proj").disabled).toBe(true);
    expect(root.textContent).toContain("learns virtual tokens");
  });

  it("module names are text, never HTML", async () => {
    const evil = '<img src=x onerror="window.__pwned=1">';
    const { model, root } = mount();
    await model.set({ groups: [group(evil)], picked: {}, targetable: {}, warnings: [`Ticked ${evil}`],
      chart: { title: "", trainable: 0, total: 1, rows: [{ role: evil, frozen: 1, trainable: 0, frozen_text: "1", trainable_text: "0" }] } });
    expect(root.querySelector("img")).toBeNull();
    expect(row(root, evil).querySelector(".jp-peft-role span")!.textContent).toBe(evil);
    expect(root.querySelector(".jp-peft-warning")!.textContent).toContain(evil);
  });
});

describe("options form", () => {
  it("one field per option of peft's config, by widget kind", () => {
    const { root } = mount();
    const names = [...root.querySelectorAll(".jp-peft-field")].map((f) => f.getAttribute("data-option"));
    expect(names).toEqual(["r", "use_rslora", "bias", "exclude_modules"]);
    expect(root.querySelector(".jp-peft-form details summary")!.textContent).toBe("more options (1)");
    expect((root.querySelector('[data-option="r"] input') as HTMLInputElement).value).toBe("8");
  });

  it("sends typed values; Python's message shows under the field", async () => {
    const { model, root } = mount();
    const r = root.querySelector('[data-option="r"] input') as HTMLInputElement;
    r.value = "16";
    r.dispatchEvent(new Event("change"));
    expect(last(model)).toMatchObject({ kind: "option", name: "r", value: 16, widget: "int" });
    const rs = root.querySelector('[data-option="use_rslora"] input') as HTMLInputElement;
    rs.click();
    expect(last(model)).toMatchObject({ name: "use_rslora", value: true });
    const bias = root.querySelector('[data-option="bias"] select') as HTMLSelectElement;
    bias.value = "1";
    bias.dispatchEvent(new Event("change"));
    expect(last(model)).toMatchObject({ name: "bias", value: "all" });
    await model.set({ field_errors: { r: "0 is not valid: r must be a positive integer" } });
    expect(root.querySelector('[data-option="r"] .jp-peft-error')!.textContent).toContain("positive integer");
  });

  it("shows list values as YAML text", () => {
    expect(asText(["q_proj", "v_proj"])).toBe('["q_proj","v_proj"]');
    expect(asText(null)).toBe("");
    const input = document.createElement("input");
    input.value = "[lm_head]";
    expect(fieldCommand(FIELDS[3], input)).toMatchObject({ value: "[lm_head]", widget: "yaml" });
  });
});

describe("cell and cleanup", () => {
  it("Write cell asks the notebook extension, else offers the text to copy", () => {
    const { root } = mount();
    const write = root.querySelector(".jp-peft-write") as HTMLButtonElement;
    write.click();
    expect(root.textContent).toContain("copy the text above");
    let code = "";
    const listener = (e: Event) => {
      const detail = (e as CustomEvent<{ code: string; handled: boolean }>).detail;
      code = detail.code;
      detail.handled = true;
    };
    document.addEventListener("jupyter-peft:insert-cell", listener);
    write.click();
    document.removeEventListener("jupyter-peft:insert-cell", listener);
    expect(code).toBe("%%peft model\nmethod: lora\ntarget_modules: [q_proj]\n");
    expect(root.textContent).toContain("written below this cell");
  });

  it("a method with a description says what it is under the picker", async () => {
    const { model, root } = mount();
    const choices = [...model.get("method_choices"), { name: "bottleneck", prompt_learning: false, targets_modules: true,
      per_group_rank: false, per_group_alpha: false, description: "Bottleneck adapters (Houlsby et al. 2019)" }];
    await model.set({ method_choices: choices, method: "bottleneck" });
    expect(root.textContent).toContain("Bottleneck adapters (Houlsby et al. 2019)");
    expect(root.querySelector<HTMLOptionElement>("option[value=bottleneck]")!.title).toContain("Houlsby");
  });

  it("the written-cell note says when the plan changed since it was written", async () => {
    const { model, root } = mount();
    const listener = (e: Event) => { (e as CustomEvent<{ handled: boolean }>).detail.handled = true; };
    document.addEventListener("jupyter-peft:insert-cell", listener);
    (root.querySelector(".jp-peft-write") as HTMLButtonElement).click();
    document.removeEventListener("jupyter-peft:insert-cell", listener);
    const note = root.querySelector(".jp-peft-actions + .jp-peft-note-line")!;
    expect(note.textContent).toMatch(/^written below this cell at \d\d:\d\d:\d\d$/);
    await model.set({ cell: "%%peft model\nmethod: ia3\n" });
    expect(note.textContent).toMatch(/^written below at \d\d:\d\d:\d\d; the plan has changed since$/);
  });

  it("an applied summary that a later cell made untrue says so instead of a tick", async () => {
    const { model, root } = mount();
    const summary = {
      model: "LlamaForCausalLM", method: "lora", adapter: "default", trainable: 2048, trainable_text: "2,048",
      total_text: "110,000", percent_text: "1.8%", rows: [], other: [], untouched: [], bound_to: "peft_model",
      applied_at: "10:01:02", stale: "",
    };
    await model.set({ summary });  // the preview's count is 2,048 too
    expect(root.textContent).toContain("applied at 10:01:02 → peft_model");
    expect(root.textContent).toContain("same as the preview ✓");
    await model.set({ summary: { ...summary, stale: "adapter 'default' was replaced by a later plan" } });
    expect(root.textContent).toContain("no longer true: adapter 'default' was replaced by a later plan");
    expect(root.textContent).not.toContain("same as the preview ✓");
  });

  it("Apply sends a command and is off while the settings make no plan", async () => {
    const { model, root } = mount();
    const apply = root.querySelector(".jp-peft-apply") as HTMLButtonElement;
    apply.click();
    expect(last(model)).toMatchObject({ kind: "apply" });
    await model.set({ cell: "", issues: [{ key: "target_modules", message: "no modules selected", choices: [] }] });
    expect(apply.disabled).toBe(true);
    expect(root.querySelector(".jp-peft-issues")!.textContent).toContain("no modules selected");
  });

  it("cleanup removes every listener from the model and the page", () => {
    const { model, root } = mount();
    expect(model.listening()).toBeGreaterThan(0);
    view!.destroy();
    view = null;
    expect(model.listening()).toBe(0);
    expect(root.isConnected).toBe(false);
  });
});

describe("memory panel", () => {
  // what _memory_panel.panel() sends for a step that does not fit a 24 GiB card
  const READY: State["memory"] = {
    state: "ready", pending: false, total_bytes: 30064771072, total_text: "28.00 GiB",
    peak_text: "tensors at the peak 26.50 GiB (during head)",
    parts: [
      { name: "weights", bytes: 16106127360, text: "15.00 GiB", color: "#4c72b0", help: "base model weights", share: 53.571 },
      { name: "activations", bytes: 13958643712, text: "13.00 GiB", color: "#937860", help: "activations", share: 46.429 },
    ],
    setup: { batch_size: 8, seq_len: 1024, gradient_checkpointing: false },
    setup_text: "lora · batch 8 × 1024 tokens · bfloat16 · no checkpointing · adamw_torch_fused",
    data_text: "at the longest batch of ds: step 3 of 5, 8 rows × 412 tokens (row lengths 412, 380)",
    gpu: { name: "L4-24GB", bytes: 24152899584, fits: false, verdict: "does not fit on L4-24GB: 5.51 GiB over",
      line: 80.34, largest_batch: 3, largest_batch_text: "largest batch that fits: 3" },
    what_fits: null,
  };
  const panel = (root: HTMLElement) => root.querySelector(".jp-peft-memory") as HTMLElement;
  const input = (root: HTMLElement, label: string) => root.querySelector(`[aria-label="${label}"]`) as HTMLInputElement;

  it("pending before the first estimate, then the numbers Python sent", async () => {
    const { model, root } = mount({ ...baseState(), memory: { state: "pending", pending: true } });
    expect(panel(root).querySelector(".jp-peft-mem-status")!.textContent).toBe("estimating…");
    expect(panel(root).querySelector(".jp-peft-mem-total")!.textContent).toBe("—");
    await model.set({ memory: READY });
    expect(panel(root).querySelector(".jp-peft-mem-total")!.textContent).toBe("28.00 GiB");
    expect((panel(root).querySelector(".jp-peft-mem-total") as HTMLElement).dataset.bytes).toBe("30064771072");
    const parts = [...panel(root).querySelectorAll<HTMLElement>(".jp-peft-mem-bar .jp-peft-mem-part")];
    expect(parts.map((p) => [p.dataset.part, p.style.width])).toEqual([["weights", "53.571%"], ["activations", "46.429%"]]);
    expect((panel(root).querySelector(".jp-peft-mem-line") as HTMLElement).style.left).toBe("80.34%");
    expect(panel(root).querySelector(".jp-peft-mem-verdict")!.textContent).toBe("does not fit on L4-24GB: 5.51 GiB over");
    expect(panel(root).querySelector(".jp-peft-mem-verdict")!.classList.contains("jp-peft-error")).toBe(true);
    expect(panel(root).textContent).toContain("largest batch that fits: 3");
    expect(panel(root).textContent).toContain("13.00 GiB");
    // the batch of the data the estimate is for, under the settings
    const data = panel(root).querySelector(".jp-peft-mem-data") as HTMLElement;
    expect(data.textContent).toBe("at the longest batch of ds: step 3 of 5, 8 rows × 412 tokens (row lengths 412, 380)");
    expect(data.hidden).toBe(false);
    await model.set({ memory: { ...READY, data_text: "" } });
    expect((panel(root).querySelector(".jp-peft-mem-data") as HTMLElement).hidden).toBe(true);
    await model.set({ memory: READY });
    // inputs left unset show what the estimate used
    expect(input(root, "batch size").value).toBe("8");
    expect(input(root, "sequence length").value).toBe("1024");
    expect(input(root, "gradient checkpointing").checked).toBe(false);
  });

  it("no capacity line when the card holds the whole step", async () => {
    const { model, root } = mount({ ...baseState(), memory: READY });
    await model.set({ memory: { ...READY, gpu: { ...READY.gpu!, fits: true, line: null, verdict: "fits on A100-80GB: 35% used" } } });
    expect(panel(root).querySelector(".jp-peft-mem-line")).toBeNull();
    expect(panel(root).querySelector(".jp-peft-mem-verdict")!.classList.contains("jp-peft-ok")).toBe(true);
  });

  it("a new estimate on its way keeps the last numbers, marked pending", async () => {
    const { model, root } = mount({ ...baseState(), memory: READY });
    await model.set({ memory: { ...READY, pending: true } });
    expect(panel(root).classList.contains("jp-peft-pending")).toBe(true);
    expect(panel(root).querySelector(".jp-peft-mem-status")!.textContent).toBe("estimating…");
    expect(panel(root).querySelector(".jp-peft-mem-total")!.textContent).toBe("28.00 GiB");
  });

  it("an error shows as text, and the rest of the studio still works", async () => {
    const { model, root } = mount({ ...baseState(), memory: READY });
    await model.set({ memory: { state: "error", pending: false, message: "no memory estimate: Module has no transformers config" } });
    const status = panel(root).querySelector(".jp-peft-mem-status")!;
    expect(status.textContent).toBe("no memory estimate: Module has no transformers config");
    expect(status.classList.contains("jp-peft-error")).toBe(true);
    expect(panel(root).querySelectorAll(".jp-peft-mem-part")).toHaveLength(0);
    box(root, "mlp.down_proj").click();
    expect(last(model)).toMatchObject({ kind: "pick", role: "mlp.down_proj" });
  });

  it("inputs send memory commands for Python to check; its message shows in the panel", async () => {
    const { model, root } = mount({ ...baseState(), memory: READY });
    const batch = input(root, "batch size");
    batch.value = "4";
    batch.dispatchEvent(new Event("change"));
    expect(last(model)).toEqual(expect.objectContaining({ kind: "memory", batch_size: "4" }));
    input(root, "gradient checkpointing").click();
    expect(last(model)).toMatchObject({ kind: "memory", gradient_checkpointing: true });
    const gpu = root.querySelector(".jp-peft-mem-gpu") as HTMLSelectElement;
    expect([...gpu.options].map((o) => o.value)).toEqual(["L4-24GB", "A100-80GB", "custom"]);
    expect(gpu.value).toBe("A100-80GB");
    gpu.value = "custom";
    gpu.dispatchEvent(new Event("change"));
    expect(last(model)).toMatchObject({ kind: "memory", gpu: "custom" });
    expect(input(root, "GPU size in GiB").closest("label")!.hidden).toBe(true);
    await model.set({ memory_inputs: { ...model.state.memory_inputs, gpu: "custom" },
      field_errors: { "memory.seq_len": "'x' is not valid: expected a positive integer" } });
    expect(input(root, "GPU size in GiB").closest("label")!.hidden).toBe(false);
    expect(panel(root).querySelector(".jp-peft-mem-errors")!.textContent).toContain("expected a positive integer");
  });

  it("what fits opens on request and shows Python's comparison and advice", async () => {
    const { model, root } = mount({ ...baseState(), memory: READY });
    const details = panel(root).querySelector("details") as HTMLDetailsElement;
    details.open = true;
    details.dispatchEvent(new Event("toggle"));
    expect(last(model)).toMatchObject({ kind: "memory", what_fits: true });
    const sent = model.sent.length;
    await model.set({
      memory_inputs: { ...model.state.memory_inputs, what_fits: true },
      memory: { ...READY, what_fits: {
        rows: [{ label: "full fine-tuning", checkpointing: "off", total_text: "80.10 GiB", fits: false, largest_batch_text: "–" },
          { label: "lora r=8", checkpointing: "on", total_text: "17.20 GiB", fits: true, largest_batch_text: "12" }],
        advice: [{ change: "turn on gradient checkpointing", total_text: "17.20 GiB", fits: true }] } },
    });
    details.dispatchEvent(new Event("toggle")); // the page opening it echoes nothing back
    expect(model.sent.length).toBe(sent);
    const cells = [...panel(root).querySelectorAll(".jp-peft-mem-compare tbody tr")].map((tr) => tr.textContent);
    expect(cells).toEqual(["full fine-tuningoff80.10 GiBno–", "lora r=8on17.20 GiBfits12"]);
    expect(panel(root).querySelector(".jp-peft-mem-advice")!.textContent).toBe("turn on gradient checkpointing: 17.20 GiB fits");
  });
});

describe("issue 14: controls say only true things", () => {
  it("tells Python on attach whether the page has the jupyter-peft extension", () => {
    const { model } = mount();
    expect(model.sent[0]).toMatchObject({ kind: "view", extension: false });
  });

  it("shows the share with what it is of, as Python words it", () => {
    const { root } = mount();
    expect(root.querySelector(".jp-peft-share")!.textContent).toBe("1.88% of 108,864 with the adapter (the model's 106,816 + 2,048)");
  });

  it("a method without per-group ranks or alphas has no rank and alpha columns", async () => {
    const { model, root } = mount();
    const table = root.querySelector(".jp-peft-tree")!;
    expect(table.classList.contains("jp-peft-no-rank")).toBe(false);
    await model.set({ method: "ia3" });
    expect(table.classList.contains("jp-peft-no-rank")).toBe(true);
    expect(table.classList.contains("jp-peft-no-alpha")).toBe(true);
    // the stylesheet hides exactly those cells
    expect(STYLE).toContain(".jp-peft-tree.jp-peft-no-rank .jp-peft-c-rank");
    expect(row(root, "self_attn.q_proj").querySelectorAll(".jp-peft-c-rank, .jp-peft-c-alpha")).toHaveLength(2);
  });

  it("a rank goes to Python as it is typed, and at once on Enter, never twice", () => {
    vi.useFakeTimers();
    try {
      const { model, root } = mount();
      const rank = row(root, "self_attn.q_proj").querySelector<HTMLInputElement>("input[aria-label^='rank']")!;
      rank.focus();
      rank.value = "1";
      rank.dispatchEvent(new Event("input"));
      rank.value = "16";
      rank.dispatchEvent(new Event("input"));
      expect(model.sent.filter((c) => c.kind === "rank")).toHaveLength(0);
      vi.advanceTimersByTime(TYPE_DELAY_MS);
      expect(model.sent.filter((c) => c.kind === "rank")).toEqual([expect.objectContaining({ role: "self_attn.q_proj", value: "16" })]);
      rank.dispatchEvent(new Event("change")); // leaving the field: the same value, not sent again
      rank.value = "32";
      rank.dispatchEvent(new Event("change"));
      expect(model.sent.filter((c) => c.kind === "rank").map((c) => c.value)).toEqual(["16", "32"]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("the filter finds layers by their full path and opens the group on them", async () => {
    const g = group("self_attn.q_proj");
    expect(memberMatches(g, "layers.2")).toEqual([2]);
    expect(memberMatches(g, "q_proj")).toBeNull();
    expect(memberMatches(g, "mlp")).toEqual([]);
    expect(matchesFilter(g, "layers.2 q_proj")).toBe(true);
    const { root } = mount();
    const filter = root.querySelector<HTMLInputElement>(".jp-peft-filter")!;
    filter.value = "layers.2";
    filter.dispatchEvent(new Event("input"));
    const q = row(root, "self_attn.q_proj");
    expect(q.hidden).toBe(false);
    const layers = q.nextElementSibling!.nextElementSibling as HTMLElement; // note row, then layers row
    expect(layers.hidden).toBe(false);
    const marked = [...layers.querySelectorAll(".jp-peft-layer.jp-peft-match")].map((l) => l.textContent);
    expect(marked).toEqual(["2"]);
  });

  it("a filter that matches nothing says so", () => {
    const { root } = mount();
    const filter = root.querySelector<HTMLInputElement>(".jp-peft-filter")!;
    const empty = root.querySelector<HTMLElement>(".jp-peft-no-match")!;
    expect(empty.hidden).toBe(true);
    filter.value = "nothing_like_this";
    filter.dispatchEvent(new Event("input"));
    expect([...root.querySelectorAll<HTMLElement>("tr.jp-peft-group")].every((tr) => tr.hidden)).toBe(true);
    expect(empty.hidden).toBe(false);
    expect(empty.textContent).toBe("no group or module path matches “nothing_like_this”");
  });

  it("no plan to estimate (preset None) leaves batch and tokens as they were", async () => {
    const { model, root } = mount();
    const ready: MemoryEstimate = {
      state: "ready", pending: false, total_bytes: 1, total_text: "1 B", peak_text: "", parts: [],
      setup: { batch_size: 8, seq_len: 1024, gradient_checkpointing: false }, setup_text: "", data_text: "", gpu: null, what_fits: null,
    };
    await model.set({ memory: ready });
    const batch = root.querySelector<HTMLInputElement>("input[aria-label='batch size']")!;
    const tokens = root.querySelector<HTMLInputElement>("input[aria-label='sequence length']")!;
    expect([batch.value, tokens.value]).toEqual(["8", "1024"]);
    await model.set({ memory: { state: "off", pending: false, message: "no valid plan to estimate" } });
    expect([batch.value, tokens.value]).toEqual(["8", "1024"]);
  });
});
