// The static view of a jupyter_peft widget where the widget itself cannot be drawn.
//
// The studio's and the dashboard's outputs carry, beside the widget's view
// (application/vnd.jupyter.widget-view+json), the same thing as static HTML (a `jp-peft-static`
// element in text/html, made in Python). JupyterLab always picks the widget view for a trusted
// output, and when the notebook is reopened with a new kernel (or none) the widget's model is
// gone: "Error displaying widget: model not found". This wraps the renderer JupyterLab makes
// for the widget view (in each notebook's rendermime registry) so that, for our outputs only,
// the static HTML shows while there is no live view, and the live view once it draws. An
// update of the output (Python brings the static view up to date) then leaves a live view as
// it is and only replaces the HTML kept for later.

import type { IRenderMime } from "@jupyterlab/rendermime-interfaces";
import type { IRenderMimeRegistry } from "@jupyterlab/rendermime";
import { MessageLoop, type Message } from "@lumino/messaging";
import { Panel, type Widget } from "@lumino/widgets";

export const WIDGET_MIME = "application/vnd.jupyter.widget-view+json";
export const STATIC_MARK = "jp-peft-static";

/** Whether an output is one of ours: a widget view with our static HTML beside it. */
export function isOurs(data: IRenderMime.IMimeModel["data"]): boolean {
  const html = data["text/html"];
  return WIDGET_MIME in data && typeof html === "string" && html.includes(STATIC_MARK);
}

/** The widget-view renderer, with our static HTML shown whenever it has no live view. */
export class StaticFallback extends Panel implements IRenderMime.IRenderer {
  private modelId: string | null = null;
  private html: (IRenderMime.IRenderer & Widget) | null = null;
  private staticModel: IRenderMime.IMimeModel | null = null;
  private drawn: IRenderMime.IMimeModel | null = null;

  constructor(
    private readonly inner: IRenderMime.IRenderer & Widget,
    private readonly rendermime: IRenderMimeRegistry,
  ) {
    super();
    this.addClass("jp-peft-fallback");
    this.addWidget(inner);
    // the live view comes and goes as a child of the widget renderer (a Panel)
    MessageLoop.installMessageHook(inner, (_handler, msg: Message) => {
      if (msg.type === "child-added" || msg.type === "child-removed") requestAnimationFrame(() => this.sync());
      return true;
    });
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    if (!isOurs(model.data)) {
      this.staticModel = null;
      await this.inner.renderModel(model);
      return this.sync();
    }
    this.staticModel = model;
    this.drawn = null; // a new static view: drawn when it is needed
    const id = (model.data[WIDGET_MIME] as { model_id?: string } | undefined)?.model_id ?? "";
    if (id && id === this.modelId && this.live()) return this.sync();
    this.modelId = id;
    this.sync(); // the static view at once: the widget manager may take long, or never come (no kernel)
    await this.inner.renderModel(model);
    this.sync();
  }

  /** Whether the widget renderer holds a live view. */
  private live(): boolean {
    const inner = this.inner as unknown as Panel;
    return !this.inner.isDisposed && !this.inner.isHidden && (inner.widgets?.length ?? 0) > 0;
  }

  private sync(): void {
    if (this.isDisposed) return;
    const fallback = this.staticModel !== null && !this.live();
    // collapsed, not display:none: a view drawing in there measures its width (plotly does)
    const style = this.inner.node.style;
    style.height = fallback ? "0" : "";
    style.overflow = fallback ? "hidden" : "";
    style.minHeight = fallback ? "0" : "";
    if (!fallback) {
      this.html?.hide();
      return;
    }
    if (!this.html) {
      this.html = this.rendermime.createRenderer("text/html") as IRenderMime.IRenderer & Widget;
      this.html.addClass("jp-peft-fallback-static");
      this.addWidget(this.html);
    }
    this.html.show();
    if (this.drawn !== this.staticModel && this.staticModel) {
      this.drawn = this.staticModel;
      void this.html.renderModel(this.staticModel);
    }
  }
}

/** Wrap the widget-view renderers `rendermime` makes from now on (whoever registered the factory). */
export function wrapWidgetRenderers(rendermime: IRenderMimeRegistry): void {
  const marked = rendermime as IRenderMimeRegistry & { __jpPeftFallback?: boolean };
  if (marked.__jpPeftFallback) return;
  marked.__jpPeftFallback = true;
  const create = rendermime.createRenderer.bind(rendermime);
  rendermime.createRenderer = (mimeType: string) => {
    const renderer = create(mimeType);
    return mimeType === WIDGET_MIME ? new StaticFallback(renderer as IRenderMime.IRenderer & Widget, rendermime) : renderer;
  };
}
