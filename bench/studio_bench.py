"""Studio benchmark on a Llama-3-70B-sized model built on the `meta` device.

    PYTHONPATH=.:tests python bench/studio_bench.py [--no-browser]

Prints, each with a baseline measured in the same run:
- Python: the time to build the widget state, and per click (tick a group -> new counts),
  against `jp.inspect` and against building the whole PeftModel on meta (the alternative the
  counting room avoids, see counting.py);
- the state sent to the browser (KB);
- headless Chromium: the first render after the bundle loads (a page with the real state and
  a stand-in for the kernel), against the bundle's own load;
- real JupyterLab: the click round trip (tick -> new trainable count drawn), against a bare
  kernel round trip (`1+1`); the same for rank changes every 400 ms, each a new plan whose
  memory estimate (a probe of the model) runs in the kernel's background thread; and how long
  after a rank change the memory panel shows the new plan's estimate;
- the JavaScript the studio sends (bytes), and the notebook extension's.
Budgets from the issue: state < 1 s and < 200 KB, first render < 1 s, click < 100 ms, JS < 1.5 MB.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
warnings.filterwarnings("ignore")

MODEL_CODE = "from jupyter_peft.demo.skeletons import skeleton\nmodel = skeleton('llama-3-70b')"


def timed(fn, repeat: int = 5) -> float:
    """Median seconds of `fn()` over `repeat` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def line(name: str, value: str, baseline: str = "", ratio: float | None = None) -> None:
    extra = (
        f"   baseline {baseline}" + (f"  ratio {ratio:.2f}" if ratio is not None else "") if baseline else ""
    )
    print(f"{name:<44} {value:>14}{extra}")


def python_side() -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    import jupyter_peft as jp
    from jupyter_peft.model.counting import meta_twin

    ns: dict = {}
    exec(MODEL_CODE, ns)
    model = ns["model"]
    jp.studio(model).wait_estimate(600)  # imports, peft's per-kind probes and memory's, once
    build = timed(lambda: jp.studio(model).close(), 3)
    inspect = timed(lambda: jp.inspect(model), 3)
    studio = jp.studio(model)
    studio.wait_estimate(600)  # the state as the page has it once the memory panel is filled
    state = {k: v for k, v in studio.get_state().items() if k != "_esm"}
    size = len(json.dumps(state).encode())

    def click():
        for on in (True, False):
            studio._on_msg(studio, {"kind": "pick", "role": "mlp.down_proj", "on": on}, None)

    click()  # first tick of a new group probes peft once; measure the steady state below
    per_click = timed(click, 10) / 2

    def whole_model():
        with torch.device("meta"):
            get_peft_model(
                meta_twin(model),
                LoraConfig(r=8, target_modules=studio.plan.target_modules),
                low_cpu_mem_usage=True,
            )

    full = timed(whole_model, 3)
    print(
        "== Python (Llama-3-70B skeleton on meta, 80 layers, "
        f"{sum(g.count for g in jp.inspect(model).groups)} modules)"
    )
    line("state build (s)", f"{build:.3f}", f"jp.inspect {inspect:.3f}s", build / inspect)
    panel = len(json.dumps(state["memory"])) / 1024
    line("state sent to the browser (KB)", f"{size / 1024:.1f}", f"of which the memory panel {panel:.1f} KB")
    line(
        "click in the kernel (ms)",
        f"{1000 * per_click:.1f}",
        f"meta get_peft_model {1000 * full:.0f}ms",
        per_click / full,
    )
    return state


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # the bench prints its own lines only
        pass


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


_PAGE = """<!doctype html><html><body><div id="root" style="width:1200px"></div><script type="module">
const t0 = performance.now();
const mod = await import("./studio.js");
const t1 = performance.now();
const state = await (await fetch("state.json")).json();
const model = { get: (k) => state[k], on() {}, off() {}, send() {} };  // the kernel's stand-in
const el = document.getElementById("root");
const t2 = performance.now();
mod.default.render({ model, el });
await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
window.__result = { load: t1 - t0, render: performance.now() - t2,
  rows: el.querySelectorAll("tr.jp-peft-group").length, chart: !!el.querySelector(".main-svg") };
</script></body></html>"""


def first_render(state: dict) -> None:
    import lab
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="jp-bench-"))
    (folder / "studio.js").write_bytes((ROOT / "jupyter_peft" / "static" / "studio.js").read_bytes())
    (folder / "state.json").write_text(json.dumps(state))
    (folder / "index.html").write_text(_PAGE)
    server, url = _serve(folder)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=lab.CHROMIUM, args=lab.CHROMIUM_ARGS)
            results = []
            for _ in range(3):
                page = browser.new_page(viewport={"width": 1300, "height": 1000})
                page.goto(f"{url}/index.html")
                page.wait_for_function("window.__result", timeout=60_000)
                results.append(page.evaluate("window.__result"))
                page.close()
            browser.close()
    finally:
        server.shutdown()
    load = statistics.median(r["load"] for r in results)
    render = statistics.median(r["render"] for r in results)
    print("== headless Chromium, the real state, no kernel")
    line("first render after bundle load (ms)", f"{render:.0f}", f"bundle load {load:.0f}ms", render / load)
    line("rows drawn / chart drawn", f"{results[0]['rows']} / {results[0]['chart']}")


def click_round_trip(clicks: int = 12) -> None:
    import lab
    from playwright.sync_api import sync_playwright

    server = lab.Lab().start()
    try:
        name = server.notebook("bench.ipynb", [f"%load_ext jupyter_peft\n{MODEL_CODE}", "s = %peft model\ns"])
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=lab.CHROMIUM, args=lab.CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            notebook = lab.LabPage(server, page).open(name)
            notebook.run_cell(0)
            notebook.run_cell(1)
            page.wait_for_selector(".jp-peft-studio .jp-peft-big", timeout=120_000)
            trips, kernel = _clicks(page, clicks)
            bare = _bare_round_trips(page, 10)
            busy, estimates = _rank_changes(page, 8)
            browser.close()
    finally:
        server.stop()
    print("== JupyterLab + kernel, Llama-3-70B skeleton: tick mlp.down_proj -> new count drawn")
    line(
        "click round trip, median (ms)",
        f"{statistics.median(trips):.0f}",
        f"kernel 1+1 {bare:.0f}ms",
        statistics.median(trips) / bare,
    )
    line("click round trip, worst (ms)", f"{max(trips):.0f}")
    line("  of which the kernel's work (ms)", f"{statistics.median(kernel):.0f}")
    line(
        "rank change every 400 ms, median (ms)",
        f"{statistics.median(busy):.0f}",
        f"idle click {statistics.median(trips):.0f}ms",
        statistics.median(busy) / statistics.median(trips),
    )
    line("rank change every 400 ms, worst (ms)", f"{max(busy):.0f}")
    line("new plan -> its estimate shown, median (ms)", f"{statistics.median(estimates):.0f}")
    line("new plan -> its estimate shown, worst (ms)", f"{max(estimates):.0f}")


def _clicks(page, n: int) -> tuple[list[float], list[float]]:
    box = page.locator(".jp-peft-studio tr.jp-peft-group[data-role='mlp.down_proj'] input[type=checkbox]")
    trips, kernel = [], []
    for i in range(n + 1):
        before = page.inner_text(".jp-peft-studio .jp-peft-big")
        box.click()
        page.wait_for_function(
            "(b) => document.querySelector('.jp-peft-studio .jp-peft-big').textContent !== b",
            arg=before,
            timeout=30_000,
        )
        root = page.locator(".jp-peft-studio")
        if i:  # the first tick of a new group probes peft once: steady state is what a user feels
            trips.append(float(root.get_attribute("data-round-trip-ms")))
            kernel.append(float(root.get_attribute("data-kernel-ms")))
    return trips, kernel


_COUNT_CHANGED = "(b) => document.querySelector('.jp-peft-studio .jp-peft-big').textContent !== b"
_SETTLED = (
    "(b) => { const p = document.querySelector('.jp-peft-studio .jp-peft-memory');"
    " const t = p.querySelector('.jp-peft-mem-total');"
    " return p.dataset.state === 'ready' && !p.classList.contains('jp-peft-pending') && t.dataset.bytes !== b; }"
)


def _rank_changes(page, n: int) -> tuple[list[float], list[float]]:
    """Rank changes to values not seen before (each a new plan, so a new estimate probe).
    First loop: a change every 400 ms, as a user stepping through ranks: the round trips.
    Second loop: change, then the time until the panel shows the new plan's estimate."""
    rank = page.locator(".jp-peft-studio tr.jp-peft-group[data-role='self_attn.q_proj'] input[aria-label^='rank']")
    root = page.locator(".jp-peft-studio")
    busy, estimates = [], []
    for i in range(n):
        start = page.evaluate("performance.now()")
        before = page.inner_text(".jp-peft-studio .jp-peft-big")
        rank.fill(str(40 + i))
        rank.press("Enter")
        page.wait_for_function(_COUNT_CHANGED, arg=before, timeout=30_000)
        if i:
            busy.append(float(root.get_attribute("data-round-trip-ms")))
        page.wait_for_timeout(max(0.0, 400 - (page.evaluate("performance.now()") - start)))
    page.wait_for_function(_SETTLED, arg="", timeout=120_000)
    for i in range(n):
        bytes_before = page.get_attribute(".jp-peft-studio .jp-peft-mem-total", "data-bytes")
        start = page.evaluate("performance.now()")
        rank.fill(str(80 + i))
        rank.press("Enter")
        page.wait_for_function(_SETTLED, arg=bytes_before, timeout=120_000)
        estimates.append(page.evaluate("performance.now()") - start)
    return busy, estimates


def _bare_round_trips(page, n: int) -> float:
    return page.evaluate(
        """async (n) => {
            const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
            const times = [];
            for (let i = 0; i < n; i++) {
                const t = performance.now();
                await kernel.requestExecute({ code: '1+1', silent: true, store_history: false }).done;
                times.push(performance.now() - t);
            }
            times.sort((a, b) => a - b);
            return times[Math.floor(n / 2)];
        }""",
        n,
    )


def bundle_sizes() -> None:
    studio = (ROOT / "jupyter_peft" / "static" / "studio.js").stat().st_size
    ext = sum(f.stat().st_size for f in (ROOT / "jupyter_peft" / "labextension" / "static").glob("*.js"))
    print("== JavaScript")
    line(
        "studio bundle, plotly.js-basic inside (bytes)", f"{studio:,}", "budget 1,500,000", studio / 1_500_000
    )
    line("notebook extension, once per page (bytes)", f"{ext:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-browser", action="store_true", help="Python numbers and bundle sizes only")
    args = parser.parse_args()
    state = python_side()
    bundle_sizes()
    if not args.no_browser:
        first_render(state)
        click_round_trip()


if __name__ == "__main__":
    main()
