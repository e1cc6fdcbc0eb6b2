"""bitsandbytes bases: the config a plan asks for, detect and prepare a k-bit model, load a base.

- `kbit.py`: the BitsAndBytesConfig of a plan; which quantization a model carries; preparing
  it for training, once;
- `loading.py`: `base:` of a plan loaded (quantized when the plan says so).

May import: plan/, demo/ (the packaged model's folder), the session, the root helpers; not
model/ (model/ builds on this room). bitsandbytes only where used.
"""
