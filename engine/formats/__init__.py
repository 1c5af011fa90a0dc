"""Model file readers: GGUF and the legacy GGML formats, behind one `open_model_file`."""

from .hparams import GGML_DEFAULTS, HParamOverrides, LlamaHParams
from .loader import open_model_file, read_model_buffer
from .model_file import ModelFile, TensorInfo, TokenizerData

__all__ = [
    "GGML_DEFAULTS",
    "HParamOverrides",
    "LlamaHParams",
    "ModelFile",
    "TensorInfo",
    "TokenizerData",
    "open_model_file",
    "read_model_buffer",
]
