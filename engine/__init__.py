"""codeup engine: llama.cpp model files on the CPU, with no service to call.

Headless: nothing here imports Textual.
"""

from .errors import CodeupError, DefaultModelError, ModelFileError, UsageError
from .formats import ModelFile, open_model_file

__version__ = "0.1.0"

__all__ = [
    "CodeupError",
    "DefaultModelError",
    "ModelFile",
    "ModelFileError",
    "UsageError",
    "__version__",
    "open_model_file",
]
