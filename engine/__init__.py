"""codeup engine: llama.cpp model files on the CPU, with no service to call.

Headless: nothing here imports Textual.
"""

from . import openmp_env as _openmp_env

# numba's OpenMP workers must spin through the gaps between a token's kernels: set before
# numba loads libgomp (engine/openmp_env.py says why and what was measured).
_openmp_env.apply_defaults()

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
