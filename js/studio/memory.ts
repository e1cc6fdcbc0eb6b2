// The memory panel: the estimate of one training step for the studio's plan, as Python sends
// it (jupyter_peft/widgets/_memory_panel.py): total, a stacked bar of the breakdown (with a
// line where a card too small for the step ends), whether it fits and the largest batch, the
// inputs (batch, sequence, checkpointing, GPU) and, under "what fits", full fine-tuning /
// LoRA / QLoRA side by side with what to change. Every number and label is Python's; bar
// widths are its `share`s.

import { h, fill, Listeners } from "./dom";
import type { Command, MemoryCommand, MemoryEstimate, MemoryInputs, MemoryPanelState, MemoryValues, State } from "./types";

/** The command an input sends; Python checks the value ("" means back to the default). */
export function memoryCommand<K extends keyof MemoryValues>(name: K, value: MemoryValues[K]): MemoryCommand {
  return { kind: "memory", [name]: value } as MemoryCommand;
}

export class MemoryPanel {
  readonly el: HTMLElement;
  private listeners = new Listeners();
  private p: Record<string, HTMLElement> = {};
  private inputs: Record<string, HTMLInputElement | HTMLSelectElement> = {};
  private choices: unknown = null;
  private whatFitsOpen = false;
  private lastSetup: MemoryEstimate["setup"] | null = null;

  constructor(private send: (command: Command) => void) {
    const p = this.p;
    p.total = h("div", { class: "jp-peft-big-2 jp-peft-mem-total" });
    p.status = h("div", { class: "jp-peft-muted jp-peft-mem-status" });
    p.bar = h("div", { class: "jp-peft-mem-bar", role: "img", "aria-label": "memory breakdown" });
    p.legend = h("div", { class: "jp-peft-mem-legend" });
    p.verdict = h("div", { class: "jp-peft-mem-verdict" });
    p.largest = h("div", { class: "jp-peft-muted jp-peft-mem-largest" });
    p.setup = h("div", { class: "jp-peft-muted jp-peft-mem-setup" });
    p.data = h("div", { class: "jp-peft-muted jp-peft-mem-data" });
    p.errors = h("div", { class: "jp-peft-error jp-peft-mem-errors" });
    p.fits = h("div", { class: "jp-peft-mem-fits" });
    const details = h("details", { class: "jp-peft-mem-what" }, h("summary", { text: "what fits" }), p.fits);
    this.listeners.on(details, "toggle", () => {
      if (details.open !== this.whatFitsOpen) this.send(memoryCommand("what_fits", details.open));
    });
    p.details = details;
    this.el = h(
      "div",
      { class: "jp-peft-memory" },
      h("div", { class: "jp-peft-label", text: "memory estimate (one training step)" }),
      p.total, p.status, p.bar, p.legend, p.verdict, p.largest, this.buildInputs(), p.errors, p.setup, p.data, details,
    );
  }

  private buildInputs(): HTMLElement {
    const number = (name: "batch_size" | "seq_len" | "custom_gib", label: string) => {
      const input = h("input", { type: "text", inputmode: "numeric", class: "jp-peft-small", "aria-label": label });
      this.listeners.on(input, "change", () => this.send(memoryCommand(name, input.value.trim())));
      this.inputs[name] = input;
      return input;
    };
    const ckpt = h("input", { type: "checkbox", "aria-label": "gradient checkpointing" });
    this.listeners.on(ckpt, "change", () => this.send(memoryCommand("gradient_checkpointing", ckpt.checked)));
    this.inputs.gradient_checkpointing = ckpt;
    const gpu = h("select", { class: "jp-peft-mem-gpu", "aria-label": "GPU" });
    this.listeners.on(gpu, "change", () => this.send(memoryCommand("gpu", gpu.value)));
    this.inputs.gpu = gpu;
    this.p.custom = h("label", {}, number("custom_gib", "GPU size in GiB"), " GiB");
    return h(
      "div",
      { class: "jp-peft-mem-inputs" },
      h("label", {}, "batch ", number("batch_size", "batch size")),
      h("label", {}, "tokens ", number("seq_len", "sequence length")),
      h("label", {}, ckpt, " gradient checkpointing"),
      h("label", {}, "GPU ", gpu),
      this.p.custom,
    );
  }

  update(state: State): void {
    const m: MemoryPanelState = state.memory ?? { state: "off", pending: false, message: "" };
    const inputs = state.memory_inputs;
    if (this.choices !== state.gpu_choices) {
      fill(this.inputs.gpu, ...(state.gpu_choices ?? []).map((c) => h("option", { value: c.value, text: c.text })));
      this.choices = state.gpu_choices;
    }
    if (inputs) this.showInputs(inputs, m);
    this.showEstimate(m);
    const errors = Object.entries(state.field_errors).filter(([k]) => k === "memory" || k.startsWith("memory."));
    fill(this.p.errors, ...errors.map(([, text]) => h("div", { text })));
  }

  private showInputs(inputs: MemoryInputs, m: MemoryPanelState): void {
    // an input shows the user's value, else the one the last estimate used (the plan's or the
    // default): a moment without a plan to estimate (preset None) leaves the fields as they were
    if (m.setup) this.lastSetup = m.setup;
    const setup = this.lastSetup;
    const shown: Record<string, unknown> = {
      batch_size: inputs.batch_size ?? setup?.batch_size ?? "",
      seq_len: inputs.seq_len ?? setup?.seq_len ?? "",
      custom_gib: inputs.custom_gib,
      gpu: inputs.gpu,
    };
    for (const [name, value] of Object.entries(shown)) {
      const input = this.inputs[name];
      if (document.activeElement !== input) input.value = String(value);
    }
    (this.inputs.gradient_checkpointing as HTMLInputElement).checked =
      inputs.gradient_checkpointing ?? setup?.gradient_checkpointing ?? false;
    this.p.custom.hidden = inputs.gpu !== "custom";
    this.whatFitsOpen = inputs.what_fits;
    (this.p.details as HTMLDetailsElement).open = inputs.what_fits;
  }

  private showEstimate(m: MemoryPanelState): void {
    const p = this.p;
    const ready = m.state === "ready";
    this.el.dataset.state = m.state ?? "";
    this.el.classList.toggle("jp-peft-pending", Boolean(m.pending));
    p.total.textContent = ready ? m.total_text! : "—";
    p.total.dataset.bytes = ready ? String(m.total_bytes) : "";
    p.status.textContent = m.pending ? "estimating…" : m.state === "ready" ? "" : m.message ?? "";
    p.status.classList.toggle("jp-peft-error", m.state === "error" && !m.pending);
    const parts = ready ? m.parts ?? [] : [];
    fill(
      p.bar,
      ...parts.map((part) => {
        const seg = h("span", { class: "jp-peft-mem-part", title: `${part.name}: ${part.text} (${part.help})`, "data-part": part.name });
        seg.style.width = `${part.share}%`;
        seg.style.background = part.color;
        return seg;
      }),
      ready && m.gpu && m.gpu.line !== null ? this.gpuLine(m.gpu.line, m.gpu.name) : null,
    );
    p.bar.hidden = !ready;
    fill(p.legend, ...parts.map((part) => h("div", { class: "jp-peft-mem-row", "data-part": part.name },
      h("span", { class: "jp-peft-swatch", style: `background:${part.color}` }),
      h("span", { text: part.name }), h("span", { class: "jp-peft-num", text: part.text }))));
    p.verdict.textContent = ready && m.gpu ? m.gpu.verdict : "";
    p.verdict.className = `jp-peft-mem-verdict ${ready && m.gpu ? (m.gpu.fits ? "jp-peft-ok" : "jp-peft-error") : ""}`;
    p.largest.textContent = ready && m.gpu ? m.gpu.largest_batch_text : "";
    p.setup.textContent = ready ? `${m.setup_text} · ${m.peak_text}` : "";
    p.data.textContent = ready ? m.data_text ?? "" : "";
    p.data.hidden = !p.data.textContent;
    this.showWhatFits(m);
  }

  private gpuLine(left: number, name: string): HTMLElement {
    const line = h("span", { class: "jp-peft-mem-line", title: name });
    line.style.left = `${Math.min(left, 100)}%`;
    return line;
  }

  private showWhatFits(m: MemoryPanelState): void {
    const w = m.what_fits;
    if (!w) {
      fill(this.p.fits, h("div", { class: "jp-peft-muted", text: m.state === "ready" ? "estimating…" : "" }));
      return;
    }
    if (w.error) {
      fill(this.p.fits, h("div", { class: "jp-peft-error", text: w.error }));
      return;
    }
    const rows = (w.rows ?? []).map((r) => h("tr", {},
      h("td", { text: r.label }), h("td", { text: r.checkpointing }), h("td", { class: "jp-peft-num", text: r.total_text }),
      h("td", { class: r.fits ? "jp-peft-ok" : "jp-peft-error", text: r.fits ? "fits" : "no" }),
      h("td", { class: "jp-peft-num", text: r.largest_batch_text })));
    const advice = w.advice ?? [];
    fill(
      this.p.fits,
      h("table", { class: "jp-peft-table jp-peft-mem-compare" },
        h("thead", {}, h("tr", {}, ...["", "ckpt", "memory", "", "max batch"].map((t) => h("th", { text: t })))),
        h("tbody", {}, ...rows)),
      advice.length ? h("div", { class: "jp-peft-title", text: "to fit:" }) : null,
      advice.length ? h("ul", { class: "jp-peft-mem-advice" }, ...advice.map((a) =>
        h("li", {}, `${a.change}: ${a.total_text}`, a.fits ? h("b", { class: "jp-peft-ok", text: " fits" }) : null))) : null,
    );
  }

  destroy(): void {
    this.listeners.off();
  }
}
