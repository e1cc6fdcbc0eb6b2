"""The notebook's plan as files that train the same thing elsewhere, and on many GPUs.

- `api.py`: `jp.export`, `export_files`, `export_all`; `options.py`: the one options object;
- `job.py`: one export job (check and resolve once, render each format, write at the end);
- `source.py`: a Plan (and its model) as literal settings;
- `script.py` (standalone script), `trl.py` (TRL CLI config), `accelerate.py` (accelerate config);
- `link.py`: the callback every script carries (copied in as text): progress out, Stop / Save in.

May import: plan/, model/, quant/loading, memory/ (per-GPU memory), the root helpers.
"""

from .api import Exported, export, export_all, export_files

__all__ = ["Exported", "export", "export_all", "export_files"]
