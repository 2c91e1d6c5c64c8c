"""Checks a GGUF written by larder-convert against the HF checkpoint it came from.

usage: check_gguf.py GGUF MODEL_DIR PRESET
Exits non-zero with an explanation on the first mismatch; prints a summary.
"""
import json
import math
import os
import struct
import sys

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType, quants
from gguf.constants import GGML_QUANT_SIZES

BASE = {
    "f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0", "q4_0": "Q4_0", "q4_1": "Q4_1",
    "q5_0": "Q5_0", "q5_1": "Q5_1", "q2_k": "Q2_K", "q3_k_m": "Q3_K", "q4_k_s": "Q4_K",
    "q4_k_m": "Q4_K", "q5_k_s": "Q5_K", "q5_k_m": "Q5_K", "q6_k": "Q6_K",
}
FILE_TYPE = {
    "f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q2_k": 10,
    "q3_k_m": 12, "q4_k_s": 14, "q4_k_m": 15, "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18, "bf16": 32,
}
# Relative RMSE bounds for dequantized N(0, 0.02²) weights (see tests/it/quants.rs).
BOUND = {"Q2_K": 0.40, "Q3_K": 0.21, "Q4_K": 0.10, "Q5_K": 0.048, "Q6_K": 0.023}
TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"


# Optional byte-level oracle for K-quants: ggml-quants.c built as a shared library.
GGML_LIB = os.environ.get("LARDER_GGML_QUANTS_LIB")


def ggml_quantize(x, ty):
    import ctypes

    fn = getattr(ctypes.CDLL(GGML_LIB), f"quantize_row_{ty.lower().replace('_k', '_K')}_ref")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    x = np.ascontiguousarray(x, dtype=np.float32)
    blk_, size = GGML_QUANT_SIZES[Q[ty]]
    out = np.zeros(x.size // blk_ * size, dtype=np.uint8)
    fn(x.ctypes.data, out.ctypes.data, x.size)
    return out


def blk(t):
    return GGML_QUANT_SIZES[Q[t]][0]


def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def expected_type(preset, name, ne0, ndim, has_output, n_layer, n_gqa):
    if ndim < 2 or name.endswith("_norm.weight") or not name.endswith(".weight") or name == "rope_freqs.weight":
        return "F32"
    base = BASE[preset]
    if preset in ("f32", "f16", "bf16", "q8_0"):
        return base if ne0 % blk(base) == 0 else "F16"
    t = base
    layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
    if name == "output.weight" or (not has_output and name == "token_embd.weight"):
        t = "Q8_0" if ne0 % blk(t) else ("Q6_K" if t != "Q8_0" else t)
    elif name.endswith("attn_v.weight"):
        if preset == "q2_k":
            t = "Q4_K" if n_gqa >= 4 else "Q3_K"
        elif preset == "q3_k_m":
            t = "Q5_K" if layer < 2 else "Q4_K"
        elif preset in ("q4_k_m", "q5_k_m") and use_more_bits(layer, n_layer):
            t = "Q6_K"
        elif preset == "q4_k_s" and layer < 4:
            t = "Q5_K"
    elif name.endswith("ffn_down.weight"):
        if preset == "q2_k":
            t = "Q3_K"
        elif preset == "q3_k_m":
            t = "Q5_K" if layer < n_layer // 16 else "Q4_K"
        elif preset in ("q4_k_m", "q5_k_m") and use_more_bits(layer, n_layer):
            t = "Q6_K"
        elif preset == "q4_k_s" and layer < n_layer // 8:
            t = "Q5_K"
    elif name.endswith("attn_output.weight"):
        t = {"q2_k": "Q3_K", "q3_k_m": "Q4_K"}.get(preset, t)
    if ne0 % blk(t):
        t = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0", "Q2_K": "Q4_0", "Q3_K": "Q4_0"}.get(t, "F16")
        if ne0 % blk(t):
            t = "F16"
    return t


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        raw = data[a:b]
        if e["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif e["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        else:
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.reshape(e["shape"])
    return out


def permute(w, n_head, n_head_kv):
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def fail(msg):
    raise SystemExit(f"check_gguf: {msg}")


def check(cond, msg):
    if not cond:
        fail(msg)


def main():
    path, model_dir, preset = sys.argv[1:4]
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    r = GGUFReader(path)
    f = {k: v for k, v in r.fields.items()}

    def val(key):
        check(key in f, f"missing key {key}")
        return f[key].contents()

    def vtype(key):
        return f[key].types[0]

    hf_arch = cfg["architectures"][0]
    arch = {"Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3"}.get(hf_arch, "llama")
    qwen = arch in ("qwen2", "qwen3")
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim", cfg["hidden_size"] // n_head)
    n_layer = cfg["num_hidden_layers"]

    check(val("general.architecture") == arch, "architecture")
    check(list(f)[3] == "general.architecture", "general.architecture must be the first KV")  # after 3 header fields
    u32 = {
        f"{arch}.context_length": cfg["max_position_embeddings"],
        f"{arch}.embedding_length": cfg["hidden_size"],
        f"{arch}.block_count": n_layer,
        f"{arch}.feed_forward_length": cfg["intermediate_size"],
        f"{arch}.attention.head_count": n_head,
        f"{arch}.attention.head_count_kv": n_kv,
        "general.file_type": FILE_TYPE[preset],
        "general.quantization_version": 2,
    }
    if arch == "llama":
        u32[f"{arch}.vocab_size"] = cfg["vocab_size"]
        u32[f"{arch}.rope.dimension_count"] = head_dim
    else:
        check(f"{arch}.vocab_size" not in f and f"{arch}.rope.dimension_count" not in f, f"{arch} extra keys")
    if "head_dim" in cfg:
        u32[f"{arch}.attention.key_length"] = head_dim
        u32[f"{arch}.attention.value_length"] = head_dim
    for k, v in u32.items():
        check(val(k) == v, f"{k} = {val(k)}, expected {v}")
        check(vtype(k) == GGUFValueType.UINT32, f"{k} must be UINT32")
    f32 = {
        f"{arch}.rope.freq_base": cfg["rope_theta"],
        f"{arch}.attention.layer_norm_rms_epsilon": cfg["rms_norm_eps"],
    }
    rs = cfg.get("rope_scaling") or {}
    if rs.get("rope_type") == "yarn":
        check(val(f"{arch}.rope.scaling.type") == "yarn", "rope scaling type")
        f32[f"{arch}.rope.scaling.factor"] = rs["factor"]
        k = f"{arch}.rope.scaling.original_context_length"
        check(val(k) == rs["original_max_position_embeddings"] and vtype(k) == GGUFValueType.UINT32, k)
    else:
        check(not any(".rope.scaling." in k for k in f), "rope scaling keys without rope_scaling")
    pooling = f"{arch}.pooling_type"
    if qwen and os.path.exists(os.path.join(model_dir, "modules.json")):
        # make_model.py --embedding: last-token pooling (llama.cpp's LLAMA_POOLING_TYPE_LAST).
        check(val(pooling) == 3 and vtype(pooling) == GGUFValueType.UINT32, pooling)
    else:
        check(pooling not in f, f"{pooling} without modules.json")
    for k, v in f32.items():
        check(vtype(k) == GGUFValueType.FLOAT32 and val(k) == np.float32(v), f"{k} = {val(k)}, expected {v}")

    # --- tokenizer ---
    vocab_size = cfg["vocab_size"]
    tokens = val("tokenizer.ggml.tokens")
    types = list(val("tokenizer.ggml.token_type"))
    check(len(tokens) == vocab_size and len(types) == vocab_size, f"token count {len(tokens)} != {vocab_size}")
    check(f["tokenizer.ggml.token_type"].types[-1] == GGUFValueType.INT32, "token_type must be INT32")
    check(val("tokenizer.chat_template") == TEMPLATE, "chat template")
    if os.path.exists(os.path.join(model_dir, "tokenizer.model")):
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
        n = sp.get_piece_size()
        exp_tokens = [sp.id_to_piece(i) for i in range(n)] + [f"[PAD{i}]" for i in range(n, vocab_size)]
        exp_types = []
        for i in range(n):
            exp_types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 5 if sp.is_unused(i) else 6 if sp.is_byte(i) else 1)
        exp_types += [5] * (vocab_size - n)
        exp_scores = np.array([sp.get_score(i) for i in range(n)] + [-10000.0] * (vocab_size - n), dtype=np.float32)
        check(val("tokenizer.ggml.model") == "llama" and val("tokenizer.ggml.pre") == "default", "spm model/pre")
        check(np.array_equal(np.array(val("tokenizer.ggml.scores"), dtype=np.float32), exp_scores), "scores")
        check(val("tokenizer.ggml.bos_token_id") == sp.bos_id() == 1, "bos")
        check(val("tokenizer.ggml.eos_token_id") == sp.eos_id() == 2, "eos")
        # gguf-py resolves tokenizer_config names only through tokenizer.json's
        # added_tokens, and config.json has no unk_token_id: llama.cpp defaults it.
        check("tokenizer.ggml.unknown_token_id" not in f, "unk must be absent (as gguf-py writes it)")
        check(val("tokenizer.ggml.add_bos_token") is True and val("tokenizer.ggml.add_eos_token") is False, "add_bos/eos")
        check("tokenizer.ggml.merges" not in f, "spm has no merges")
    else:
        from tokenizers import Tokenizer

        tj = json.load(open(os.path.join(model_dir, "tokenizer.json")))
        tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        inv = {i: t for t, i in tok.get_vocab(with_added_tokens=True).items()}
        added = tok.get_added_tokens_decoder()
        exp_tokens, exp_types = [], []
        for i in range(vocab_size):
            if i not in inv:
                exp_tokens.append(f"[PAD{i}]")
                exp_types.append(5)
            elif i in added:
                exp_tokens.append(inv[i])
                exp_types.append(3 if added[i].special else 4)
            else:
                exp_tokens.append(inv[i])
                exp_types.append(1)
        check(val("tokenizer.ggml.model") == "gpt2", "bpe model")
        pre = "qwen2" if qwen else "llama-bpe"
        check(val("tokenizer.ggml.pre") == pre, f"pre = {val('tokenizer.ggml.pre')}, expected {pre}")
        merges = [m if isinstance(m, str) else " ".join(p.replace(" ", "\u0120") for p in m) for m in tj["model"]["merges"]]
        check(val("tokenizer.ggml.merges") == merges, "merges")
        check(val("tokenizer.ggml.bos_token_id") == tok.token_to_id("<|begin_of_text|>"), "bos")
        check(val("tokenizer.ggml.eos_token_id") == tok.token_to_id("<|end_of_text|>"), "eos")
        check(val("tokenizer.ggml.add_bos_token") is (not qwen), "add_bos")
    check(tokens == exp_tokens, f"tokens differ: {[(i, a, b) for i, (a, b) in enumerate(zip(tokens, exp_tokens)) if a != b][:5]}")
    check(types == exp_types, f"token types differ: {[(i, a, b) for i, (a, b) in enumerate(zip(types, exp_types)) if a != b][:5]}")

    # Special token ids, add_*_token flags and the chat template as gguf-py's SpecialVocab
    # (what llama.cpp's converter uses) reads them from the model directory.
    sv = gguf.SpecialVocab(model_dir, load_merges=False, n_vocab=vocab_size)
    keys = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "sep": "seperator_token_id",
            "pad": "padding_token_id", "cls": "cls_token_id", "mask": "mask_token_id"}
    for typ, key in keys.items():
        k = f"tokenizer.ggml.{key}"
        want = sv.special_token_ids.get(typ)
        got_id = val(k) if k in f else None
        check(got_id == want, f"{k} = {got_id}, SpecialVocab says {want}")
    for typ in ("bos", "eos", "sep"):
        k = f"tokenizer.ggml.add_{typ}_token"
        want = sv.add_special_token.get(typ)
        got_flag = val(k) if k in f else None
        check(got_flag == want, f"{k} = {got_flag}, SpecialVocab says {want}")
    check(val("tokenizer.chat_template") == sv.chat_template, "chat template differs from SpecialVocab's")

    # --- tensors ---
    hf = {}
    for fn in sorted(os.listdir(model_dir)):
        if fn.endswith(".safetensors"):
            hf.update(read_safetensors(os.path.join(model_dir, fn)))
    # HF -> GGUF names from gguf-py's own table (what convert_hf_to_gguf.py uses),
    # and every name must be one of the architecture's tensors.
    model_arch = gguf.MODEL_ARCH[arch.upper()]
    tmap = gguf.get_tensor_name_map(model_arch, n_layer)
    allowed = {gguf.TENSOR_NAMES[t].format(bid=i) for t in gguf.MODEL_TENSORS[model_arch] for i in range(n_layer)}
    expected = {}
    for name, w in hf.items():
        if name.endswith("rotary_emb.inv_freq"):
            continue
        g = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        check(g is not None and g.rsplit(".", 1)[0] in allowed, f"{name}: no {arch} tensor for it ({g})")
        if arch == "llama" and ("q_proj" in name):
            w = permute(w, n_head, n_head)
        if arch == "llama" and ("k_proj" in name):
            w = permute(w, n_head, n_kv)
        expected[g] = w
    if (cfg.get("rope_scaling") or {}).get("rope_type") == "llama3":
        rs = cfg["rope_scaling"]
        base, dim = cfg["rope_theta"], head_dim
        freqs = 1.0 / (np.float32(base) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
        old = cfg.get("original_max_position_embeddings", 8192)
        lo, hi, factor = old / rs["low_freq_factor"], old / rs["high_freq_factor"], rs["factor"]
        rf = []
        for fr in freqs:
            wl = 2 * math.pi / float(fr)
            if wl < hi:
                rf.append(1.0)
            elif wl > lo:
                rf.append(factor)
            else:
                s = (old / wl - rs["low_freq_factor"]) / (rs["high_freq_factor"] - rs["low_freq_factor"])
                rf.append(1 / ((1 - s) / factor + s))
        expected["rope_freqs.weight"] = np.array(rf, dtype=np.float32)
    got = {t.name: t for t in r.tensors}
    check(set(got) == set(expected), f"tensor set differs: extra {set(got) - set(expected)}, missing {set(expected) - set(got)}")
    has_output = "output.weight" in expected
    counts = {}
    for name, w in expected.items():
        t = got[name]
        shape = list(w.shape)
        check(list(map(int, t.shape)) == shape[::-1], f"{name}: shape {list(t.shape)} != {shape[::-1]}")
        ty = expected_type(preset, name, shape[-1], len(shape), has_output, n_layer, n_head // n_kv)
        check(t.tensor_type.name == ty, f"{name}: type {t.tensor_type.name}, expected {ty}")
        counts[ty] = counts.get(ty, 0) + 1
        raw = np.asarray(t.data).view(np.uint8).reshape(-1)
        ref = w.astype(np.float32).reshape(-1, shape[-1])
        if name == "rope_freqs.weight":
            got_v = raw.view(np.float32)
            check(np.allclose(got_v, w, rtol=1e-6, atol=0), f"rope_freqs {got_v} vs {w}")
        elif ty in BOUND:
            deq = quants.dequantize(raw.reshape(ref.shape[0], -1), Q[ty])
            err = np.sqrt(np.mean((deq - ref) ** 2) / np.mean(ref**2))
            check(err < BOUND[ty], f"{name} ({ty}): relative RMSE {err} > {BOUND[ty]}")
            if GGML_LIB:
                exp = ggml_quantize(ref, ty)
                check(np.array_equal(raw, exp), f"{name} ({ty}): bytes differ from ggml's quantize_row_{ty}_ref")
        else:
            exp = np.ascontiguousarray(quants.quantize(ref, Q[ty])).view(np.uint8).reshape(-1)
            check(raw.shape == exp.shape and np.array_equal(raw, exp), f"{name} ({ty}): bytes differ from gguf.quants.quantize")
    print(json.dumps({"tensors": len(got), "types": counts}))


if __name__ == "__main__":
    main()
