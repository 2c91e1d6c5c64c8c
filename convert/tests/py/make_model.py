"""Builds a tiny random HF checkpoint (2 safetensors shards + index) and tokenizer.

usage: make_model.py OUTDIR ARCH DTYPE TOKENIZER [--tied] [--hidden N] [--layers N] [--ff N] [--yarn] [--bias]
       [--embedding] [--heads N] [--kv-heads N] [--head-dim N] [--vocab N]
  ARCH: llama | mistral | qwen2 | qwen3 | gemma2 | gemma3 | phi3 | mixtral | qwen2moe | qwen3moe
  DTYPE: f32 | f16 | bf16
  gemma2/gemma3: tied, head_dim 64, soft-capping (gemma2), q/k norms and local/global rope bases
  (gemma3), norm weights near 0 (the model uses 1 + w); --multimodal wraps gemma3 as
  Gemma3ForConditionalGeneration (text_config without vocab_size, language_model. prefix, a
  vision tower and projector, 64 extra embedding rows).
  phi3: fused qkv_proj / gate_up_proj; --longrope adds 128K-style longrope factors.
  mixtral: 8 experts (block_sparse_moe); qwen2moe: 4 experts + a shared expert and biases;
  qwen3moe: 4 experts, q/k norms, head_dim 64. --experts N and --moe-ff N size the Qwen MoEs.
  qwen3: 8 heads, 2 KV heads (n_gqa 4) and head_dim 64 != hidden/heads, q/k norms, a
  Qwen3-like tokenizer_config (bos_token null, non-special <think> added tokens);
  --yarn adds yarn rope scaling, --bias sets attention_bias (q/k/v biases),
  --embedding makes a Qwen3-Embedding-like layout: sentence-transformers modules.json +
  1_Pooling/config.json (last token), tensors of the bare decoder (no `model.` prefix), no lm_head.
  gptoss: GPT-OSS as released: 4 experts (top 2) whose fused, row-interleaved gate_up_proj and
  down_proj are MXFP4 (`*_blocks` U8 codes, `*_scales` U8 E8M0 exponents), biases everywhere,
  attention sinks, a router with a bias, head_dim 64 != hidden/heads, yarn rope, sliding window 8
  on even layers; --dequantized stores the same expert values as transformers' dequantized
  checkpoints do instead (`gate_up_proj` [E, hidden, 2ff], `down_proj` [E, ff, hidden], floats).
  TOKENIZER: bpe (trained with `tokenizers`) | spm (trained with `sentencepiece`)
"""
import io
import json
import os
import struct
import sys

import numpy as np

LLAMA3_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Larder mirrors models from the hub and converts them to GGUF files.",
    "Quantization trades a little accuracy for a lot of memory.",
    "hello world, hello larder, hello tokenizer; 123 4567 89!",
    "Sphinx of black quartz, judge my vow. Pack my box with five dozen liquor jugs.",
] * 20

TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"


def bf16_bits(x):
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors.items():
        if arr.dtype == np.uint8:
            raw, st = arr.tobytes(), "U8"
        elif dtype == "f32":
            raw, st = arr.astype("<f4").tobytes(), "F32"
        elif dtype == "f16":
            raw, st = arr.astype("<f2").tobytes(), "F16"
        else:
            raw, st = bf16_bits(arr).astype("<u2").tobytes(), "BF16"
        header[name] = {"dtype": st, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def train_bpe(out, arch):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>"]
    qwen = arch in ("qwen2", "qwen3", "qwen2moe", "qwen3moe")
    # Llama 3's tokenizer.json sets ignore_merges; Qwen2's (and Qwen3's) does not.
    tok = Tokenizer(models.BPE(ignore_merges=not qwen))
    if qwen:
        from tokenizers import normalizers

        tok.normalizer = normalizers.NFC()
    regex = QWEN2_REGEX if qwen else LLAMA3_REGEX
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_tokens(["larder_user_token"])  # a non-special added token
    if arch in ("qwen3", "qwen3moe"):
        # Qwen3 adds its reasoning markers as non-special tokens (USER_DEFINED in GGUF).
        from tokenizers import AddedToken

        tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in ("<think>", "</think>")])
    if not qwen:
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B", special_tokens=[("<|begin_of_text|>", bos)]
        )
    tok.save(os.path.join(out, "tokenizer.json"))
    cfg = {"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|end_of_text|>"}, "chat_template": TEMPLATE}
    if qwen:
        cfg["add_bos_token"] = False
    if arch in ("qwen3", "qwen3moe"):
        # As Qwen3's tokenizer_config.json: no BOS or UNK name (config.json's bos_token_id is
        # used), and the padding token is the one config.json names as BOS (<|endoftext|> there).
        cfg["bos_token"] = None
        cfg["unk_token"] = None
        cfg["pad_token"] = "<|begin_of_text|>"
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f)
    return tok.get_vocab_size(with_added_tokens=True)


def train_spm(out, arch):
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_writer=model,
        vocab_size=400,
        model_type="bpe",
        byte_fallback=True,
        hard_vocab_limit=False,
        # Like Llama/Mistral's tokenizer.model: no normalization, which is also
        # what llama.cpp's SPM tokenizer implements.
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        # Gemma's tokenizer.model has no dummy prefix (llama.cpp: add_space_prefix false).
        add_dummy_prefix=arch not in ("gemma2", "gemma3"),
        minloglevel=2,
    )
    with open(os.path.join(out, "tokenizer.model"), "wb") as f:
        f.write(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    cfg = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "chat_template": TEMPLATE,
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f)
    return sp.get_piece_size()


def main():
    out, arch, dtype, tokenizer = sys.argv[1:5]
    tied = "--tied" in sys.argv
    os.makedirs(out, exist_ok=True)
    n_tok = train_bpe(out, arch) if tokenizer == "bpe" else train_spm(out, arch)
    opt = lambda flag, d: int(sys.argv[sys.argv.index(flag) + 1]) if flag in sys.argv else d  # noqa: E731
    vocab = opt("--vocab", n_tok + 13)  # padded vocab_size, as many real checkpoints have
    hidden, n_layer, n_head, n_kv, ff = opt("--hidden", 256), opt("--layers", 2), 4, 2, opt("--ff", 512)
    head_dim = 32 if arch == "mistral" else hidden // n_head
    if arch in ("qwen3", "qwen3moe", "gemma2", "gemma3", "gptoss"):
        # Like Qwen3-0.6B (hidden 1024, 16 heads, head_dim 128): head_dim != hidden / heads.
        n_head, head_dim = 8, 64
    n_head, n_kv, head_dim = opt("--heads", n_head), opt("--kv-heads", n_kv), opt("--head-dim", head_dim)
    cfg = {
        "architectures": [{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                           "gemma2": "Gemma2ForCausalLM", "gemma3": "Gemma3ForCausalLM", "phi3": "Phi3ForCausalLM",
                           "mixtral": "MixtralForCausalLM", "qwen2moe": "Qwen2MoeForCausalLM", "qwen3moe": "Qwen3MoeForCausalLM",
                           "gptoss": "GptOssForCausalLM"}[arch]],
        "model_type": arch,
        "hidden_size": hidden,
        "intermediate_size": ff,
        "num_hidden_layers": n_layer,
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0 if arch == "llama" else 1000000.0,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "torch_dtype": {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[dtype],
        "bos_token_id": 1 if tokenizer == "spm" else 0,
        "eos_token_id": 2 if tokenizer == "spm" else 1,
    }
    if arch == "llama":
        cfg["rope_scaling"] = {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        }
    if arch == "mistral":
        cfg["head_dim"] = head_dim
        cfg["sliding_window"] = 4096
    if arch == "qwen3":
        cfg["head_dim"] = head_dim
        cfg["attention_bias"] = "--bias" in sys.argv
        cfg["max_position_embeddings"] = 40960
        cfg["rope_theta"] = 1000000  # an integer, as Qwen3's config.json writes it
        cfg["rms_norm_eps"] = 1e-6
        cfg["sliding_window"] = None
        cfg["use_sliding_window"] = False
        cfg["rope_scaling"] = None
    n_expert, moe_ff, shared_ff = 0, opt("--moe-ff", 128), 256
    if arch in ("gemma2", "gemma3"):
        cfg.update({"head_dim": head_dim, "query_pre_attn_scalar": head_dim, "hidden_activation": "gelu_pytorch_tanh",
                    "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "sliding_window": 16})
        cfg.pop("rope_scaling", None)
        if arch == "gemma2":
            cfg.update({"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "rope_theta": 10000.0})
        else:
            cfg.update({"rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "final_logit_softcapping": None,
                        "attn_logit_softcapping": None, "sliding_window_pattern": 6, "max_position_embeddings": 32768})
    if arch == "phi3":
        cfg.update({"original_max_position_embeddings": 4096, "sliding_window": 2047, "rope_theta": 10000.0})
        cfg.pop("rope_scaling", None)
        if "--longrope" in sys.argv:
            half_rot = (hidden // n_head) // 2
            cfg["max_position_embeddings"] = 131072
            cfg["rope_scaling"] = {"type": "longrope",
                                   "long_factor": [1.0 + 0.5 * i for i in range(half_rot)],
                                   "short_factor": [1.0 + 0.01 * i for i in range(half_rot)]}
    if arch == "mixtral":
        n_expert = 8
        cfg.update({"num_local_experts": n_expert, "num_experts_per_tok": 2, "rope_theta": 1000000.0})
        cfg.pop("rope_scaling", None)
    if arch in ("qwen2moe", "qwen3moe"):
        n_expert = opt("--experts", 4)
        cfg.update({"num_experts": n_expert, "num_experts_per_tok": 2, "moe_intermediate_size": moe_ff,
                    "norm_topk_prob": arch == "qwen3moe", "decoder_sparse_step": 1, "mlp_only_layers": []})
        cfg.pop("rope_scaling", None)
        if arch == "qwen2moe":
            cfg["shared_expert_intermediate_size"] = shared_ff
        else:
            cfg.update({"head_dim": head_dim, "attention_bias": False})
    if arch == "gptoss":
        n_expert = opt("--experts", 4)
        ff = opt("--ff", 128)
        cfg.update({"head_dim": head_dim, "attention_bias": True, "intermediate_size": ff, "num_local_experts": n_expert,
                    "num_experts_per_tok": 2, "experts_per_token": 2, "sliding_window": 8, "swiglu_limit": 7.0,
                    "rope_theta": 150000, "max_position_embeddings": 131072, "initial_context_length": 4096,
                    "layer_types": ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n_layer)],
                    # gpt-oss-20b's scaling, except `truncate`: its config says false, which transformers
                    # honours and llama.cpp does not (it always rounds yarn's correction range), so the
                    # two forward passes would differ by that and not by anything the converter does.
                    "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
                                     "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": True}})
        if "--dequantized" not in sys.argv:
            cfg["quantization_config"] = {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                                     "model.embed_tokens", "lm_head"], "quant_method": "mxfp4"}
    if "--yarn" in sys.argv:
        cfg["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    if "--embedding" in sys.argv:
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ]
        with open(os.path.join(out, "modules.json"), "w") as f:
            json.dump(modules, f)
        os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)
        pooling = {"word_embedding_dimension": hidden, "pooling_mode_cls_token": False,
                   "pooling_mode_mean_tokens": False, "pooling_mode_lasttoken": True}
        with open(os.path.join(out, "1_Pooling", "config.json"), "w") as f:
            json.dump(pooling, f)

    rng = np.random.default_rng(1234)
    w = lambda *s: (rng.standard_normal(s) * 0.02).astype(np.float32)  # noqa: E731
    gemma = arch in ("gemma2", "gemma3")
    # Gemma's norms multiply by 1 + w, so their weights sit near 0.
    nw = (lambda *s: w(*s) * 10) if gemma else (lambda *s: 1 + w(*s))  # noqa: E731
    multimodal = arch == "gemma3" and "--multimodal" in sys.argv
    tensors = {"model.embed_tokens.weight": w(vocab + (64 if multimodal else 0), hidden), "model.norm.weight": nw(hidden)}
    if not cfg["tie_word_embeddings"]:
        tensors["lm_head.weight"] = w(vocab, hidden)
    for i in range(n_layer):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = nw(hidden)
        tensors[p + "post_attention_layernorm.weight"] = nw(hidden)
        if gemma:
            tensors[p + "pre_feedforward_layernorm.weight"] = nw(hidden)
            tensors[p + "post_feedforward_layernorm.weight"] = nw(hidden)
        if arch == "phi3":
            tensors[p + "self_attn.qkv_proj.weight"] = w((n_head + 2 * n_kv) * head_dim, hidden)
        else:
            tensors[p + "self_attn.q_proj.weight"] = w(n_head * head_dim, hidden)
            tensors[p + "self_attn.k_proj.weight"] = w(n_kv * head_dim, hidden)
            tensors[p + "self_attn.v_proj.weight"] = w(n_kv * head_dim, hidden)
        tensors[p + "self_attn.o_proj.weight"] = w(hidden, n_head * head_dim)
        if arch in ("qwen3", "qwen3moe", "gemma3"):
            tensors[p + "self_attn.q_norm.weight"] = nw(head_dim)
            tensors[p + "self_attn.k_norm.weight"] = nw(head_dim)
        if arch in ("qwen2", "qwen2moe") or (arch == "qwen3" and "--bias" in sys.argv):
            tensors[p + "self_attn.q_proj.bias"] = w(n_head * head_dim)
            tensors[p + "self_attn.k_proj.bias"] = w(n_kv * head_dim)
            tensors[p + "self_attn.v_proj.bias"] = w(n_kv * head_dim)
        if arch == "phi3":
            tensors[p + "mlp.gate_up_proj.weight"] = w(2 * ff, hidden)
            tensors[p + "mlp.down_proj.weight"] = w(hidden, ff)
        elif arch == "mixtral":
            tensors[p + "block_sparse_moe.gate.weight"] = w(n_expert, hidden)
            for e in range(n_expert):
                q = p + f"block_sparse_moe.experts.{e}."
                tensors[q + "w1.weight"] = w(ff, hidden)
                tensors[q + "w3.weight"] = w(ff, hidden)
                tensors[q + "w2.weight"] = w(hidden, ff)
        elif arch == "gptoss":
            tensors[p + "self_attn.q_proj.bias"] = w(n_head * head_dim)
            tensors[p + "self_attn.k_proj.bias"] = w(n_kv * head_dim)
            tensors[p + "self_attn.v_proj.bias"] = w(n_kv * head_dim)
            tensors[p + "self_attn.o_proj.bias"] = w(hidden)
            tensors[p + "self_attn.sinks"] = w(n_head) * 50  # logits of the same order as q·k
            tensors[p + "mlp.router.weight"] = w(n_expert, hidden) * 10
            tensors[p + "mlp.router.bias"] = w(n_expert) * 10
            q = p + "mlp.experts."
            tensors[q + "gate_up_proj_bias"] = w(n_expert, 2 * ff)
            tensors[q + "down_proj_bias"] = w(n_expert, hidden)
            for name, rows, cols in (("gate_up_proj", 2 * ff, hidden), ("down_proj", hidden, ff)):
                codes = rng.integers(0, 256, size=(n_expert, rows, cols // 32, 16), dtype=np.uint8)
                scales = rng.integers(118, 122, size=(n_expert, rows, cols // 32), dtype=np.uint8)
                if "--dequantized" in sys.argv:
                    # transformers' dequantization, then its input-major layout.
                    lut = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float32)
                    vals = np.stack([lut[codes & 15], lut[codes >> 4]], axis=-1).reshape(n_expert, rows, cols // 32, 32)
                    vals = vals * np.ldexp(np.float32(1), scales.astype(np.int32) - 127)[..., None]
                    tensors[q + name] = vals.reshape(n_expert, rows, cols).transpose(0, 2, 1).copy()
                else:
                    tensors[q + name + "_blocks"] = codes
                    tensors[q + name + "_scales"] = scales
        elif arch in ("qwen2moe", "qwen3moe"):
            tensors[p + "mlp.gate.weight"] = w(n_expert, hidden)
            for e in range(n_expert):
                q = p + f"mlp.experts.{e}."
                tensors[q + "gate_proj.weight"] = w(moe_ff, hidden)
                tensors[q + "up_proj.weight"] = w(moe_ff, hidden)
                tensors[q + "down_proj.weight"] = w(hidden, moe_ff)
            if arch == "qwen2moe":
                q = p + "mlp.shared_expert."
                tensors[q + "gate_proj.weight"] = w(shared_ff, hidden)
                tensors[q + "up_proj.weight"] = w(shared_ff, hidden)
                tensors[q + "down_proj.weight"] = w(hidden, shared_ff)
                tensors[p + "mlp.shared_expert_gate.weight"] = w(1, hidden)
        else:
            tensors[p + "mlp.gate_proj.weight"] = w(ff, hidden)
            tensors[p + "mlp.up_proj.weight"] = w(ff, hidden)
            tensors[p + "mlp.down_proj.weight"] = w(hidden, ff)
        tensors[p + "self_attn.rotary_emb.inv_freq"] = w(head_dim // 2)  # dropped by the converter
    if multimodal:
        tensors = {k.replace("model.", "language_model.model.", 1): v for k, v in tensors.items()}
        tensors["vision_tower.vision_model.embeddings.patch_embedding.weight"] = w(32, 3, 4, 4)
        tensors["vision_tower.vision_model.post_layernorm.weight"] = w(32)
        tensors["multi_modal_projector.mm_input_projection_weight"] = w(32, hidden)
        text = {k: cfg.pop(k) for k in list(cfg) if k not in ("architectures", "torch_dtype", "bos_token_id", "eos_token_id")}
        text.pop("vocab_size")
        text["model_type"] = "gemma3_text"
        cfg.update({"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "text_config": text,
                    "vision_config": {"hidden_size": 32, "model_type": "siglip_vision_model"}, "mm_tokens_per_image": 4})
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
    if "--embedding" in sys.argv:
        tensors = {k.removeprefix("model."): v for k, v in tensors.items() if k != "lm_head.weight"}
    names = sorted(tensors)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    weight_map = {}
    for fname, ns in shards.items():
        write_safetensors(os.path.join(out, fname), {n: tensors[n] for n in ns}, dtype)
        weight_map.update({n: fname for n in ns})
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)


if __name__ == "__main__":
    main()
