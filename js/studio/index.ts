// The studio's anywidget entry: render() builds a StudioView on the model and returns its
// cleanup. The chart draws with the page's one plotly (js/common/plotly.ts: the first chart on
// a page asks the kernel for it) in the colours of JupyterLab's theme, redrawn when it changes.

import { ParamChart } from "../common/param_chart";
import { lazyPlot, loadPlotly, type AssetModel } from "../common/plotly";
import { ensureStyle } from "../common/style";
import { onThemeChange } from "../common/theme";
import { STYLE } from "./style";
import type { WidgetModel } from "./types";
import { StudioView } from "./view";

function render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
  ensureStyle(el.ownerDocument, "studio", STYLE); // once per page, scoped under .jp-peft-studio
  const chart = new ParamChart(lazyPlot(loadPlotly(model as unknown as AssetModel)));
  const view = new StudioView(model, chart);
  view.attach(el);
  const unwatch = onThemeChange(el.ownerDocument, () => chart.redraw());
  return () => {
    unwatch();
    view.destroy();
  };
}

export default { render };
