"""What the browser loads for the widgets: the built bundles in jupyter_peft/static/, as bytes
and as a ratio to the issue-14 baseline (each widget shipping its own plotly.js-basic: studio
1,235,604 + dashboard 1,213,101 = 2,448,705 bytes for a notebook with both).

Now plotly (core + the bar trace, the only traces we draw) is one file, sent to a page once
(jupyter_peft/ui/plotly_asset.py), and each widget's bundle carries only its own code. The goal
(issue 14): at most 1.5 MB for the studio and the dashboard together. Also prints gzip sizes
(what a server that compresses would send) and the traces plotly.js registers.

    python bench/bundle_sizes.py            # after `npm run build`
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "jupyter_peft" / "static"
BASELINE = {"studio.js": 1_235_604, "dashboard.js": 1_213_101}
GOAL = 1_500_000


def sizes() -> dict[str, int]:
    return {name: (STATIC / name).stat().st_size for name in ("plotly.js", "studio.js", "dashboard.js")}


def main() -> None:
    now = sizes()
    for name, n in now.items():
        packed = len(gzip.compress((STATIC / name).read_bytes(), 9))
        print(f"{name:14s} {n:>10,} bytes   gzip {packed:>9,}")
    both, before = sum(now.values()), sum(BASELINE.values())
    print(f"{'both widgets':14s} {both:>10,} bytes   (before: {before:,}; {both / before:.2f}x; goal <= {GOAL:,})")
    one = now["plotly.js"] + now["studio.js"]
    print(f"{'studio alone':14s} {one:>10,} bytes   (before: {BASELINE['studio.js']:,})")
    traces = sorted(set(re.findall(r'moduleType:"trace",name:"(\w+)"', (STATIC / "plotly.js").read_text())))
    print("plotly traces:", ", ".join(traces))


if __name__ == "__main__":
    main()
