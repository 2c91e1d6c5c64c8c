"""Loads GGUF files with llama.cpp (llama-cpp-python) and runs a forward pass.

usage: llama_load.py GGUF...
Fails if llama.cpp rejects a file (metadata types, shapes, tokenizer, pre-tokenizer)
or produces non-finite logits.
"""
import sys

import numpy as np
from llama_cpp import Llama


def main() -> None:
    for path in sys.argv[1:]:
        m = Llama(model_path=path, n_ctx=64, logits_all=True, verbose=False)
        toks = m.tokenize(b"hello world, hello larder", add_bos=True)
        assert len(toks) > 2, toks
        m.eval(toks)
        logits = np.array(m.scores[: len(toks)])
        assert np.isfinite(logits).all(), f"{path}: non-finite logits"
        print(f"{path}: ok, {len(toks)} tokens, vocab {m.n_vocab()}")


if __name__ == "__main__":
    main()
