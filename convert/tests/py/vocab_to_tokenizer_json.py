"""Rebuilds a tokenizer.json from one of llama.cpp's `models/ggml-vocab-*.gguf`
files (real Llama 3 / Qwen2 / GPT-2 vocabularies and merges), so that our
pre-tokenizer fingerprint can be checked against llama.cpp's hash table.

usage: vocab_to_tokenizer_json.py VOCAB_GGUF KIND OUT_JSON   (KIND: llama-bpe | qwen2 | gpt-2)
"""
import json
import sys

from gguf import GGUFReader

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def main() -> None:
    path, kind, out = sys.argv[1:4]
    f = GGUFReader(path).fields
    toks = f["tokenizer.ggml.tokens"].contents()
    types = f["tokenizer.ggml.token_type"].contents()
    vocab = {t: i for i, (t, ty) in enumerate(zip(toks, types)) if ty == 1}
    added = [{"id": i, "content": t, "special": True} for i, (t, ty) in enumerate(zip(toks, types)) if ty == 3]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    model = {"type": "BPE", "vocab": vocab, "merges": f["tokenizer.ggml.merges"].contents(), "ignore_merges": kind == "llama-bpe"}
    tj = {"added_tokens": added, "normalizer": None, "model": model, "post_processor": byte_level}
    if kind == "gpt-2":
        tj["pre_tokenizer"] = dict(byte_level, use_regex=True)
    else:
        split = {"type": "Split", "pattern": {"Regex": LLAMA3 if kind == "llama-bpe" else QWEN2}, "behavior": "Isolated", "invert": False}
        tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [split, byte_level]}
    if kind == "qwen2":
        tj["normalizer"] = {"type": "NFC"}
    if kind == "llama-bpe":
        bos = toks[f["tokenizer.ggml.bos_token_id"].contents()]
        single = [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]
        special = {bos: {"id": bos, "ids": [f["tokenizer.ggml.bos_token_id"].contents()], "tokens": [bos]}}
        tj["post_processor"] = {"type": "Sequence", "processors": [byte_level, {"type": "TemplateProcessing", "single": single, "pair": single, "special_tokens": special}]}
    with open(out, "w", encoding="utf-8") as fp:
        json.dump(tj, fp, ensure_ascii=False)


if __name__ == "__main__":
    main()
