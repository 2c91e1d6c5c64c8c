"""Logits of a converted GGUF against a reference forward pass of the source checkpoint.

usage: logits_check.py MODEL_DIR GGUF [--tokens N] [--mutate KIND]... [--llama-cpp]

Two forward passes written here in numpy (float64), over the same random token ids:
- the reference reads MODEL_DIR as transformers does: config.json and the safetensors tensors
  under their HF names, with the HF conventions (rotate-half rope on unpermuted q/k, Gemma's
  `x * (1 + w)` norms, separate expert tensors, Phi-3's fused projections chunked, the query
  scale from `query_pre_attn_scalar`, rope bases and windows from config.json; GPT-OSS's MXFP4
  experts dequantized from their blocks and scales as transformers does, gate and up taken from
  the interleaved rows, transformers' yarn frequencies, attention sinks, the clamped SwiGLU);
- the GGUF pass reads only the GGUF, as llama.cpp does: its metadata keys, its tensor names,
  every tensor dequantized with `gguf.quants.dequantize`, and llama.cpp's conventions (`llama`
  ropes interleaved pairs of the permuted q/k, the other families rotate halves; norms are
  used as stored; merged 3-D experts; the fused qkv split by head counts; Gemma's query scale
  from the key length; `rope_freqs` / `rope_factors_short` divide the frequencies; ggml's yarn
  ramp and magnitude scale; `gpt-oss` routes by softmax over the top k biased logits).
The two agree only if the converter wrote every tensor where, and as, llama.cpp expects it
and the metadata describes the model. With --llama-cpp, llama.cpp itself (llama-cpp-python)
also evaluates the GGUF on the same ids (F32 KV cache).

--mutate KIND alters the GGUF pass as a converter bug would (the test checks that each makes
the cosine drop): rope-layout (q/k permuted when they must not be, or the other way round),
gate-up (gate and up projections swapped), kv-swap (k and v swapped), norms (every norm weight
shifted by 1: Gemma's `1 + w` missing or doubled), experts (the merged experts in reverse
order), sinks (GPT-OSS's attention sinks left out).

Prints JSON: the smallest cosine over positions of each comparison, and the flat cosine.
"""
import json
import math
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, quants

# --- reading the source checkpoint -----------------------------------------------------------


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        raw = body[a:b]
        if meta["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif meta["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif meta["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif meta["dtype"] == "U8":  # MXFP4 codes and exponents, kept as bytes
            out[name] = np.frombuffer(raw, dtype=np.uint8).reshape(meta["shape"])
            continue
        else:
            raise SystemExit(f"{path}: unexpected dtype {meta['dtype']}")
        out[name] = arr.reshape(meta["shape"]).astype(np.float64)
    return out


def load_hf_tensors(d):
    tensors = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            tensors.update(read_safetensors(os.path.join(d, f)))
    return tensors


class Layer:
    """One decoder layer; attributes absent from a family stay None."""

    def __init__(self):
        self.attn_norm = self.wq = self.wk = self.wv = self.bq = self.bk = self.bv = self.wo = None
        self.q_norm = self.k_norm = self.post_attn_norm = self.ffn_norm = self.post_ffw_norm = None
        self.gate = self.up = self.down = None  # dense MLP
        self.router = self.gate_exps = self.up_exps = self.down_exps = None  # routed experts
        self.shared = None  # (gate, up, down, gate_inp) of a shared expert
        self.theta = 10000.0
        self.window = None  # sliding window, if this layer has one
        self.rope_factors = None  # divisors of the rope frequencies
        self.rope_attn_factor = 1.0
        self.inv_freq = None  # the rope frequencies themselves (yarn), if not from theta
        self.bo = self.sinks = self.router_b = None  # GPT-OSS: output bias, sinks, router bias
        self.gate_b = self.up_b = self.down_b = None  # GPT-OSS: expert biases [E, rows]


class Model:
    def __init__(self):
        self.layers = []
        self.embed = self.out_norm = self.output = None
        self.n_head = self.n_kv = self.head_dim = self.rope_dims = 0
        self.eps = 1e-6
        self.rope_mode = "neox"
        self.norm_plus_one = False
        self.embed_scale = 1.0
        self.attn_scale = 1.0
        self.attn_softcap = None
        self.final_softcap = None
        self.act = "silu"
        self.n_used = 0
        self.norm_topk = False
        self.topk_softmax = False  # GPT-OSS: softmax over the top k logits, not top k of a softmax


def llama3_inv_freq(inv, s):
    """transformers' `_compute_llama3_parameters`."""
    factor, lo, hi, old = s["factor"], s["low_freq_factor"], s["high_freq_factor"], s["original_max_position_embeddings"]
    lo_wl, hi_wl = old / lo, old / hi
    wl = 2 * math.pi / inv
    scaled = np.where(wl > lo_wl, inv / factor, inv)
    smooth = (old / wl - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wl < hi_wl) & ~(wl > lo_wl)
    return np.where(medium, smoothed, scaled)


def mxfp4_hf(blocks, scales):
    """transformers' MXFP4 dequantization: E2M1 table, low nibble first, ldexp(v, scale - 127)."""
    lut = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6])
    vals = np.stack([lut[blocks & 15], lut[blocks >> 4]], axis=-1).reshape(*scales.shape, 32)
    vals = vals * np.ldexp(1.0, scales.astype(np.int64) - 127)[..., None]
    return vals.reshape(*scales.shape[:-1], scales.shape[-1] * 32)


def yarn_hf(theta, dim, s, max_pos):
    """transformers' `_compute_yarn_parameters`: frequencies and the attention factor."""
    factor = s["factor"]
    orig = s.get("original_max_position_embeddings") or max_pos
    attn = s.get("attention_factor") or (0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)
    corr = lambda r: dim * math.log(orig / (r * 2 * math.pi)) / (2 * math.log(theta))  # noqa: E731
    low, high = corr(s.get("beta_fast") or 32), corr(s.get("beta_slow") or 1)
    if s.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2) - low) / (high - low), 0, 1)
    pos = theta ** (np.arange(0, dim, 2) / dim)
    extrapolation = 1 - ramp
    return (1 / (factor * pos)) * (1 - extrapolation) + (1 / pos) * extrapolation, attn


def yarn_ggml(theta, dims, factor, orig, beta_fast, beta_slow):
    """ggml's rope_yarn with llama.cpp's defaults (ext_factor 1): frequencies and magnitude."""
    corr = lambda r: dims * math.log(orig / (r * 2 * math.pi)) / (2 * math.log(theta))  # noqa: E731
    low, high = max(0, math.floor(corr(beta_fast))), min(dims - 1, math.ceil(corr(beta_slow)))
    mix = 1 - np.clip((np.arange(dims // 2) - low) / max(0.001, high - low), 0, 1)
    extrap = theta ** (-np.arange(0, dims, 2) / dims)
    return extrap / factor * (1 - mix) + extrap * mix, 1 + 0.1 * math.log(factor)


def gpt_oss_hf(m, L, g, cfg, i):
    """A GPT-OSS layer's extra tensors, from the checkpoint."""
    L.bo, L.sinks = g("self_attn.o_proj.bias"), g("self_attn.sinks")
    L.ffn_norm = g("post_attention_layernorm.weight")
    L.router, L.router_b = g("mlp.router.weight"), g("mlp.router.bias")
    gate_up_b = g("mlp.experts.gate_up_proj_bias")
    L.gate_b, L.up_b, L.down_b = gate_up_b[:, ::2], gate_up_b[:, 1::2], g("mlp.experts.down_proj_bias")
    if g("mlp.experts.gate_up_proj_blocks") is not None:
        gate_up = mxfp4_hf(g("mlp.experts.gate_up_proj_blocks"), g("mlp.experts.gate_up_proj_scales"))
        L.down_exps = mxfp4_hf(g("mlp.experts.down_proj_blocks"), g("mlp.experts.down_proj_scales"))
    else:  # dequantized: input-major
        gate_up = g("mlp.experts.gate_up_proj").transpose(0, 2, 1)
        L.down_exps = g("mlp.experts.down_proj").transpose(0, 2, 1)
    L.gate_exps, L.up_exps = gate_up[:, ::2], gate_up[:, 1::2]
    types = cfg.get("layer_types")
    if (types[i] == "sliding_attention") if types else i % 2 == 0:
        L.window = cfg["sliding_window"]


def from_hf(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    arch = cfg["architectures"][0]
    if "text_config" in cfg:
        cfg = {**cfg, **cfg["text_config"]}
    t = load_hf_tensors(d)
    prefix = "language_model.model." if any(k.startswith("language_model.") for k in t) else "model."
    m = Model()
    gemma = arch.startswith("Gemma")
    m.n_head, m.n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    m.head_dim = cfg.get("head_dim") or cfg["hidden_size"] // m.n_head
    m.rope_dims = m.head_dim
    m.eps = cfg["rms_norm_eps"]
    m.norm_plus_one = gemma
    if gemma:
        m.embed_scale = math.sqrt(cfg["hidden_size"])
        m.act = "gelu"
        m.attn_scale = cfg["query_pre_attn_scalar"] ** -0.5
        m.attn_softcap = cfg.get("attn_logit_softcapping")
        m.final_softcap = cfg.get("final_logit_softcapping")
    else:
        m.attn_scale = m.head_dim ** -0.5
    m.embed = t[prefix + "embed_tokens.weight"]
    m.out_norm = t[prefix + "norm.weight"]
    m.output = m.embed if cfg.get("tie_word_embeddings") or gemma else t["lm_head.weight"]
    m.n_used = cfg.get("num_experts_per_tok", 0)
    m.norm_topk = arch == "MixtralForCausalLM" or bool(cfg.get("norm_topk_prob"))
    theta = cfg.get("rope_theta", 10000.0)
    inv = theta ** (-np.arange(0, m.head_dim, 2) / m.head_dim)
    scaling = cfg.get("rope_scaling") or {}
    rope_factors, attn_factor, inv_freq = None, 1.0, None
    gpt_oss = arch == "GptOssForCausalLM"
    m.topk_softmax = gpt_oss
    if gpt_oss:
        m.act = "swiglu_oai"
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "llama3":
        rope_factors = inv / llama3_inv_freq(inv, scaling)
    elif kind == "yarn":
        inv_freq, attn_factor = yarn_hf(theta, m.head_dim, scaling, cfg["max_position_embeddings"])
    elif kind == "longrope":
        # Short factors while the sequence fits the original context.
        rope_factors = np.array(scaling["short_factor"], dtype=np.float64)
        factor = cfg["max_position_embeddings"] / cfg["original_max_position_embeddings"]
        if factor > 1:
            attn_factor = math.sqrt(1 + math.log(factor) / math.log(cfg["original_max_position_embeddings"]))
    elif kind is not None:
        raise SystemExit(f"reference: rope scaling {kind} not modelled")
    for i in range(cfg["num_hidden_layers"]):
        p = f"{prefix}layers.{i}."
        g = lambda n: t.get(p + n)  # noqa: E731
        L = Layer()
        L.attn_norm = g("input_layernorm.weight")
        if arch == "Phi3ForCausalLM":
            qkv = g("self_attn.qkv_proj.weight")
            q_rows, kv_rows = m.n_head * m.head_dim, m.n_kv * m.head_dim
            L.wq, L.wk, L.wv = qkv[:q_rows], qkv[q_rows:q_rows + kv_rows], qkv[q_rows + kv_rows:]
            gate_up = g("mlp.gate_up_proj.weight")
            L.gate, L.up = np.split(gate_up, 2, axis=0)
        else:
            L.wq, L.wk, L.wv = g("self_attn.q_proj.weight"), g("self_attn.k_proj.weight"), g("self_attn.v_proj.weight")
        L.bq, L.bk, L.bv = g("self_attn.q_proj.bias"), g("self_attn.k_proj.bias"), g("self_attn.v_proj.bias")
        L.wo = g("self_attn.o_proj.weight")
        L.q_norm, L.k_norm = g("self_attn.q_norm.weight"), g("self_attn.k_norm.weight")
        if gemma:
            L.post_attn_norm = g("post_attention_layernorm.weight")
            L.ffn_norm = g("pre_feedforward_layernorm.weight")
            L.post_ffw_norm = g("post_feedforward_layernorm.weight")
        else:
            L.ffn_norm = g("post_attention_layernorm.weight")
        if arch == "MixtralForCausalLM":
            n = cfg["num_local_experts"]
            L.router = g("block_sparse_moe.gate.weight")
            e = lambda k, w: np.stack([g(f"block_sparse_moe.experts.{j}.{w}.weight") for j in range(n)])  # noqa: E731
            L.gate_exps, L.up_exps, L.down_exps = e(n, "w1"), e(n, "w3"), e(n, "w2")
        elif arch in ("Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM"):
            n = cfg["num_experts"]
            L.router = g("mlp.gate.weight")
            e = lambda w: np.stack([g(f"mlp.experts.{j}.{w}.weight") for j in range(n)])  # noqa: E731
            L.gate_exps, L.up_exps, L.down_exps = e("gate_proj"), e("up_proj"), e("down_proj")
            if g("mlp.shared_expert.gate_proj.weight") is not None:
                L.shared = (g("mlp.shared_expert.gate_proj.weight"), g("mlp.shared_expert.up_proj.weight"),
                            g("mlp.shared_expert.down_proj.weight"), g("mlp.shared_expert_gate.weight").reshape(-1))
        elif gpt_oss:
            gpt_oss_hf(m, L, g, cfg, i)
        elif arch != "Phi3ForCausalLM":
            L.gate, L.up, L.down = g("mlp.gate_proj.weight"), g("mlp.up_proj.weight"), g("mlp.down_proj.weight")
        if arch == "Phi3ForCausalLM":
            L.down = g("mlp.down_proj.weight")
        L.theta, L.rope_factors, L.rope_attn_factor, L.inv_freq = theta, rope_factors, attn_factor, inv_freq
        if arch == "Gemma2ForCausalLM" and i % 2 == 0:
            L.window = cfg["sliding_window"]
        if arch.startswith("Gemma3"):
            types = cfg.get("layer_types")
            sliding = types[i] == "sliding_attention" if types else (i + 1) % cfg.get("sliding_window_pattern", 6) != 0
            if sliding:
                L.window = cfg["sliding_window"]
                L.theta = cfg.get("rope_local_base_freq", 10000.0)
        m.layers.append(L)
    return m


# --- reading the GGUF as llama.cpp does --------------------------------------------------------


def from_gguf(path):
    r = GGUFReader(path)

    def kv(key, default=None):
        f = r.fields.get(key)
        return default if f is None else f.contents()

    arch = kv("general.architecture")
    a = lambda k, d=None: kv(f"{arch}.{k}", d)  # noqa: E731
    tensors = {}
    for t in r.tensors:
        if t.tensor_type == GGMLQuantizationType.F32:
            arr = np.array(t.data, dtype=np.float64)
        else:
            arr = quants.dequantize(np.array(t.data), t.tensor_type).astype(np.float64)
        tensors[t.name] = arr
    g = tensors.get
    m = Model()
    n_embd = a("embedding_length")
    m.n_head, m.n_kv = a("attention.head_count"), a("attention.head_count_kv")
    m.head_dim = a("attention.key_length", n_embd // m.n_head)
    m.rope_dims = a("rope.dimension_count", m.head_dim)
    m.eps = a("attention.layer_norm_rms_epsilon")
    # llama.cpp's llama_model_rope_type: LLM_ARCH_LLAMA ropes adjacent pairs (NORM).
    m.rope_mode = "norm" if arch == "llama" else "neox"
    gemma = arch in ("gemma2", "gemma3")
    if gemma:
        m.embed_scale = math.sqrt(n_embd)
        m.act = "gelu"
        m.attn_scale = 1.0 / math.sqrt(m.head_dim)
        m.attn_softcap = a("attn_logit_softcapping")
        m.final_softcap = a("final_logit_softcapping")
    else:
        m.attn_scale = 1.0 / math.sqrt(m.head_dim)
    m.embed = g("token_embd.weight")
    m.out_norm = g("output_norm.weight")
    m.output = g("output.weight") if "output.weight" in tensors else m.embed
    m.n_used = a("expert_used_count", 0)
    # build_moe_ffn's norm_w: true for llama (Mixtral) and qwen3moe, false for qwen2moe.
    m.norm_topk = arch in ("llama", "qwen3moe")
    theta = a("rope.freq_base", 10000.0)
    factors = g("rope_freqs.weight")
    attn_factor = 1.0
    if "rope_factors_short.weight" in tensors:
        # llama.cpp picks the short factors while n_ctx fits the original context.
        factors = g("rope_factors_short.weight")
        attn_factor = a("rope.scaling.attn_factor", 1.0)
    window = a("attention.sliding_window")
    inv_freq = None
    if a("rope.scaling.type") == "yarn":
        inv_freq, attn_factor = yarn_ggml(theta, m.rope_dims, a("rope.scaling.factor"),
                                          a("rope.scaling.original_context_length"),
                                          a("rope.scaling.yarn_beta_fast", 32.0), a("rope.scaling.yarn_beta_slow", 1.0))
    gpt_oss = arch == "gpt-oss"
    if gpt_oss:
        m.act, m.topk_softmax, m.norm_topk = "swiglu_oai", True, False
    for i in range(a("block_count")):
        p = f"blk.{i}."
        b = lambda n: g(p + n)  # noqa: E731
        L = Layer()
        L.attn_norm = b("attn_norm.weight")
        if p + "attn_qkv.weight" in tensors:
            qkv = b("attn_qkv.weight")
            q_rows, kv_rows = m.n_head * m.head_dim, m.n_kv * m.head_dim
            L.wq, L.wk, L.wv = qkv[:q_rows], qkv[q_rows:q_rows + kv_rows], qkv[q_rows + kv_rows:]
        else:
            L.wq, L.wk, L.wv = b("attn_q.weight"), b("attn_k.weight"), b("attn_v.weight")
        L.bq, L.bk, L.bv = b("attn_q.bias"), b("attn_k.bias"), b("attn_v.bias")
        L.wo = b("attn_output.weight")
        L.q_norm, L.k_norm = b("attn_q_norm.weight"), b("attn_k_norm.weight")
        L.post_attn_norm = b("post_attention_norm.weight")
        L.ffn_norm = b("ffn_norm.weight")
        L.post_ffw_norm = b("post_ffw_norm.weight")
        if p + "ffn_gate_inp.weight" in tensors:
            L.router = b("ffn_gate_inp.weight")
            L.gate_exps, L.up_exps, L.down_exps = b("ffn_gate_exps.weight"), b("ffn_up_exps.weight"), b("ffn_down_exps.weight")
            if p + "ffn_gate_shexp.weight" in tensors:
                L.shared = (b("ffn_gate_shexp.weight"), b("ffn_up_shexp.weight"), b("ffn_down_shexp.weight"),
                            b("ffn_gate_inp_shexp.weight").reshape(-1))
        elif p + "ffn_gate.weight" in tensors:
            L.gate, L.up, L.down = b("ffn_gate.weight"), b("ffn_up.weight"), b("ffn_down.weight")
        else:
            # Phi-3: ffn_up holds gate and up; LLM_FFN_SWIGLU takes the first half as the gate.
            L.gate, L.up = np.split(b("ffn_up.weight"), 2, axis=0)
            L.down = b("ffn_down.weight")
        L.theta, L.rope_factors, L.rope_attn_factor, L.inv_freq = theta, factors, attn_factor, inv_freq
        if arch in ("gemma2", "gpt-oss") and i % 2 == 0:  # swa pattern 2
            L.window = window
        if gpt_oss:  # its post_attention_norm is the norm before the experts
            L.ffn_norm, L.post_attn_norm = L.post_attn_norm, None
            L.bo, L.sinks, L.router_b = b("attn_output.bias"), b("attn_sinks.weight"), b("ffn_gate_inp.bias")
            L.gate_b, L.up_b, L.down_b = b("ffn_gate_exps.bias"), b("ffn_up_exps.bias"), b("ffn_down_exps.bias")
        if arch == "gemma3" and i % 6 < 5:  # swa pattern 6, local rope base
            L.window = window
            L.theta = a("rope.freq_base_swa", 10000.0)
        m.layers.append(L)
    return m


def mutate(m, kind):
    if kind == "rope-layout":
        m.rope_mode = "neox" if m.rope_mode == "norm" else "norm"
    for L in m.layers:
        if kind == "gate-up":
            L.gate, L.up = L.up, L.gate
            L.gate_exps, L.up_exps = L.up_exps, L.gate_exps
            L.gate_b, L.up_b = L.up_b, L.gate_b
            if L.shared is not None:
                L.shared = (L.shared[1], L.shared[0], L.shared[2], L.shared[3])
        elif kind == "kv-swap":
            L.wk, L.wv, L.bk, L.bv = L.wv, L.wk, L.bv, L.bk
        elif kind == "norms":
            for n in ("attn_norm", "ffn_norm", "post_attn_norm", "post_ffw_norm", "q_norm", "k_norm"):
                if getattr(L, n) is not None:
                    setattr(L, n, getattr(L, n) + 1.0)
        elif kind == "sinks":
            L.sinks = None
        elif kind == "experts":
            if L.gate_exps is None:
                raise SystemExit("--mutate experts: not a mixture of experts")
            L.gate_exps, L.up_exps, L.down_exps = L.gate_exps[::-1], L.up_exps[::-1], L.down_exps[::-1]
            if L.gate_b is not None:
                L.gate_b, L.up_b, L.down_b = L.gate_b[::-1], L.up_b[::-1], L.down_b[::-1]
        elif kind not in ("rope-layout",):
            raise SystemExit(f"unknown mutation {kind}")
    if kind == "norms":
        m.out_norm = m.out_norm + 1.0


# --- the forward pass ---------------------------------------------------------------------------


def rms(x, w, eps, plus_one):
    y = x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    return y * (1.0 + w if plus_one else w)


def rope(x, theta, dims, mode, factors, attn_factor, inv=None):
    """x: [T, H, D]; rotates the first `dims` of each head at positions 0..T-1."""
    T = x.shape[0]
    if inv is None:
        inv = theta ** (-np.arange(0, dims, 2) / dims)
    if factors is not None:
        inv = inv / factors
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos, sin = (np.cos(ang) * attn_factor)[:, None, :], (np.sin(ang) * attn_factor)[:, None, :]
    rot, rest = x[..., :dims], x[..., dims:]
    out = np.empty_like(rot)
    if mode == "neox":
        h = dims // 2
        a, b = rot[..., :h], rot[..., h:]
        out[..., :h], out[..., h:] = a * cos - b * sin, b * cos + a * sin
    else:
        a, b = rot[..., 0::2], rot[..., 1::2]
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
    return np.concatenate([out, rest], axis=-1)


def act(x, kind):
    if kind == "swiglu_oai":  # x = (gate, up): GPT-OSS's clamped SwiGLU (limit 7, alpha 1.702)
        gate, up = np.minimum(x[0], 7.0), np.clip(x[1], -7.0, 7.0)
        return gate / (1.0 + np.exp(-1.702 * gate)) * (up + 1.0)
    if kind == "gelu":  # gelu_pytorch_tanh
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return x / (1.0 + np.exp(-x))


def mlp(h, gate, up, down, kind, biases=None):
    if kind == "swiglu_oai":
        gb, ub, db = biases
        return act((h @ gate.T + gb, h @ up.T + ub), kind) @ down.T + db
    return (act(h @ gate.T, kind) * (h @ up.T)) @ down.T


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def forward(m, ids):
    T = len(ids)
    x = m.embed[ids] * m.embed_scale
    pos = np.arange(T)
    causal = pos[None, :] > pos[:, None]
    for L in m.layers:
        h = rms(x, L.attn_norm, m.eps, m.norm_plus_one)
        q, k, v = h @ L.wq.T, h @ L.wk.T, h @ L.wv.T
        if L.bq is not None:
            q, k, v = q + L.bq, k + L.bk, v + L.bv
        q = q.reshape(T, m.n_head, m.head_dim)
        k = k.reshape(T, m.n_kv, m.head_dim)
        v = v.reshape(T, m.n_kv, m.head_dim)
        if L.q_norm is not None:
            q = rms(q, L.q_norm, m.eps, m.norm_plus_one)
            k = rms(k, L.k_norm, m.eps, m.norm_plus_one)
        q = rope(q, L.theta, m.rope_dims, m.rope_mode, L.rope_factors, L.rope_attn_factor, L.inv_freq)
        k = rope(k, L.theta, m.rope_dims, m.rope_mode, L.rope_factors, L.rope_attn_factor, L.inv_freq)
        group = m.n_head // m.n_kv
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
        s = np.einsum("thd,shd->hts", q, k) * m.attn_scale
        if m.attn_softcap:
            s = m.attn_softcap * np.tanh(s / m.attn_softcap)
        mask = causal if L.window is None else causal | (pos[:, None] - pos[None, :] >= L.window)
        s = np.where(mask[None], -np.inf, s)
        if L.sinks is not None:  # one more logit per head, in the softmax only
            sink = np.broadcast_to(L.sinks[:, None, None], (s.shape[0], T, 1))
            p = softmax(np.concatenate([s, sink], axis=-1))[..., :-1]
        else:
            p = softmax(s)
        o = np.einsum("hts,shd->thd", p, v).reshape(T, m.n_head * m.head_dim) @ L.wo.T
        if L.bo is not None:
            o = o + L.bo
        if L.post_attn_norm is not None:
            o = rms(o, L.post_attn_norm, m.eps, m.norm_plus_one)
        x = x + o
        h = rms(x, L.ffn_norm, m.eps, m.norm_plus_one)
        if L.router is not None:
            logits = h @ L.router.T + (0 if L.router_b is None else L.router_b)
            probs = logits if m.topk_softmax else softmax(logits)
            top = np.argsort(-probs, axis=-1, kind="stable")[:, : m.n_used]
            out = np.zeros_like(h)
            for t in range(T):
                w = softmax(probs[t, top[t]]) if m.topk_softmax else probs[t, top[t]]
                if m.norm_topk:
                    w = w / w.sum()
                for e, we in zip(top[t], w):
                    biases = None if L.gate_b is None else (L.gate_b[e], L.up_b[e], L.down_b[e])
                    out[t] += we * mlp(h[t:t + 1], L.gate_exps[e], L.up_exps[e], L.down_exps[e], m.act, biases)[0]
            if L.shared is not None:
                sg, su, sd, sgate = L.shared
                out += (1.0 / (1.0 + np.exp(-(h @ sgate))))[:, None] * mlp(h, sg, su, sd, m.act)
        else:
            out = mlp(h, L.gate, L.up, L.down, m.act)
        if L.post_ffw_norm is not None:
            out = rms(out, L.post_ffw_norm, m.eps, m.norm_plus_one)
        x = x + out
    x = rms(x, m.out_norm, m.eps, m.norm_plus_one)
    logits = x @ m.output.T
    if m.final_softcap:
        logits = m.final_softcap * np.tanh(logits / m.final_softcap)
    return logits


def cosines(a, b):
    n = min(a.shape[-1], b.shape[-1])  # llama.cpp's vocab may drop padding rows the source has
    a, b = a[:, :n], b[:, :n]
    per = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    flat = float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(per.min()), flat


def llama_cpp_logits(path, ids):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=path, n_ctx=64, n_batch=64, logits_all=True, verbose=False,
                          type_k=int(GGMLQuantizationType.F32), type_v=int(GGMLQuantizationType.F32))
    llm.eval(list(map(int, ids)))
    return np.array(llm.scores[: len(ids)], dtype=np.float64)


def main():
    args = sys.argv[1:]
    model_dir, gguf_path = args[0], args[1]
    n_tok = int(args[args.index("--tokens") + 1]) if "--tokens" in args else 24
    mutations = [args[i + 1] for i, a in enumerate(args) if a == "--mutate"]
    ref = from_hf(model_dir)
    ours = from_gguf(gguf_path)
    for kind in mutations:
        mutate(ours, kind)
    vocab = min(ref.embed.shape[0], ours.embed.shape[0])
    ids = np.random.default_rng(7).integers(0, vocab, size=n_tok)
    expected = forward(ref, ids)
    got = forward(ours, ids)
    result = {}
    result["numpy"], result["numpy_flat"] = cosines(expected, got)
    if "--llama-cpp" in args:
        result["llama_cpp"], result["llama_cpp_flat"] = cosines(expected, llama_cpp_logits(gguf_path, ids))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
