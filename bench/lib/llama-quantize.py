"""Quantizes a GGUF file with llama.cpp's own quantizer (llama-cpp-python's bindings).

usage: llama-quantize.py SRC.gguf DST.gguf q4_k_m|q3_k_m|q8_0   (uses every core this process may run on)
"""
import ctypes
import os
import sys

import llama_cpp

FTYPES = {
    "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "q3_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q3_K_M,
    "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
}

src, dst, kind = sys.argv[1:4]
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = FTYPES[kind]
params.nthread = len(os.sched_getaffinity(0))
llama_cpp.llama_backend_init()
rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
if rc != 0:
    sys.exit(f"llama_model_quantize({src} -> {dst}, {kind}) returned {rc}")
