"""Checks a GGUF written by larder-convert against the HF checkpoint it came from.

usage: check_gguf.py GGUF MODEL_DIR PRESET [IMATRIX]
With IMATRIX (llama-imatrix output, either format), the file must have been quantized with it:
the mix follows llama.cpp's imatrix rules and every tensor with importance weights must equal
ggml_quantize_chunk's bytes given those weights (per expert). K-quant and IQ4 tensors must equal
ggml's bytes too: ggml comes from LARDER_GGML_QUANTS_LIB, else .ggml/libggml-base.so at the
checkout root (built by .ci/setup, or convert/tests/build_ggml.sh); without it this fails.
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
    "q5_0": "Q5_0", "q5_1": "Q5_1", "q2_k": "Q2_K", "q2_k_s": "Q2_K", "q3_k_s": "Q3_K", "q3_k_m": "Q3_K",
    "q3_k_l": "Q3_K", "iq4_nl": "IQ4_NL", "iq4_xs": "IQ4_XS", "q4_k_s": "Q4_K",
    "q4_k_m": "Q4_K", "q5_k_s": "Q5_K", "q5_k_m": "Q5_K", "q6_k": "Q6_K",
}
FILE_TYPE = {
    "f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q2_k": 10,
    "q3_k_s": 11, "q3_k_m": 12, "q3_k_l": 13, "q2_k_s": 21, "iq4_nl": 25, "iq4_xs": 30, "q4_k_s": 14, "q4_k_m": 15, "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18, "bf16": 32,
}
# Relative RMSE bounds for dequantized N(0, 0.02²) weights (see tests/it/quants.rs).
BOUND = {"Q2_K": 0.40, "Q3_K": 0.21, "Q4_K": 0.10, "Q5_K": 0.048, "Q6_K": 0.023, "IQ4_NL": 0.10, "IQ4_XS": 0.10}
# With importance weights (random here, so the unweighted error grows a little).
IM_BOUND = {**BOUND, "Q2_K": 0.45, "Q3_K": 0.25, "Q4_0": 0.14, "Q4_1": 0.13, "Q5_0": 0.07, "Q5_1": 0.07}
TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"


# The byte-level oracle for K-quants, IQ4 and importance weights: ggml's base library.
GGML_LIB = os.environ.get("LARDER_GGML_QUANTS_LIB") or os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".ggml", "libggml-base.so"))


def ggml_quantize(x, ty, qw=None):
    import ctypes

    # ggml_quantize_chunk is what llama-quantize calls (for IQ4 it differs from the _ref rows).
    fn = ctypes.CDLL(GGML_LIB).ggml_quantize_chunk
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                   ctypes.c_void_p]
    fn.restype = ctypes.c_size_t
    x = np.ascontiguousarray(x, dtype=np.float32)
    blk_, size = GGML_QUANT_SIZES[Q[ty]]
    out = np.zeros(x.size // blk_ * size, dtype=np.uint8)
    if qw is None:
        fn(int(Q[ty]), x.ctypes.data, out.ctypes.data, 0, x.shape[0], x.shape[-1], None)
        return out
    # one imatrix slice per expert, as llama-quantize passes them
    x3 = x.reshape(-1, x.shape[-2], x.shape[-1]) if x.ndim == 3 else x.reshape(1, x.shape[0], x.shape[1])
    qw = np.ascontiguousarray(qw, dtype=np.float32).reshape(x3.shape[0], x3.shape[2])
    row_bytes = x3.shape[2] // blk_ * size
    for e in range(x3.shape[0]):
        xe = np.ascontiguousarray(x3[e])
        oe = np.zeros(xe.shape[0] * row_bytes, dtype=np.uint8)
        we = np.ascontiguousarray(qw[e])
        fn(int(Q[ty]), xe.ctypes.data, oe.ctypes.data, 0, xe.shape[0], xe.shape[1], we.ctypes.data)
        out[e * xe.shape[0] * row_bytes:(e + 1) * xe.shape[0] * row_bytes] = oe
    return out


def blk(t):
    return GGML_QUANT_SIZES[Q[t]][0]


def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def expected_type(preset, name, shape, has_output, n_layer, n_gqa, n_expert, has_imatrix=False):
    """llama.cpp's choice: convert_hf_to_gguf.py for f32/f16/bf16/q8_0, llama_tensor_get_type otherwise."""
    ne0, ndim = shape[-1], len(shape)
    base = BASE[preset]
    if preset in ("f32", "f16", "bf16", "q8_0"):
        if ndim < 2 or name.endswith("_norm.weight") or not name.endswith(".weight") or name == "rope_freqs.weight" \
                or name.endswith("ffn_gate_inp.weight") or name.endswith("ffn_gate_inp_shexp.weight"):
            return "F32"
        return base if ne0 % blk(base) == 0 else "F16"
    # tensor_allows_quantization
    ggml_ndims = max(1, ndim - next((i for i, d in enumerate(shape[:-1]) if d != 1), ndim - 1))
    if ggml_ndims < 2 or not name.endswith("weight") or "_norm.weight" in name or "ffn_gate_inp.weight" in name:
        return "F32"
    t = base
    layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
    cat = ("output" if name == "output.weight" else "token_embd" if name == "token_embd.weight"
           else "attn_v" if "attn_qkv.weight" in name or "attn_v.weight" in name else "attn_k" if "attn_k.weight" in name
           else "attn_q" if "attn_q.weight" in name else "attn_output" if "attn_output.weight" in name
           else "ffn_up" if "ffn_up" in name else "ffn_gate" if "ffn_gate" in name else "ffn_down" if "ffn_down" in name else "other")
    if cat == "output" or (not has_output and cat == "token_embd"):
        t = "Q8_0" if ne0 % blk(t) else ("Q6_K" if t != "Q8_0" else t)
    elif cat == "attn_v":
        if preset == "q2_k":
            t = "Q4_K" if n_gqa >= 4 else "Q3_K"
        elif preset == "q2_k_s" and n_gqa >= 4:
            t = "Q4_K"
        elif preset == "q3_k_m":
            t = "Q5_K" if layer < 2 else "Q4_K"
        elif preset == "q3_k_l":
            t = "Q5_K"
        elif preset in ("iq4_nl", "iq4_xs") and n_gqa >= 4:
            t = "Q5_K"
        elif preset in ("q4_k_m", "q5_k_m") and use_more_bits(layer, n_layer):
            t = "Q6_K"
        elif preset == "q4_k_s" and layer < 4:
            t = "Q5_K"
        if n_expert == 8:
            t = "Q8_0"
    elif cat == "attn_k":
        if n_expert == 8:
            t = "Q8_0"
    elif cat == "ffn_down":
        if preset == "q2_k":
            t = "Q3_K"
        elif preset == "q2_k_s":
            if layer < n_layer // 8:
                t = "Q4_K"
        elif preset == "q3_k_m":
            t = "Q5_K" if layer < n_layer // 16 else "Q4_K"
        elif preset == "q3_k_l":
            t = "Q5_K"
        elif preset == "q4_k_m":
            if use_more_bits(layer, n_layer):
                t = "Q6_K"
        elif layer < n_layer // 8 and preset in ("iq4_nl", "iq4_xs") and not has_imatrix:
            t = "Q5_K"
        elif preset == "q5_k_m" and use_more_bits(layer, n_layer):
            t = "Q6_K"
        elif preset == "q4_k_s" and layer < n_layer // 8:
            t = "Q5_K"
        elif preset in ("q4_0", "q5_0") and has_imatrix and layer < n_layer // 8:
            t = "Q4_1" if preset == "q4_0" else "Q5_1"
    elif cat == "attn_output":
        if n_expert == 8:
            if preset in ("q2_k", "q3_k_s", "q3_k_m", "iq4_nl", "q4_k_s", "q4_k_m", "iq4_xs"):
                t = "Q5_K"
        else:
            t = {"q2_k": "Q3_K", "q3_k_m": "Q4_K", "q3_k_l": "Q5_K"}.get(preset, t)
    if ne0 % blk(t):
        t = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0", "Q2_K": "Q4_0", "Q3_K": "Q4_0", "IQ4_XS": "IQ4_NL"}.get(t, t)
        if ne0 % blk(t):
            t = "F16"
    return t


def read_safetensors(path, dtypes=None):
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
        if dtypes is not None:
            dtypes[name] = e["dtype"]
    return out


def permute(w, n_head, n_head_kv):
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


ARCH = {
    "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3", "Qwen2MoeForCausalLM": "qwen2moe",
    "Qwen3MoeForCausalLM": "qwen3moe", "Gemma2ForCausalLM": "gemma2", "Gemma3ForCausalLM": "gemma3",
    "Gemma3ForConditionalGeneration": "gemma3", "Phi3ForCausalLM": "phi3",
}
GEMMA3_DEFAULTS = {"num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "rms_norm_eps": 1e-6,
                   "max_position_embeddings": 131072}
U, F32 = GGUFValueType.UINT32, GGUFValueType.FLOAT32


def expected_arch_kv(cfg, arch, head_dim):
    """The ARCH.* keys convert_hf_to_gguf.py writes for this config, re-derived from its classes."""
    a = arch
    e = {}
    rs = cfg.get("rope_scaling") or {}
    if arch == "gemma2":
        e = {"context_length": (U, cfg["max_position_embeddings"]), "embedding_length": (U, cfg["hidden_size"]),
             "block_count": (U, cfg["num_hidden_layers"]), "feed_forward_length": (U, cfg["intermediate_size"]),
             "attention.head_count": (U, cfg["num_attention_heads"]),
             "attention.head_count_kv": (U, cfg.get("num_key_value_heads", cfg["num_attention_heads"])),
             "attention.layer_norm_rms_epsilon": (F32, cfg["rms_norm_eps"]),
             "attention.key_length": (U, head_dim), "attention.value_length": (U, head_dim),
             "attn_logit_softcapping": (F32, cfg["attn_logit_softcapping"]),
             "final_logit_softcapping": (F32, cfg["final_logit_softcapping"]),
             "attention.sliding_window": (U, cfg["sliding_window"])}
    elif arch == "phi3":
        orig = rs.get("original_max_position_embeddings", cfg["original_max_position_embeddings"])
        ctx = cfg.get("n_positions", cfg["max_position_embeddings"])
        rot = cfg.get("partial_rotary_factor", 1.0)
        e = {"context_length": (U, ctx), "rope.scaling.original_context_length": (U, orig),
             "embedding_length": (U, cfg["hidden_size"]), "feed_forward_length": (U, cfg["intermediate_size"]),
             "block_count": (U, cfg["num_hidden_layers"]), "attention.head_count": (U, cfg["num_attention_heads"]),
             "attention.head_count_kv": (U, cfg["num_key_value_heads"]),
             "attention.layer_norm_rms_epsilon": (F32, cfg["rms_norm_eps"]),
             "rope.dimension_count": (U, int(rot * cfg["hidden_size"]) // cfg["num_attention_heads"]),
             "rope.freq_base": (F32, cfg["rope_theta"]), "attention.sliding_window": (U, cfg.get("sliding_window") or 0)}
        if rs.get("long_factor"):
            scale = ctx / orig
            e["rope.scaling.attn_factor"] = (F32, math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1 else 1.0)
    else:
        # TextModel.set_gguf_parameters
        e = {"block_count": (U, cfg["num_hidden_layers"]), "context_length": (U, cfg["max_position_embeddings"]),
             "embedding_length": (U, cfg["hidden_size"]), "feed_forward_length": (U, cfg["intermediate_size"]),
             "attention.head_count": (U, cfg["num_attention_heads"]),
             "attention.layer_norm_rms_epsilon": (F32, cfg["rms_norm_eps"])}
        if "num_key_value_heads" in cfg:
            e["attention.head_count_kv"] = (U, cfg["num_key_value_heads"])
        if cfg.get("rope_theta") is not None:
            e["rope.freq_base"] = (F32, cfg["rope_theta"])
        if "head_dim" in cfg:
            e["attention.key_length"] = (U, head_dim)
            e["attention.value_length"] = (U, head_dim)
        n_exp = cfg.get("num_local_experts", cfg.get("num_experts"))
        if n_exp is not None:
            e["expert_count"] = (U, n_exp)
        if cfg.get("num_experts_per_tok") is not None:
            e["expert_used_count"] = (U, cfg["num_experts_per_tok"])
        if rs.get("rope_type", rs.get("type")) == "yarn":
            e["rope.scaling.type"] = (GGUFValueType.STRING, "yarn")
            e["rope.scaling.factor"] = (F32, rs["factor"])
            e["rope.scaling.original_context_length"] = (U, rs["original_max_position_embeddings"])
        if rs.get("rope_type", rs.get("type")) == "linear":
            e["rope.scaling.type"] = (GGUFValueType.STRING, "linear")
            e["rope.scaling.factor"] = (F32, rs["factor"])
        if arch == "llama":
            e["vocab_size"] = (U, cfg["vocab_size"])
            e["rope.dimension_count"] = (U, head_dim)
        if arch in ("qwen2moe", "qwen3moe"):
            e["expert_feed_forward_length"] = (U, cfg["moe_intermediate_size"])
            if "shared_expert_intermediate_size" in cfg:
                e["expert_shared_feed_forward_length"] = (U, cfg["shared_expert_intermediate_size"])
        if arch == "gemma3":
            e["attention.head_count_kv"] = (U, cfg["num_key_value_heads"])
            e["attention.key_length"] = (U, head_dim)
            e["attention.value_length"] = (U, head_dim)
            e["rope.freq_base"] = (F32, cfg.get("rope_theta", 1e6))
            if cfg.get("rope_local_base_freq") is not None:
                e["rope.freq_base_swa"] = (F32, cfg["rope_local_base_freq"])
            if cfg.get("final_logit_softcapping"):
                e["final_logit_softcapping"] = (F32, cfg["final_logit_softcapping"])
            if cfg.get("sliding_window_pattern") != 1:
                e["attention.sliding_window"] = (U, cfg["sliding_window"])
    return {f"{a}.{k}": v for k, v in e.items()}


def fail(msg):
    raise SystemExit(f"check_gguf: {msg}")


def check(cond, msg):
    if not cond:
        fail(msg)


def main():
    path, model_dir, preset = sys.argv[1:4]
    check(os.path.isfile(GGML_LIB), f"ggml's quantizer library not found at {GGML_LIB}: run .ci/setup (or "
          "convert/tests/build_ggml.sh) or point LARDER_GGML_QUANTS_LIB at a libggml-base.so")
    imatrix = None
    if len(sys.argv) > 4:
        import imatrix_util

        imatrix = imatrix_util.load(sys.argv[4])
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    r = GGUFReader(path)
    f = {k: v for k, v in r.fields.items()}

    def val(key):
        check(key in f, f"missing key {key}")
        return f[key].contents()

    def vtype(key):
        return f[key].types[0]

    hf_arch = cfg["architectures"][0]
    if "text_config" in cfg:  # a multimodal wrapper: the language model's keys win
        cfg = {**cfg, **cfg["text_config"]}
    arch = ARCH.get(hf_arch, "llama")
    qwen = arch.startswith("qwen")
    if arch == "gemma3":
        for k, v in GEMMA3_DEFAULTS.items():
            if cfg.get(k) is None:
                cfg[k] = v
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    head_dim = cfg.get("head_dim", cfg["hidden_size"] // n_head)
    n_layer = cfg["num_hidden_layers"]
    n_expert = cfg.get("num_local_experts", cfg.get("num_experts", 0))

    check(val("general.architecture") == arch, "architecture")
    check(list(f)[3] == "general.architecture", "general.architecture must be the first KV")  # after 3 header fields
    check(val("general.file_type") == FILE_TYPE[preset] and val("general.quantization_version") == 2, "file type")
    exp = expected_arch_kv(cfg, arch, head_dim)
    if qwen and os.path.exists(os.path.join(model_dir, "modules.json")):
        # make_model.py --embedding: last-token pooling (llama.cpp's LLAMA_POOLING_TYPE_LAST).
        exp[f"{arch}.pooling_type"] = (U, 3)
    got_keys = {k for k in f if k.startswith(arch + ".")}
    check(got_keys == set(exp), f"{arch} keys differ: extra {got_keys - set(exp)}, missing {set(exp) - got_keys}")
    for k, (ty, v) in exp.items():
        check(vtype(k) == ty, f"{k} has type {vtype(k).name}, expected {ty.name}")
        if ty == GGUFValueType.FLOAT32:
            check(val(k) == np.float32(v), f"{k} = {val(k)}, expected {v}")
        else:
            check(val(k) == v, f"{k} = {val(k)}, expected {v}")
    if arch in ("gemma2", "gemma3") and os.path.exists(os.path.join(model_dir, "tokenizer.model")):
        check(val("tokenizer.ggml.add_space_prefix") is False, "gemma: add_space_prefix must be false")

    # --- tokenizer ---
    vocab_size = cfg.get("vocab_size")
    if vocab_size is None:  # Gemma 3 multimodal: the tokenizer's size
        import sentencepiece as spm

        vocab_size = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model")).get_piece_size()
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
    hf, dtypes = {}, {}
    for fn in sorted(os.listdir(model_dir)):
        if fn.endswith(".safetensors"):
            hf.update(read_safetensors(os.path.join(model_dir, fn), dtypes))
    # What convert_hf_to_gguf.py does before mapping names: drop a vision tower, lift a
    # multimodal wrapper's language model, skip Gemma 2's lm_head, stack each layer's experts.
    if arch == "gemma3":
        hf = {k.replace("language_model.", ""): v for k, v in hf.items()
              if not k.startswith(("vision_tower.", "multi_modal_projector."))}
        dtypes = {k.replace("language_model.", ""): v for k, v in dtypes.items()}
    if arch == "gemma2":
        hf.pop("lm_head.weight", None)
    if n_expert:
        stacked = {}
        for name in sorted(hf):
            parts = name.split(".")
            if "experts" in parts and parts[parts.index("experts") + 1].isdigit():
                i = parts.index("experts")
                merged = ".".join(parts[: i + 1] + parts[i + 2:])
                if arch == "llama":  # Mixtral: LlamaModel's merged name
                    merged = f"layers.{parts[2]}.feed_forward.experts.{parts[-2]}.weight"
                stacked.setdefault(merged, {})[int(parts[i + 1])] = hf.pop(name)
        for merged, ex in stacked.items():
            check(sorted(ex) == list(range(n_expert)), f"{merged}: experts {sorted(ex)}")
            hf[merged] = np.stack([ex[e] for e in range(n_expert)])
            dtypes[merged] = "F32"
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
        if arch in ("gemma2", "gemma3") and name.endswith("norm.weight"):
            # torch adds in the source dtype when it is F16, else in F32 (bf16 is widened first)
            w = (w.astype(np.float16) + np.float16(1)).astype(np.float32) if dtypes[name] == "F16" else w + np.float32(1)
        if arch == "gemma3" and name.endswith("embed_tokens.weight"):
            w = w[:vocab_size]
        expected[g] = w
    rs = cfg.get("rope_scaling") or {}
    if arch == "phi3" and rs.get("long_factor"):
        expected["rope_factors_long.weight"] = np.array(rs["long_factor"], dtype=np.float32)
        expected["rope_factors_short.weight"] = np.array(rs["short_factor"], dtype=np.float32)
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
        ty = expected_type(preset, name, shape, has_output, n_layer, n_head // n_kv, n_expert, imatrix is not None)
        check(t.tensor_type.name == ty, f"{name}: type {t.tensor_type.name}, expected {ty}")
        counts[ty] = counts.get(ty, 0) + 1
        raw = np.asarray(t.data).view(np.uint8).reshape(-1)
        ref = w.astype(np.float32).reshape(-1, shape[-1])
        qw = None
        if imatrix is not None and name in imatrix and imatrix[name].size == shape[-1] * (shape[0] if len(shape) == 3 else 1):
            qw = imatrix[name]
        if qw is not None and ty not in ("F32", "F16", "BF16", "Q8_0"):
            exp = ggml_quantize(w.astype(np.float32), ty, qw)
            check(np.array_equal(raw, exp), f"{name} ({ty}): bytes differ from ggml_quantize_chunk with the imatrix")
            deq = quants.dequantize(raw.reshape(ref.shape[0], -1), Q[ty])
            err = np.sqrt(np.mean((deq - ref) ** 2) / np.mean(ref**2))
            check(err < IM_BOUND[ty], f"{name} ({ty}, imatrix): relative RMSE {err}")
            continue
        if name in ("rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight"):
            got_v = raw.view(np.float32)
            check(np.allclose(got_v, w, rtol=1e-6, atol=0), f"rope_freqs {got_v} vs {w}")
        elif ty in BOUND:
            deq = quants.dequantize(raw.reshape(ref.shape[0], -1), Q[ty])
            err = np.sqrt(np.mean((deq - ref) ** 2) / np.mean(ref**2))
            check(err < BOUND[ty], f"{name} ({ty}): relative RMSE {err} > {BOUND[ty]}")
            exp = ggml_quantize(ref, ty)
            check(np.array_equal(raw, exp), f"{name} ({ty}): bytes differ from ggml's quantize_row_{ty}_ref")
        else:
            exp = np.ascontiguousarray(quants.quantize(ref, Q[ty])).view(np.uint8).reshape(-1)
            check(raw.shape == exp.shape and np.array_equal(raw, exp), f"{name} ({ty}): bytes differ from gguf.quants.quantize")
    if imatrix is not None:
        check(val("quantize.imatrix.entries_count") == len(imatrix), "quantize.imatrix.entries_count")
        check(vtype("quantize.imatrix.entries_count") == GGUFValueType.UINT32, "entries_count type")
        check(val("quantize.imatrix.file") == os.path.basename(sys.argv[4]), "quantize.imatrix.file")
        check(val("quantize.imatrix.dataset") == "tiny.txt" and val("quantize.imatrix.chunks_count") == 7, "imatrix keys")
    else:
        check(not any(k.startswith("quantize.imatrix") for k in f), "imatrix keys without an imatrix")
    print(json.dumps({"tensors": len(got), "types": counts}))


if __name__ == "__main__":
    main()
