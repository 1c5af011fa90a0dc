"""Hugging Face checkpoints read without PyTorch: safetensors and PyTorch zip weights,
config and tokenizer, turned into the GGUF llama.cpp's convert_hf_to_gguf.py writes.

- `safetensors`: the header, and tensors as views of the mapped file.
- `torch_zip`: PyTorch `.bin` zip checkpoints through a restricted unpickler (no code runs).
- `checkpoint`: a model folder's weights, shards and index, as one list of lazy tensors.
- `metadata`: config.json -> GGUF hyperparameter keys, the name heuristics, size label.
- `vocab`: tokenizer.model (SentencePiece) or tokenizer.json (BPE) -> tokenizer.ggml.*.
- `convert`: the whole conversion, streamed tensor by tensor.
"""
