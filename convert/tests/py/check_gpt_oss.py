"""Checks a GPT-OSS GGUF written by larder-convert against its checkpoint, tensor by tensor.

usage: check_gpt_oss.py GGUF MODEL_DIR PRESET     (PRESET: f32 | f16 | bf16 | q8_0)
What llama.cpp's `convert_hf_to_gguf.py` (GptOssModel) writes, restated in numpy:
- every `gpt-oss.*` key, with its value and type, and `general.file_type` (MOSTLY_MXFP4_MOE,
  38, for a float conversion of a checkpoint whose config declares mxfp4);
- MXFP4 experts: the bytes of the converter's repack (its `transform_nibble_layout` and the
  exponent byte prepended), redone here with numpy from the `*_blocks`/`*_scales` tensors, and
  the `gguf` package's dequantization of them equal to transformers' dequantization;
- every other tensor: the `gguf` package's quantization (or cast) of the source values, after
  the converter's split of the interleaved gate/up rows and transposition of dequantized
  experts; 1-D tensors, biases and the router in F32.
Prints a JSON summary; exits non-zero on the first mismatch.
"""
import json
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType, quants

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from logits_check import load_hf_tensors, mxfp4_hf  # noqa: E402

BASE = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0}
FILE_TYPE = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7}
U, F, S = GGUFValueType.UINT32, GGUFValueType.FLOAT32, GGUFValueType.STRING


def fail(msg):
    raise SystemExit(f"check_gpt_oss: {msg}")


def repack_like_llama_cpp(blocks, scales):
    """GptOssModel.transform_nibble_layout + repack_mxfp4, step for step, in numpy."""
    t = (blocks & 0x0F) << 4 | (blocks & 0xF0) >> 4  # swap nibbles
    a, b = t[..., :8], t[..., 8:]
    a = np.stack((a & 0xF0, (a << 4) & 0xF0), axis=-1).reshape(t.shape)
    b = np.stack((b >> 4, b & 0x0F), axis=-1).reshape(t.shape)
    out = a | b
    out = (out & 0xF0) >> 4 | (out & 0x0F) << 4
    data = np.concatenate((scales[..., None], out), axis=-1)
    return data.reshape(data.shape[0], data.shape[1], -1)


def main():
    gguf_path, model_dir, preset = sys.argv[1:4]
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    r = GGUFReader(gguf_path)
    kv = {k: (f.contents(), f.types[0] if f.types else None) for k, f in r.fields.items()}
    mxfp4_declared = (cfg.get("quantization_config") or {}).get("quant_method") == "mxfp4"
    want_ft = 38 if mxfp4_declared and preset in ("f32", "f16", "bf16") else FILE_TYPE[preset]
    if kv["general.architecture"][0] != "gpt-oss" or kv["general.file_type"][0] != want_ft:
        fail(f"architecture/file_type {kv['general.architecture'][0]} {kv['general.file_type'][0]} != gpt-oss {want_ft}")
    rs = cfg["rope_scaling"]
    exp = {
        "context_length": (cfg["max_position_embeddings"], U), "embedding_length": (cfg["hidden_size"], U),
        "feed_forward_length": (cfg["intermediate_size"], U), "block_count": (cfg["num_hidden_layers"], U),
        "attention.head_count": (cfg["num_attention_heads"], U),
        "attention.head_count_kv": (cfg["num_key_value_heads"], U),
        "attention.key_length": (cfg["head_dim"], U), "attention.value_length": (cfg["head_dim"], U),
        "rope.freq_base": (cfg["rope_theta"], F), "attention.layer_norm_rms_epsilon": (cfg["rms_norm_eps"], F),
        "expert_count": (cfg["num_local_experts"], U), "expert_used_count": (cfg["num_experts_per_tok"], U),
        "rope.scaling.type": ("yarn", S), "rope.scaling.factor": (rs["factor"], F),
        "rope.scaling.original_context_length": (rs["original_max_position_embeddings"], U),
        "rope.scaling.yarn_beta_fast": (rs["beta_fast"], F), "rope.scaling.yarn_beta_slow": (rs["beta_slow"], F),
        "attention.sliding_window": (cfg["sliding_window"], U),
        "expert_feed_forward_length": (cfg["intermediate_size"], U),
    }
    got = {k.removeprefix("gpt-oss."): v for k, v in kv.items() if k.startswith("gpt-oss.")}
    if set(got) != set(exp):
        fail(f"keys differ: extra {set(got) - set(exp)}, missing {set(exp) - set(got)}")
    for k, (v, t) in exp.items():
        gv, gt = got[k]
        ok = gt == t and (np.float32(gv) == np.float32(v) if t == F else gv == v)
        if not ok:
            fail(f"gpt-oss.{k}: {gv!r} ({gt}) != {v!r} ({t})")

    src = load_hf_tensors(model_dir)
    # The GGUF tensors expected: name -> (source values or MXFP4 bytes, is_mxfp4).
    want = {"token_embd.weight": src["model.embed_tokens.weight"], "output_norm.weight": src["model.norm.weight"],
            "output.weight": src["lm_head.weight"]}
    simple = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "post_attention_norm.weight",
              "self_attn.sinks": "attn_sinks.weight", "mlp.router.weight": "ffn_gate_inp.weight",
              "mlp.router.bias": "ffn_gate_inp.bias", "mlp.experts.down_proj_bias": "ffn_down_exps.bias"}
    for x in "qkvo":
        g = "attn_output" if x == "o" else f"attn_{x}"
        simple[f"self_attn.{x}_proj.weight"], simple[f"self_attn.{x}_proj.bias"] = f"{g}.weight", f"{g}.bias"
    mxfp4 = set()
    for i in range(cfg["num_hidden_layers"]):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        for h, g in simple.items():
            want[b + g] = src[p + h]
        e = p + "mlp.experts."
        gub = src[e + "gate_up_proj_bias"]
        want[b + "ffn_gate_exps.bias"], want[b + "ffn_up_exps.bias"] = gub[:, ::2], gub[:, 1::2]
        if e + "gate_up_proj_blocks" in src:
            packed = repack_like_llama_cpp(src[e + "gate_up_proj_blocks"], src[e + "gate_up_proj_scales"])
            want[b + "ffn_gate_exps.weight"], want[b + "ffn_up_exps.weight"] = packed[:, ::2], packed[:, 1::2]
            want[b + "ffn_down_exps.weight"] = repack_like_llama_cpp(src[e + "down_proj_blocks"], src[e + "down_proj_scales"])
            mxfp4 |= {b + f"ffn_{w}_exps.weight" for w in ("gate", "up", "down")}
            # Lossless: ggml's dequantization of the repack is transformers' dequantization.
            hf = mxfp4_hf(src[e + "gate_up_proj_blocks"], src[e + "gate_up_proj_scales"])
            ggml = quants.dequantize(packed.reshape(-1, packed.shape[-1]), Q.MXFP4).reshape(hf.shape)
            if not np.array_equal(ggml, hf):
                fail(f"{b}ffn_gate_up: MXFP4 repack does not dequantize to the checkpoint's values")
        else:
            gu = src[e + "gate_up_proj"].transpose(0, 2, 1)
            want[b + "ffn_gate_exps.weight"], want[b + "ffn_up_exps.weight"] = gu[:, ::2], gu[:, 1::2]
            want[b + "ffn_down_exps.weight"] = src[e + "down_proj"].transpose(0, 2, 1)
    tensors = {t.name: t for t in r.tensors}
    if set(tensors) != set(want):
        fail(f"tensor names differ: extra {set(tensors) - set(want)}, missing {set(want) - set(tensors)}")
    counts = {}
    for name, t in tensors.items():
        data = np.asarray(t.data)
        if name in mxfp4:
            ty, expected = Q.MXFP4, np.ascontiguousarray(want[name]).reshape(-1)
        else:
            v = np.ascontiguousarray(want[name], dtype=np.float32)
            keep_f32 = v.ndim < 2 or not name.endswith(".weight") or "ffn_gate_inp" in name
            ty = Q.F32 if keep_f32 else BASE[preset]
            expected = quants.quantize(v, ty).view(np.uint8).reshape(-1)
        if t.tensor_type != ty:
            fail(f"{name}: type {t.tensor_type.name}, expected {ty.name}")
        if not np.array_equal(data.view(np.uint8).reshape(-1), expected):
            fail(f"{name} ({ty.name}): bytes differ from the reference")
        counts[ty.name] = counts.get(ty.name, 0) + 1
    print(json.dumps({"tensors": len(tensors), "types": counts}))


if __name__ == "__main__":
    main()
