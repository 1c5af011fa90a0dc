"""ggml's tensor types and llama.cpp's file types, as data.

Block layouts are ggml's `block_*` structs (ggml/src/ggml-common.h); the kernels that read them live
in `engine/quants/`. Type ids are shared by GGUF and the legacy GGML formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

QK_K = 256  # elements in a k-quant super-block


class GGMLType(IntEnum):
    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    IQ2_XXS = 16
    IQ2_XS = 17
    IQ3_XXS = 18
    IQ1_S = 19
    IQ4_NL = 20
    IQ3_S = 21
    IQ2_S = 22
    IQ4_XS = 23
    I8 = 24
    I16 = 25
    I32 = 26
    I64 = 27
    F64 = 28
    IQ1_M = 29
    BF16 = 30
    TQ1_0 = 34
    TQ2_0 = 35
    MXFP4 = 39
    NVFP4 = 40
    Q1_0 = 41


@dataclass(frozen=True)
class TypeTraits:
    block_size: int  # elements per block
    type_size: int  # bytes per block


# (elements per block, bytes per block) for every type a GGUF file may name; a reader
# needs these to size tensors even for types the engine cannot compute with.
TYPE_TRAITS: dict[GGMLType, TypeTraits] = {
    GGMLType.F32: TypeTraits(1, 4),
    GGMLType.F16: TypeTraits(1, 2),
    GGMLType.Q4_0: TypeTraits(32, 18),
    GGMLType.Q4_1: TypeTraits(32, 20),
    GGMLType.Q5_0: TypeTraits(32, 22),
    GGMLType.Q5_1: TypeTraits(32, 24),
    GGMLType.Q8_0: TypeTraits(32, 34),
    GGMLType.Q8_1: TypeTraits(32, 36),  # f16 d, f16 s (ggml-common.h; never a weight type)
    GGMLType.Q2_K: TypeTraits(QK_K, 84),
    GGMLType.Q3_K: TypeTraits(QK_K, 110),
    GGMLType.Q4_K: TypeTraits(QK_K, 144),
    GGMLType.Q5_K: TypeTraits(QK_K, 176),
    GGMLType.Q6_K: TypeTraits(QK_K, 210),
    GGMLType.Q8_K: TypeTraits(QK_K, 292),
    GGMLType.IQ2_XXS: TypeTraits(QK_K, 66),
    GGMLType.IQ2_XS: TypeTraits(QK_K, 74),
    GGMLType.IQ3_XXS: TypeTraits(QK_K, 98),
    GGMLType.IQ1_S: TypeTraits(QK_K, 50),
    GGMLType.IQ4_NL: TypeTraits(32, 18),
    GGMLType.IQ3_S: TypeTraits(QK_K, 110),
    GGMLType.IQ2_S: TypeTraits(QK_K, 82),
    GGMLType.IQ4_XS: TypeTraits(QK_K, 136),
    GGMLType.I8: TypeTraits(1, 1),
    GGMLType.I16: TypeTraits(1, 2),
    GGMLType.I32: TypeTraits(1, 4),
    GGMLType.I64: TypeTraits(1, 8),
    GGMLType.F64: TypeTraits(1, 8),
    GGMLType.IQ1_M: TypeTraits(QK_K, 56),
    GGMLType.BF16: TypeTraits(1, 2),
    GGMLType.TQ1_0: TypeTraits(QK_K, 54),
    GGMLType.TQ2_0: TypeTraits(QK_K, 66),
    GGMLType.MXFP4: TypeTraits(32, 17),
    GGMLType.NVFP4: TypeTraits(64, 36),
    GGMLType.Q1_0: TypeTraits(128, 18),
}

# The types llama.cpp's 2023 GGML v3 loader accepted for model weights.
GGML_V3_TYPES = frozenset(
    {
        GGMLType.F32,
        GGMLType.F16,
        GGMLType.Q4_0,
        GGMLType.Q4_1,
        GGMLType.Q5_0,
        GGMLType.Q5_1,
        GGMLType.Q8_0,
        GGMLType.Q2_K,
        GGMLType.Q3_K,
        GGMLType.Q4_K,
        GGMLType.Q5_K,
        GGMLType.Q6_K,
    }
)


def ggml_type_name(type_id: int) -> str:
    try:
        return GGMLType(type_id).name
    except ValueError:
        return f"type {type_id}"


# llama.cpp's `llama_ftype` (the "mostly" type of a whole file: general.file_type in GGUF,
# the last hyperparameter in GGML). Only a label; per-tensor types are what count.
LLAMA_FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    4: "Q4_1_SOME_F16",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}


def file_type_name(ftype: int | None) -> str:
    if ftype is None:
        return "unknown"
    # llama.cpp ORs 1024 into the value for files written with --ftype "guessed".
    name = LLAMA_FILE_TYPES.get(int(ftype) & ~1024)
    return name if name is not None else f"ftype {ftype}"
