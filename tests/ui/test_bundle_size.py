"""JavaScript weight (issue 14): the studio and the dashboard together load at most 1.5 MB, with
one shared plotly holding only the traces we draw (scatter, bar, heatmap), and neither widget's bundle
carrying a plotly of its own. Sizes are printed by bench/bundle_sizes.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bundle_sizes.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bundle_sizes", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_widgets_load_at_most_one_and_a_half_megabytes():
    bench = _bench()
    sizes = bench.sizes()
    assert sum(sizes.values()) <= bench.GOAL, sizes
    for widget in ("studio.js", "dashboard.js"):  # plotly is not inside either
        assert sizes[widget] < 150_000, (widget, sizes[widget])
        assert "basePlotModule" not in (bench.STATIC / widget).read_text()


def test_the_shared_plotly_draws_scatter_bar_and_heatmap_only():
    import re

    text = (_bench().STATIC / "plotly.js").read_text()
    traces = sorted(set(re.findall(r'moduleType:"trace",name:"(\w+)"', text)))
    assert traces == ["bar", "heatmap", "scatter"]  # heatmap: the module heatmap
    assert text.rstrip().endswith("as default};") or "export{" in text  # an ES module with a default export


def test_plotly_goes_to_the_page_once_from_either_widget():
    import tiny

    import jupyter_peft as jp
    from jupyter_peft.ui import plotly_asset

    sent = []
    studio = jp.studio(tiny.build("llama"))
    studio.send = lambda content, buffers=None: sent.append((content, buffers))
    studio._on_msg(studio, {"kind": "plotly"}, [])
    assert sent == [({"kind": "plotly"}, [plotly_asset.PLOTLY.read_bytes()])]
    assert studio.timing == {} or studio.timing.get("kind") != "plotly"  # not a command: no round trip noted
