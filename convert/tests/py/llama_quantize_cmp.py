"""Compares our GGUF with llama.cpp's own `llama_model_quantize` output.

usage: llama_quantize_cmp.py SRC_GGUF OURS_GGUF FTYPE [IMATRIX]
       llama_quantize_cmp.py < JOBS
Quantizes SRC_GGUF (written by larder-convert, usually with --type f32) with llama.cpp
to llama_ftype FTYPE and checks that every tensor of OURS_GGUF has the same
type and the same bytes, and the same `general.file_type`. With IMATRIX (either llama-imatrix format), llama.cpp gets the
importance matrix as llama-quantize's load_imatrix prepares it.

Without arguments, each line of stdin is one comparison, its fields (the arguments above)
separated by tabs, taken as they arrive: one process for a whole sweep, so the interpreter
and llama.cpp start once, and the caller can write the next file while this one compares.
Every comparison runs; the exit status is 1 if any differed, and stderr lists each.
"""
import ctypes
import os
import sys
import tempfile

import llama_cpp
import numpy as np
from gguf import GGUFReader
from llama_cpp._logger import set_verbose

set_verbose(False)  # llama.cpp's errors only, not its line per tensor
_imatrices = {}


def imatrix_entries(path):
    """The imatrix at `path` as llama_model_imatrix_data entries (and the arrays they point
    into), loaded once per path."""
    if path not in _imatrices:
        import imatrix_util

        im = imatrix_util.load(path)
        keep = []
        entries = (llama_cpp.llama_model_imatrix_data * (len(im) + 1))()
        for i, (name, w) in enumerate(sorted(im.items())):
            w = np.ascontiguousarray(w, dtype=np.float32)
            keep.append((name.encode(), w))
            entries[i].name = keep[-1][0]
            entries[i].data = w.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            entries[i].size = w.size
        entries[len(im)].name = None
        _imatrices[path] = (entries, keep)
    return _imatrices[path][0]


def compare(src_path, ours_path, ftype, imatrix=None):
    """Returns the differences between llama.cpp's quantization and ours (empty if none)."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "ref.gguf")
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = ftype
        p.nthread = 2
        if imatrix is not None:
            entries = imatrix_entries(imatrix)
            p.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
        rc = llama_cpp.llama_model_quantize(src_path.encode(), out.encode(), ctypes.byref(p))
        if rc != 0:
            return [f"llama_model_quantize failed: {rc}"]
        ref_r, ours_r = GGUFReader(out), GGUFReader(ours_path)
        ref = {t.name: t for t in ref_r.tensors}
        ours = {t.name: t for t in ours_r.tensors}
        if set(ref) != set(ours):
            return [f"tensor names differ: {sorted(set(ref) ^ set(ours))}"]
        bad = []
        ft = [int(r.fields["general.file_type"].contents()) for r in (ref_r, ours_r)]
        if ft[0] != ft[1]:
            bad.append(f"general.file_type: llama.cpp {ft[0]}, ours {ft[1]}")
        for name, t in ref.items():
            o = ours[name]
            if t.tensor_type != o.tensor_type:
                bad.append(f"{name}: llama.cpp {t.tensor_type.name}, ours {o.tensor_type.name}")
                continue
            a = np.asarray(t.data).view(np.uint8).reshape(-1)
            b = np.asarray(o.data).view(np.uint8).reshape(-1)
            if not np.array_equal(a, b):
                bad.append(f"{name} ({t.tensor_type.name}): bytes differ")
        if not bad:
            print(f"{os.path.basename(ours_path)}: {len(ref)} tensors identical to llama-quantize",
                  flush=True)
        return bad


def main() -> None:
    if len(sys.argv) > 1:
        jobs = [sys.argv[1:]]
    else:
        jobs = (line.rstrip("\n").split("\t") for line in sys.stdin if line.strip())
    failed = 0
    for job in jobs:
        src_path, ours_path, ftype = job[0], job[1], int(job[2])
        bad = compare(src_path, ours_path, ftype, job[3] if len(job) > 3 else None)
        if bad:
            failed += 1
            what = f"{ours_path} (ftype {ftype}" + (f", imatrix {job[3]})" if len(job) > 3 else ")")
            print(f"{what} differs from llama-quantize:\n  " + "\n  ".join(bad), file=sys.stderr,
                  flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
