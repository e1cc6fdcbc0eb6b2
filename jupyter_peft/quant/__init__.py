"""bitsandbytes bases: detect and prepare a k-bit model, load a base a plan names, merge.

- `kbit.py`: which quantization a model carries; preparing it for training, once;
- `loading.py`: `base:` of a plan loaded (quantized when the plan says so);
- `merging.py`: `jp.merge`, the adapter folded into a full-precision copy of the base.

May import: plan/, model/, the session, the root helpers. bitsandbytes only where used.
"""
