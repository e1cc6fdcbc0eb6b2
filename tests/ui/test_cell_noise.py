"""No library progress bars in the user's cells from our own calls: loading the demo model shows
no "Loading weights: 100% 56/56" (and the user's own progress-bar setting is left as it was)."""

from __future__ import annotations

import jupyter_peft as jp


def test_loading_the_demo_model_shows_no_progress_bar(capfd):
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    jp.demo.load()
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err and "it/s" not in out + err
    assert hf_logging.is_progress_bar_enabled()  # put back
