"""Compile the engine's kernels into numba's on-disk cache, in a process of its own.

The test session starts this in the background (tests/conftest.py): on a fresh clone every
kernel compiles once (a quarter of the suite's time on a 2-core CI machine), and the tests run
on one core most of the time. Compiled here, on the other core, ahead of the tests that
need them, a kernel is loaded from the cache instead of compiled again in the test process.
Numba writes its cache files whole (a temporary file renamed), so a test process that reaches
a kernel first simply compiles it itself: nothing here can change a result, only the time.

Order: the test process compiles the kernels its first files need itself (float and 8-bit
types); this one starts where those tests go next (the k-quants of the architecture fixtures,
every quant type's forward pass, the quantizers) so that the two rarely compile the same one.
"""

from __future__ import annotations

import sys

import numpy as np

from tests.helpers.paths import FIXTURES


def models(folder: str, pattern: str = "*") -> list:
    return sorted((FIXTURES / folder).glob(f"{pattern}.gguf")) + sorted((FIXTURES / folder).glob(f"{pattern}.bin"))


def warm_forward(path) -> None:
    from codeup_tui.engine.model import load_model

    with load_model(path, n_ctx=64, n_threads=1) as model:
        token = model.tokenizer.bos_id if model.tokenizer.bos_id is not None else 1
        model.eval([token, token, token])  # a batch: the prompt kernels
        model.eval([token])  # one token: the generation kernels
        model.eval([token, token], all_logits=True)  # drafted tokens verified together


def warm_quantizers() -> None:
    from codeup_tui.engine.quantize.quantizers import QUANTIZERS, quantize

    values = np.random.default_rng(0).standard_normal(4 * 512).astype(np.float32)
    for ggml_type in QUANTIZERS:
        quantize(values, ggml_type)


def warm_models(paths) -> None:
    for path in paths:
        try:
            warm_forward(path)
        except Exception as e:  # a fixture this engine refuses: its test says why, not this
            print(f"warm_kernels: {path.name}: {e}", file=sys.stderr)


def main() -> int:
    if not FIXTURES.is_dir():
        return 0
    warm_models(models("archs", "*Q4_K_M"))
    warm_models(models("tiny-llama"))
    warm_quantizers()
    warm_models(models("archs") + models("ggml-v3") + models("smollm2"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
