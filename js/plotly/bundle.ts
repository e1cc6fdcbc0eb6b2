// The one plotly both widgets draw with: plotly.js's core (scatter is part of it), the bar trace and
// the heatmap trace (the module heatmap), nothing else (no pie, no maps, no WebGL). Built into
// jupyter_peft/static/plotly.js and sent to the page once (js/common/plotly.ts), not inside each widget's bundle.
import Plotly from "plotly.js/lib/core"; // untyped: js/types.d.ts
import bar from "plotly.js/lib/bar";
import heatmap from "plotly.js/lib/heatmap";

Plotly.register([bar, heatmap]);

export default Plotly;
