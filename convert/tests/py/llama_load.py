"""Loads GGUF files with llama.cpp (llama-cpp-python) and runs a forward pass.

usage: llama_load.py GGUF[=MODEL_DIR]...
Fails if llama.cpp rejects a file (metadata types, shapes, tokenizer, pre-tokenizer)
or produces non-finite logits. With MODEL_DIR, llama.cpp's tokenization of a few
texts must equal the HF tokenizer's (tokenizers / sentencepiece); a MODEL_DIR with
modules.json (an embedding model) must instead give one pooled, finite embedding.
"""
import os
import sys

import numpy as np
from llama_cpp import Llama


TEXTS = [
    "hello world, hello larder",
    "The quick brown fox jumps over the lazy dog. 123 4567 89!",
    "  leading spaces\nand\ttabs\n\n  trailing  ",
    "Quantization trades a little accuracy for a lot of memory.",
]


def reference_ids(model_dir, text):
    if os.path.exists(os.path.join(model_dir, "tokenizer.model")):
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model")).encode(text)
    from tokenizers import Tokenizer

    return Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json")).encode(text, add_special_tokens=False).ids


def check_embedding(path):
    """An embedding model (sentence-transformers layout): llama.cpp pools one finite vector."""
    m = Llama(model_path=path, n_ctx=64, embedding=True, verbose=False)
    e = np.array(m.embed("hello world, hello larder"))
    assert e.shape == (m.n_embd(),), f"{path}: expected one pooled vector, got shape {e.shape}"
    assert np.isfinite(e).all() and np.linalg.norm(e) > 0, f"{path}: bad embedding"
    print(f"{path}: ok, pooled embedding of {e.shape[0]}")


def main() -> None:
    for arg in sys.argv[1:]:
        path, _, model_dir = arg.partition("=")
        if model_dir and os.path.exists(os.path.join(model_dir, "modules.json")):
            check_embedding(path)
            continue
        m = Llama(model_path=path, n_ctx=64, logits_all=True, verbose=False)
        if model_dir:
            for text in TEXTS:
                ours = m.tokenize(text.encode(), add_bos=False, special=False)
                ref = reference_ids(model_dir, text)
                assert ours == ref, f"{path}: tokenization of {text!r} differs:\n llama.cpp {ours}\n reference {ref}"
        toks = m.tokenize(b"hello world, hello larder", add_bos=True)
        assert len(toks) > 2, toks
        m.eval(toks)
        logits = np.array(m.scores[: len(toks)])
        assert np.isfinite(logits).all(), f"{path}: non-finite logits"
        print(f"{path}: ok, {len(toks)} tokens, vocab {m.n_vocab()}")


if __name__ == "__main__":
    main()
