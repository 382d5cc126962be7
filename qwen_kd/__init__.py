__version__ = "0.1.0"

# Before any submodule imports transformers or peft: with the optional torchao installed (the `int8-torchao` teacher),
# peft imports it, and torchao logs the CUDA-only kernels it cannot load and torch a deprecation notice of torchao's.
# Neither is the user's to act on, and both would break the CLI's one-line errors. Nor is bitsandbytes' warning, on a
# CPU with AVX512-BF16, that the optional `kernels` package (a faster 4-bit CPU kernel from the Hub) is missing.
import logging as _logging
for _noisy in ("torchao", "torch.utils._pytree", "bitsandbytes.backends.cpu.ops"):
    _logging.getLogger(_noisy).setLevel(_logging.ERROR)
