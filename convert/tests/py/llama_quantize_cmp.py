"""Compares our GGUF with llama.cpp's own `llama_model_quantize` output.

usage: llama_quantize_cmp.py F32_GGUF OURS_GGUF FTYPE [IMATRIX]
Quantizes F32_GGUF (written by larder-convert with --type f32) with llama.cpp
to llama_ftype FTYPE and checks that every tensor of OURS_GGUF has the same
type and the same bytes. With IMATRIX (either llama-imatrix format), llama.cpp gets the
importance matrix as llama-quantize's load_imatrix prepares it.
"""
import ctypes
import os
import sys
import tempfile

import llama_cpp
import numpy as np
from gguf import GGUFReader


def main() -> None:
    f32_path, ours_path, ftype = sys.argv[1], sys.argv[2], int(sys.argv[3])
    keep = []
    entries = None
    if len(sys.argv) > 4:
        import imatrix_util

        im = imatrix_util.load(sys.argv[4])
        entries = (llama_cpp.llama_model_imatrix_data * (len(im) + 1))()
        for i, (name, w) in enumerate(sorted(im.items())):
            w = np.ascontiguousarray(w, dtype=np.float32)
            keep.append((name.encode(), w))
            entries[i].name = keep[-1][0]
            entries[i].data = w.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            entries[i].size = w.size
        entries[len(im)].name = None
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "ref.gguf")
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = ftype
        p.nthread = 2
        if entries is not None:
            p.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
        rc = llama_cpp.llama_model_quantize(f32_path.encode(), out.encode(), ctypes.byref(p))
        assert rc == 0, f"llama_model_quantize failed: {rc}"
        ref = {t.name: t for t in GGUFReader(out).tensors}
        ours = {t.name: t for t in GGUFReader(ours_path).tensors}
        assert set(ref) == set(ours), (set(ref) ^ set(ours))
        bad = []
        for name, t in ref.items():
            o = ours[name]
            if t.tensor_type != o.tensor_type:
                bad.append(f"{name}: llama.cpp {t.tensor_type.name}, ours {o.tensor_type.name}")
                continue
            a = np.asarray(t.data).view(np.uint8).reshape(-1)
            b = np.asarray(o.data).view(np.uint8).reshape(-1)
            if not np.array_equal(a, b):
                bad.append(f"{name} ({t.tensor_type.name}): bytes differ")
        assert not bad, "\n".join(bad)
        print(f"{os.path.basename(ours_path)}: {len(ref)} tensors identical to llama-quantize")


if __name__ == "__main__":
    main()
