"""Reference quantizer/dequantizer for the Rust tests, using the `gguf` package.

usage: quant_ref.py quantize TYPE ROWS COLS IN_F32 OUT_BYTES
       quant_ref.py dequantize TYPE ROWS COLS IN_BYTES OUT_F32
"""
import sys
import warnings

import numpy as np
from gguf import GGMLQuantizationType, quants

warnings.simplefilter("ignore")  # overflow to inf in f16 is expected for the huge cases


def main() -> None:
    mode, tname, rows, cols, src, dst = sys.argv[1:7]
    qtype = GGMLQuantizationType[tname]
    rows, cols = int(rows), int(cols)
    if mode == "quantize":
        data = np.fromfile(src, dtype=np.float32).reshape(rows, cols)
        with np.errstate(all="ignore"):
            out = quants.quantize(data, qtype)
        np.ascontiguousarray(out).view(np.uint8).tofile(dst)
    elif mode == "dequantize":
        raw = np.fromfile(src, dtype=np.uint8).reshape(rows, -1)
        out = quants.dequantize(raw, qtype).astype(np.float32)
        assert out.shape == (rows, cols), out.shape
        out.tofile(dst)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
