// "Write cell": the notebook front end inserts the %%peft cell below the widget's cell. A
// comm message cannot do that, so the jupyter-peft JupyterLab extension (labextension/)
// listens for this event; it marks itself on <body> and sets `detail.handled` when done.
// Without it (VS Code, Colab) the page offers the text to copy.

export const INSERT_EVENT = "jupyter-peft:insert-cell";

export function extensionPresent(doc: Document = document): boolean {
  return doc.body?.dataset.jupyterPeft === "1";
}

/** Ask the extension to insert `code` below the cell holding `from`; true when it did. */
export function insertCell(from: Element, code: string): boolean {
  const detail = { code, handled: false };
  from.dispatchEvent(new CustomEvent(INSERT_EVENT, { detail, bubbles: true, composed: true }));
  return detail.handled;
}

export async function copyText(text: string, fallback: HTMLElement): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // clipboard needs a secure context and permission: select the text for Ctrl+C instead
    const range = document.createRange();
    range.selectNodeContents(fallback);
    const selection = window.getSelection();
    selection?.removeAllRanges();
    selection?.addRange(range);
    return false;
  }
}
