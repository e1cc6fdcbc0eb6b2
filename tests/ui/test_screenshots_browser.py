"""The README's pictures are taken by this code path (scripts/screenshots.py) in real JupyterLab and
Chromium: the studio with its memory panel and chart, and the dashboard of a live run on the demo
model; then both widgets in the light and the dark theme at 1400 and 900 px wide. Here they go to
tests/_out (look at them); `python scripts/screenshots.py` writes the README's into docs/."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshots.py"


def test_the_readme_screenshots_show_the_studio_and_a_live_dashboard(lab_page, out_dir):
    spec = importlib.util.spec_from_file_location("screenshots", SCRIPT)
    screenshots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(screenshots)
    studio, dashboard = screenshots.take(lab_page, out_dir, grow_ms=3000)
    assert "self_attn.q_proj" in lab_page.page.locator(".jp-peft-studio").first.inner_text()
    assert lab_page.kernel_value("peft_run.state") == "stopped"  # take() stops the run it showed
    for png in (studio, dashboard):
        width, height = _png_size(png)
        assert width > 800 and height > 400, (png.name, width, height)

    found = screenshots.take_matrix(lab_page, out_dir)
    assert set(found) == {f"{t}-{w}" for t in ("light", "dark") for w in (1400, 900)}
    for key, m in found.items():
        # every column of the tree in view at either width (no horizontal scroll), nor the widgets wider than their cell
        assert m["treeOverflow"] <= 1 and m["studioOverflow"] <= 1 and m["dashboardOverflow"] <= 1, (key, m)
        dark = key.startswith("dark")
        assert (m["background"] < 0.3) == dark, (key, m)
        for ticks in (m["studioTicks"], m["dashboardTicks"]):  # axis labels readable on the theme's background
            assert ticks is not None and abs(ticks - m["background"]) > 0.35, (key, m)
        for widget in ("studio", "dashboard"):
            assert _png_size(out_dir / f"{widget}-{key}.png")[0] > 300
    assert found["light-900"]["width"] < found["light-1400"]["width"]


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
