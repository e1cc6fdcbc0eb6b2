"""`%peft` and `%%peft`: thin text front ends over the rooms; no state, no maths of their own.

- `core.py`: `PeftMagics` (the cell and line magics, argument parsing, errors as UsageError);
- `train.py`: a cell's `train:` block, `%peft stop` and `%peft status`;
- `estimate.py`: `%peft estimate`.

Must stay light to import: `%load_ext jupyter_peft` loads this package; everything else lazily.
"""
