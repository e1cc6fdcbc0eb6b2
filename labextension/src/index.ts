// jupyter-peft: the notebook side of the studio's "Write cell" button.
//
// A widget cannot add cells through its comm (there is no execute payload for that), so the
// studio dispatches a DOM event, `jupyter-peft:insert-cell`, with the cell text; this plugin
// inserts a code cell with that text below the notebook cell whose output holds the widget
// (else below the active cell) and reports back through `event.detail.handled`. It marks
// <body data-jupyter-peft="1"> so the widget knows the button will work. Works in
// JupyterLab 4 and Notebook 7 (both provide INotebookTracker). A second plugin shows a widget's
// static view where the widget cannot be drawn (fallback.ts).

import type { JupyterFrontEnd, JupyterFrontEndPlugin } from "@jupyterlab/application";
import { INotebookTracker, type NotebookPanel } from "@jupyterlab/notebook";
import { wrapWidgetRenderers } from "./fallback";

const EVENT = "jupyter-peft:insert-cell";

interface InsertDetail {
  code: string;
  handled: boolean;
}

/** The notebook and cell index whose DOM contains `node`, searching every open notebook. */
function cellOf(tracker: INotebookTracker, node: Node): { panel: NotebookPanel; index: number } | null {
  let found: { panel: NotebookPanel; index: number } | null = null;
  tracker.forEach((panel) => {
    if (found) return;
    const index = panel.content.widgets.findIndex((cell) => cell.node.contains(node));
    if (index >= 0) found = { panel, index };
  });
  return found;
}

function insertBelow(panel: NotebookPanel, index: number, code: string): void {
  const notebook = panel.content;
  const shared = notebook.model?.sharedModel;
  if (!shared) return;
  shared.insertCell(index + 1, { cell_type: "code", source: code });
  notebook.activeCellIndex = index + 1;
  void notebook.scrollToItem(index + 1).catch(() => undefined); // best effort: the cell exists either way
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: "jupyter-peft:insert-cell",
  description: "Lets the jupyter_peft studio write its %%peft cell below its own cell.",
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker) => {
    document.addEventListener(EVENT, (event: Event) => {
      const detail = (event as CustomEvent<InsertDetail>).detail;
      if (!detail || typeof detail.code !== "string" || detail.handled) return;
      const target = event.target instanceof Node ? event.target : null;
      const place = target ? cellOf(tracker, target) : null;
      const panel = place?.panel ?? tracker.currentWidget;
      if (!panel) return;
      const index = place ? place.index : panel.content.activeCellIndex;
      insertBelow(panel, index, detail.code);
      detail.handled = true;
    });
    document.body.dataset.jupyterPeft = "1";
  },
};

// The static view of a studio or dashboard where its widget cannot be drawn (fallback.ts).
const fallback: JupyterFrontEndPlugin<void> = {
  id: "jupyter-peft:static-fallback",
  description: "Shows a jupyter_peft widget's saved static view when the widget's model is gone (no kernel, a new kernel).",
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker) => {
    tracker.forEach((panel) => wrapWidgetRenderers(panel.content.rendermime));
    tracker.widgetAdded.connect((_sender, panel) => wrapWidgetRenderers(panel.content.rendermime));
  },
};

export default [plugin, fallback];
