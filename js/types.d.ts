// plotly.js's lib/ modules ship no types; js/plotly/bundle.ts registers the bar and heatmap traces on the
// core, and the widgets use a small part of its API through js/common/plotly.ts's PlotLib.
declare module "plotly.js/lib/core";
declare module "plotly.js/lib/bar";
declare module "plotly.js/lib/heatmap";
