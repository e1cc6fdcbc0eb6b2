// plotly's dist packages ship no types; we use a small part of its API (see js/common/plot.ts).
declare module "plotly.js-basic-dist-min";
