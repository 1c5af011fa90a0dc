"""codeup engine: llama.cpp model files on the CPU, with no service to call.

Headless: nothing here imports Textual.
"""

import os as _os

# Each generated token runs ~200 small `prange` kernels, each a fork/join over numba's
# OpenMP pool. libgomp's default makes an idle worker spin 300000 times before it sleeps:
# on a busy machine the spinning workers steal CPU from the thread doing the work (SmolLM2
# Q4_1, 2 threads, 2 cores, 4 busy processes: 3.8 tok/s). 1000 spins keep the quiet speed
# and give ~10 tok/s there; OMP_WAIT_POLICY=PASSIVE would halve the quiet speed. Set before
# numba loads libgomp (it reads these at load); the user's own settings win.
if "GOMP_SPINCOUNT" not in _os.environ and "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "1000"

from .errors import CodeupError, DefaultModelError, ModelFileError, UsageError
from .formats import ModelFile, open_model_file


def load_model(path, **options):
    """Open a GGUF or GGML v3 llama model ready to evaluate (see engine.model.load_model)."""
    from .model import load_model as _load_model  # numba compiles on first use: import lazily

    return _load_model(path, **options)


__version__ = "0.1.0"

__all__ = [
    "CodeupError",
    "DefaultModelError",
    "ModelFile",
    "ModelFileError",
    "UsageError",
    "__version__",
    "load_model",
    "open_model_file",
]
