"""Quantizes with ggml's own C code via ctypes.

usage: ggml_ref.py LIB ref|chunk TYPE ROWS COLS IN_F32 OUT_BYTES [QW_F32]
`ref` calls `quantize_row_<type>_ref` on all rows at once; `chunk` calls `ggml_quantize_chunk`
(what llama-quantize calls: for IQ4 it is not the _ref code), with QW_F32 (one importance weight
per column) as its imatrix when given. LIB is ggml's base library (`.ggml/libggml-base.so`, built
by convert/tests/build_ggml.sh; see tests/it/quants.rs `k_quants_match_ggml_c_reference`).
"""
import ctypes
import sys

import numpy as np
from gguf import GGMLQuantizationType
from gguf.constants import GGML_QUANT_SIZES


def main() -> None:
    lib, mode, tname, rows, cols, src, dst = sys.argv[1:8]
    qw_path = sys.argv[8] if len(sys.argv) > 8 else None
    rows, cols = int(rows), int(cols)
    q = GGMLQuantizationType[tname]
    blk, size = GGML_QUANT_SIZES[q]
    x = np.ascontiguousarray(np.fromfile(src, dtype=np.float32).reshape(rows, cols))
    out = np.zeros(rows * cols // blk * size, dtype=np.uint8)
    ggml = ctypes.CDLL(lib)
    if mode == "ref":
        fn = getattr(ggml, f"quantize_row_{tname.lower().replace('_k', '_K')}_ref")
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        fn(x.ctypes.data, out.ctypes.data, rows * cols)
    elif mode == "chunk":
        fn = ggml.ggml_quantize_chunk
        fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                       ctypes.c_int64, ctypes.c_void_p]
        fn.restype = ctypes.c_size_t
        qw = None
        if qw_path is not None:
            qw = np.ascontiguousarray(np.fromfile(qw_path, dtype=np.float32))
            assert qw.size == cols, f"{qw.size} importance weights for {cols} columns"
        written = fn(int(q), x.ctypes.data, out.ctypes.data, 0, rows, cols,
                     None if qw is None else qw.ctypes.data)
        assert written == out.size, f"ggml_quantize_chunk wrote {written} bytes, expected {out.size}"
    else:
        raise SystemExit(f"ggml_ref.py: unknown mode {mode!r}")
    out.tofile(dst)


if __name__ == "__main__":
    main()
