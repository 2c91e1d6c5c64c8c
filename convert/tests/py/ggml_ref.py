"""Quantizes with ggml's own C reference (`quantize_row_*_ref`) via ctypes.

usage: ggml_ref.py LIB TYPE ROWS COLS IN_F32 OUT_BYTES
LIB is a shared library built from llama.cpp's ggml/src/ggml-quants.c (see
tests/it/quants.rs `k_quants_match_ggml_c_reference`).
"""
import ctypes
import sys

import numpy as np
from gguf import GGMLQuantizationType
from gguf.constants import GGML_QUANT_SIZES


def main() -> None:
    lib, tname, rows, cols, src, dst = sys.argv[1:7]
    rows, cols = int(rows), int(cols)
    q = GGMLQuantizationType[tname]
    blk, size = GGML_QUANT_SIZES[q]
    fn = getattr(ctypes.CDLL(lib), f"quantize_row_{tname.lower().replace('_k', '_K')}_ref")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    x = np.ascontiguousarray(np.fromfile(src, dtype=np.float32).reshape(rows, cols))
    out = np.zeros(rows * cols // blk * size, dtype=np.uint8)
    fn(x.ctypes.data, out.ctypes.data, rows * cols)
    out.tofile(dst)


if __name__ == "__main__":
    main()
