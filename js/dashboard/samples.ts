// The dashboard's samples part: what the model generated while training (train: {samples: [...]}),
// as a table whose newest row is on top. Python (jupyter_peft/ui/dashboard/samples.py) sends
// {kind: "samples", rows, reset}: the rows since the last message, or all of them for a new view.
import { ensureStyle } from "../common/style";
import type { Part } from "./index";
import type { Model, SampleRow, SamplesMsg } from "./types";

const STYLE = `
.jp-peft-dashboard .jp-peft-samples { margin-top: 6px; }
.jp-peft-dashboard .jp-peft-samples table { border-collapse: collapse; font-size: 12px; }
.jp-peft-dashboard .jp-peft-samples td, .jp-peft-dashboard .jp-peft-samples th { padding: 2px 8px; text-align: left;
  vertical-align: top; border-bottom: 1px solid var(--jp-border-color2, #ddd); }
.jp-peft-dashboard .jp-peft-samples .jp-peft-sample-out { white-space: pre-wrap; }
`;

export function samplesPart(_model: Model, box: HTMLElement): Part {
  ensureStyle(box.ownerDocument, "dashboard-samples", STYLE);
  const wrap = document.createElement("div");
  wrap.className = "jp-peft-samples";
  wrap.hidden = true;
  const title = document.createElement("b");
  title.textContent = "samples while training";
  const table = document.createElement("table");
  const body = document.createElement("tbody");
  table.appendChild(body);
  wrap.append(title, table);
  box.appendChild(wrap);

  const line = (r: SampleRow) => {
    const tr = document.createElement("tr");
    tr.dataset.step = String(r.step);
    const cells: [string, string][] = [
      [`step ${r.step}`, "jp-peft-muted"], [r.prompt, "jp-peft-muted"], [r.output, "jp-peft-sample-out"],
      [`${r.seconds.toFixed(2)} s`, "jp-peft-muted"],
    ];
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      td.className = cls;
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  };
  return {
    onMsg(msg: any): boolean {
      if (msg?.kind !== "samples") return false;
      const m = msg as SamplesMsg;
      if (m.reset) body.replaceChildren();
      for (const r of m.rows) body.prepend(line(r)); // newest on top
      wrap.hidden = body.children.length === 0;
      return true;
    },
    dispose() { wrap.remove(); },
  };
}
