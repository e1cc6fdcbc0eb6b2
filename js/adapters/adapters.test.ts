// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { mount, type Model } from "./index";
import type { AdapterRow } from "./types";

class FakeModel implements Model {
  sent: any[] = [];
  private handlers = new Map<string, Set<(...a: any[]) => void>>();
  constructor(private traits: Record<string, any>) {}
  get(name: string) { return this.traits[name]; }
  set(name: string, value: any) { this.traits[name] = value; for (const cb of this.handlers.get(`change:${name}`) ?? []) cb(); }
  on(event: string, cb: (...a: any[]) => void) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(cb);
  }
  off(event: string, cb: (...a: any[]) => void) { this.handlers.get(event)?.delete(cb); }
  send(content: any) { this.sent.push(content); }
  listeners() { return [...this.handlers.values()].reduce((n, s) => n + s.size, 0); }
}

/** The last message the view sent. */
const last = (model: FakeModel) => model.sent[model.sent.length - 1];

function row(name: string, extra: Partial<AdapterRow> = {}): AdapterRow {
  return { name, method: "lora", targets: "q_proj, v_proj", ranks: "8", params: 12288, bytes: 49152, bytes_text: "48 KiB",
    source: "trained here", source_kind: "trained", run_folder: "", step: null, steps: [], active: false, ...extra };
}

function setup() {
  const model = new FakeModel({
    rows: [row("cards", { active: true }), row("chat", { source_kind: "checkpoint", step: 20, steps: [10, 20, 30], source: "run @ step 20" })],
    active: "cards", comparison: {}, merging: { types: ["linear", "cat", "ties"], preview: {} }, error: "", busy: false,
  });
  const root = document.createElement("div");
  document.body.appendChild(root);
  const cleanup = mount(model, root);
  return { model, root, cleanup };
}

describe("adapter bench view", () => {
  it("draws a row per adapter and sends activate, delete and disable", () => {
    const { model, root } = setup();
    const rows = root.querySelectorAll<HTMLTableRowElement>("tr.jp-peft-row");
    expect([...rows].map((r) => r.dataset.name)).toEqual(["cards", "chat"]);
    expect(rows[0].classList.contains("jp-peft-row-active")).toBe(true);
    expect(rows[1].textContent).toContain("12,288");
    const activate = rows[1].querySelector<HTMLButtonElement>(".jp-peft-activate")!;
    activate.click();
    expect(last(model)).toEqual({ kind: "activate", name: "chat" });
    rows[1].querySelector<HTMLButtonElement>(".jp-peft-delete")!.click();
    expect(last(model)).toEqual({ kind: "delete", name: "chat" });
    root.querySelector<HTMLButtonElement>(".jp-peft-disable")!.click();
    expect(last(model)).toEqual({ kind: "disable" });
    model.set("active", "");
    expect(root.querySelector(".jp-peft-status")!.textContent).toContain("base alone");
  });

  it("compares, marks cells that differ from the base, scrubs checkpoints", () => {
    const { model, root } = setup();
    root.querySelector<HTMLTextAreaElement>(".jp-peft-prompts")!.value = "a cat\n\nthe fox";
    root.querySelector<HTMLButtonElement>(".jp-peft-run")!.click();
    expect(last(model)).toEqual({ kind: "compare", prompts: ["a cat", "the fox"], max_new_tokens: 32 });
    model.set("comparison", { prompts: ["a cat"], columns: ["cards", "chat", "base"], cells: [["x", "y", "y"]],
      differs: [[true, false, false]], how: "one batched generate", max_new_tokens: 32 });
    const cells = root.querySelectorAll<HTMLTableCellElement>(".jp-peft-out td[data-column]");
    expect([...cells].map((c) => c.classList.contains("jp-peft-differs"))).toEqual([true, false, false]);
    expect(root.querySelector(".jp-peft-how")!.textContent).toBe("one batched generate");
    const slider = root.querySelector<HTMLInputElement>("tr[data-name=chat] .jp-peft-slider")!;
    expect(slider.value).toBe("1");
    slider.value = "2";
    slider.dispatchEvent(new Event("change"));
    expect(last(model)).toEqual({ kind: "swap", name: "chat", step: 30 });
  });

  it("asks for the merge preview and shows it, then merges; cleans up", () => {
    const { model, root, cleanup } = setup();
    const inputs = root.querySelectorAll<HTMLInputElement>(".jp-peft-weights input");
    inputs[0].value = "0.7";
    inputs[1].value = "0.3";
    inputs[1].dispatchEvent(new Event("change"));
    expect(last(model)).toEqual({ kind: "preview", weights: { cards: 0.7, chat: 0.3 }, how: "linear", density: null, name: "merged" });
    model.set("merging", { types: ["linear", "cat", "ties"], preview: { text: "merged = linear(...): 100 parameters" } });
    expect(root.querySelector(".jp-peft-preview")!.textContent).toContain("100 parameters");
    root.querySelector<HTMLButtonElement>(".jp-peft-do-merge")!.click();
    expect(last(model).kind).toBe("merge");
    model.set("rows", [row("cards", { active: true }), row("chat"), row("merged")]);
    expect(root.querySelectorAll<HTMLInputElement>(".jp-peft-weights input")[0].value).toBe("0.7"); // kept
    cleanup();
    expect(model.listeners()).toBe(0);
    expect(root.children.length).toBe(0);
  });
});
