"""Warnings the libraries raise about their own internals, which users cannot act on.

Filtered by exact message, process-wide (training threads read these attributes too, and
`catch_warnings` is not thread-safe); every other warning still shows.
"""

from __future__ import annotations

import warnings

_NOISE: list[tuple[type[Warning], str]] = [
    # transformers 5 renamed the attribute; peft and TRL still read the old name
    (FutureWarning, r".*`is_gradient_checkpointing` is deprecated.*"),
]


def silence_library_noise() -> None:
    """Ignore the known internal deprecation warnings (idempotent)."""
    for category, message in _NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)
