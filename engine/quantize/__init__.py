"""Quantization to llama.cpp's block types, and the per-tensor type mix of its file types.

- `quantizers.py`: the table of quantizers by target type and `quantize(values, type)`.
  One module per type (`q4_0.py`, `q4_k.py`, ...), each reproducing llama.cpp's reference
  quantizer (`quantize_row_<type>_ref`, the path llama-quantize takes without an importance
  matrix) bit for bit: `BLOCK_ELEMS`, `BLOCK_BYTES`, `quantize_blocks(x, out)`.
- `type_mix.py`: which type llama-quantize gives each tensor of a file type.
- `model.py`: a whole GGUF model to another file type, streamed and written atomically;
  `files.py` (the input map, output checks) and `progress.py` it shares with engine/convert.py.

This package module imports nothing heavy: `type_mix` is used by `codeup synth` without numba.
"""
