//! Tokenizer metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`).
//!
//! Mirrors llama.cpp's converter: a SentencePiece `tokenizer.model` is
//! preferred (`llama` model, scores, piece types), else a BPE `tokenizer.json`
//! (`gpt2` model, byte-level tokens, merges). Both pad the vocabulary to the
//! config's `vocab_size` with `[PAD{id}]` tokens of type UNUSED. Special token
//! ids follow gguf-py's `SpecialVocab`: tokenizer_config.json names first,
//! then config.json `*_token_id` integers; the first setter wins.
//!
//! `tokenizer.ggml.pre`: as llama.cpp's converter, the SHA-256 of the ids
//! of a fixed probe text, looked up in its table ([`crate::chkhsh`], verified
//! to give llama.cpp's hashes for the real Llama 3, Qwen2 and GPT-2
//! vocabularies). When the encoder cannot reproduce a tokenizer.json or the
//! hash is unknown (e.g. a new fine-tune's vocabulary), the families are
//! recognized by the `pre_tokenizer` regex instead (`llama-bpe`, `qwen2`,
//! `gpt-2`); anything else falls back to `default` with a warning. Callers
//! can override the choice.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::SourceFiles;
use crate::arch::{Arch, ModelConfig};
use crate::error::{ConvertError, Result};
use crate::gguf::{MetaArray, MetaValue};

/// llama.cpp token types.
mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Tokenizer KVs plus any warnings produced on the way.
#[derive(Debug, Default)]
pub struct TokenizerMeta {
    /// Keys to add to the GGUF.
    pub kv: Vec<(String, MetaValue)>,
    /// Human-readable warnings (unknown pre-tokenizer, skipped ids, …).
    pub warnings: Vec<String>,
}

fn read_json(src: &SourceFiles, name: &str) -> Result<Option<Value>> {
    let Some(path) = src.path(name) else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).map_err(|e| ConvertError::io("read", path, e))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ConvertError::json(name, e.to_string()))
}

fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// Builds the tokenizer metadata for `cfg` from the repository files.
pub fn tokenizer_metadata(
    src: &SourceFiles,
    cfg: &ModelConfig,
    pre_override: Option<&str>,
) -> Result<TokenizerMeta> {
    let tok_config = read_json(src, "tokenizer_config.json")?.unwrap_or(Value::Null);
    let tok_json = read_json(src, "tokenizer.json")?;
    let mut meta = TokenizerMeta::default();
    let n_vocab;
    if let Some(path) = src.path("tokenizer.model") {
        let bytes = std::fs::read(path).map_err(|e| ConvertError::io("read", path, e))?;
        n_vocab = sentencepiece(&bytes, cfg, src, &tok_config, &mut meta)?;
    } else if let Some(tj) = &tok_json {
        n_vocab = bpe(tj, cfg, &mut meta, pre_override)?;
    } else {
        return Err(ConvertError::Tokenizer(
            "neither tokenizer.model nor tokenizer.json is present".into(),
        ));
    }
    special_vocab(cfg, tok_json.as_ref(), &tok_config, n_vocab, &mut meta);
    chat_template(src, &tok_config, &mut meta)?;
    if cfg.arch == Arch::Llama
        && let Some(b) = tok_config.get("add_prefix_space").and_then(Value::as_bool)
    {
        meta.kv
            .push(("tokenizer.ggml.add_space_prefix".into(), MetaValue::Bool(b)));
    }
    // Gemma's SentencePiece vocabularies do not prefix a space.
    if matches!(cfg.arch, Arch::Gemma2 | Arch::Gemma3) && src.path("tokenizer.model").is_some() {
        meta.kv.push((
            "tokenizer.ggml.add_space_prefix".into(),
            MetaValue::Bool(false),
        ));
    }
    Ok(meta)
}

/// Detects llama.cpp's pre-tokenizer name from tokenizer.json.
pub fn detect_pre(tj: &Value) -> Option<&'static str> {
    let pre = tj.get("pre_tokenizer")?;
    let items: Vec<&Value> = match pre.get("pretokenizers").and_then(Value::as_array) {
        Some(a) => a.iter().collect(),
        None => vec![pre],
    };
    for it in &items {
        if it.get("type").and_then(Value::as_str) == Some("Split")
            && let Some(re) = it
                .get("pattern")
                .and_then(|p| p.get("Regex"))
                .and_then(Value::as_str)
        {
            if re == LLAMA3_REGEX {
                return Some("llama-bpe");
            }
            if re == QWEN2_REGEX {
                return Some("qwen2");
            }
        }
    }
    if items.len() == 1
        && items[0].get("type").and_then(Value::as_str) == Some("ByteLevel")
        && items[0]
            .get("use_regex")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    {
        return Some("gpt-2");
    }
    None
}

fn bpe(
    tj: &Value,
    cfg: &ModelConfig,
    meta: &mut TokenizerMeta,
    pre_override: Option<&str>,
) -> Result<usize> {
    let model = tj
        .get("model")
        .ok_or_else(|| ConvertError::Tokenizer("tokenizer.json has no `model`".into()))?;
    if model.get("type").and_then(Value::as_str) != Some("BPE") {
        return Err(ConvertError::Tokenizer(
            "tokenizer.json model is not BPE".into(),
        ));
    }
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| ConvertError::Tokenizer("tokenizer.json has no `model.vocab`".into()))?;
    let mut by_id: BTreeMap<u64, String> = BTreeMap::new();
    for (tok, id) in vocab {
        let id = id.as_u64().ok_or_else(|| {
            ConvertError::Tokenizer(format!("token `{tok}` has a non-integer id"))
        })?;
        by_id.insert(id, tok.clone());
    }
    // id -> special flag for added tokens.
    let mut added: HashMap<u64, bool> = HashMap::new();
    for at in tj
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(id), Some(content)) = (
            at.get("id").and_then(Value::as_u64),
            at.get("content").and_then(Value::as_str),
        ) else {
            continue;
        };
        by_id.insert(id, content.to_owned());
        added.insert(
            id,
            at.get("special").and_then(Value::as_bool).unwrap_or(false),
        );
    }
    let n = cfg.vocab_size;
    if let Some((&max, _)) = by_id.last_key_value()
        && max as usize >= n
    {
        return Err(ConvertError::Tokenizer(format!(
            "token id {max} is not below vocab_size {}",
            cfg.vocab_size
        )));
    }
    let mut tokens = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    for i in 0..n as u64 {
        match by_id.get(&i) {
            None => {
                tokens.push(format!("[PAD{i}]"));
                types.push(token_type::UNUSED);
            }
            Some(t) => match added.get(&i) {
                Some(&special) if special || looks_special(t) => {
                    tokens.push(t.clone());
                    types.push(token_type::CONTROL);
                }
                Some(_) => {
                    tokens.push(t.replace('\u{2581}', " "));
                    types.push(token_type::USER_DEFINED);
                }
                None => {
                    tokens.push(t.clone());
                    types.push(token_type::NORMAL);
                }
            },
        }
    }
    // As llama.cpp: the fingerprint of the probe text's ids; if our encoder
    // cannot reproduce this tokenizer or the hash is unknown, recognize the
    // pre-tokenizer regex instead; else "default" with a warning.
    let fingerprint = crate::chkhsh::fingerprint(tj);
    let by_hash = fingerprint.as_deref().and_then(crate::chkhsh::lookup);
    let pre = match (pre_override, by_hash, detect_pre(tj)) {
        (Some(p), _, _) => p.to_owned(),
        (None, Some(p), _) => p.to_owned(),
        (None, None, Some(p)) => p.to_owned(),
        (None, None, None) => {
            meta.warnings.push(format!(
                "BPE pre-tokenizer not recognized (fingerprint {}); writing tokenizer.ggml.pre = \"default\" \
                 (tokenization quality may be degraded); hint: pass the pre-tokenizer name explicitly",
                fingerprint.as_deref().unwrap_or("unavailable")
            ));
            "default".to_owned()
        }
    };
    meta.kv
        .push(("tokenizer.ggml.model".into(), MetaValue::Str("gpt2".into())));
    meta.kv
        .push(("tokenizer.ggml.pre".into(), MetaValue::Str(pre)));
    meta.kv.push((
        "tokenizer.ggml.tokens".into(),
        MetaValue::Array(MetaArray::Str(tokens)),
    ));
    meta.kv.push((
        "tokenizer.ggml.token_type".into(),
        MetaValue::Array(MetaArray::I32(types)),
    ));
    let mut merges = Vec::new();
    for m in model
        .get("merges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match m {
            Value::String(s) => merges.push(s.clone()),
            Value::Array(parts) => {
                let parts: Vec<String> = parts
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|p| p.replace(' ', "\u{0120}"))
                    .collect();
                merges.push(parts.join(" "));
            }
            _ => {
                return Err(ConvertError::Tokenizer(
                    "tokenizer.json merge is neither a string nor a pair".into(),
                ));
            }
        }
    }
    if merges.is_empty() {
        meta.warnings
            .push("tokenizer.json has no merges; llama.cpp will refuse to load the model".into());
    } else {
        meta.kv.push((
            "tokenizer.ggml.merges".into(),
            MetaValue::Array(MetaArray::Str(merges)),
        ));
    }
    Ok(n)
}

/// A minimal protobuf reader for SentencePiece's `ModelProto`.
struct Proto<'a> {
    b: &'a [u8],
}

impl<'a> Proto<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.b.split_first()?;
            self.b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (a, b) = self.b.split_at(n);
        self.b = b;
        Some(a)
    }

    /// Next `(field, wire type, payload)`; varints come back as 8 LE bytes.
    fn field(&mut self) -> Option<(u64, u8, Vec<u8>)> {
        let key = self.varint()?;
        let wt = (key & 7) as u8;
        let payload = match wt {
            0 => self.varint()?.to_le_bytes().to_vec(),
            1 => self.take(8)?.to_vec(),
            2 => {
                let n = usize::try_from(self.varint()?).ok()?;
                self.take(n)?.to_vec()
            }
            5 => self.take(4)?.to_vec(),
            _ => return None,
        };
        Some((key >> 3, wt, payload))
    }
}

/// `(piece, score, type)` triples of a SentencePiece model.
pub fn parse_sentencepiece(bytes: &[u8]) -> Result<Vec<(String, f32, i32)>> {
    let bad =
        || ConvertError::Tokenizer("tokenizer.model is not a valid SentencePiece model".into());
    let mut p = Proto { b: bytes };
    let mut pieces = Vec::new();
    while !p.b.is_empty() {
        let (field, wt, payload) = p.field().ok_or_else(bad)?;
        if field != 1 || wt != 2 {
            continue;
        }
        let mut q = Proto { b: &payload };
        let (mut piece, mut score, mut ty) = (String::new(), 0.0f32, 1i32);
        while !q.b.is_empty() {
            let (f, wt, v) = q.field().ok_or_else(bad)?;
            match (f, wt) {
                (1, 2) => piece = String::from_utf8(v).map_err(|_| bad())?,
                (2, 5) => score = f32::from_le_bytes(v[..4].try_into().map_err(|_| bad())?),
                (3, 0) => ty = u64::from_le_bytes(v[..8].try_into().map_err(|_| bad())?) as i32,
                _ => {}
            }
        }
        pieces.push((piece, score, ty));
    }
    if pieces.is_empty() {
        return Err(bad());
    }
    Ok(pieces)
}

fn sentencepiece(
    bytes: &[u8],
    cfg: &ModelConfig,
    src: &SourceFiles,
    tok_config: &Value,
    meta: &mut TokenizerMeta,
) -> Result<usize> {
    let mut pieces = parse_sentencepiece(bytes)?;
    let n = cfg.vocab_size;
    if pieces.len() > n {
        // llama.cpp warns and keeps the first vocab_size pieces.
        meta.warnings.push(format!(
            "tokenizer.model has {} pieces, more than vocab_size {n}; truncated",
            pieces.len()
        ));
        pieces.truncate(n);
    }
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000.0f32; n];
    let mut types = vec![token_type::UNUSED; n];
    for (i, (piece, score, ty)) in pieces.into_iter().enumerate() {
        tokens[i] = piece;
        scores[i] = score;
        types[i] = match ty {
            2 => token_type::UNKNOWN,
            3 => token_type::CONTROL,
            5 => token_type::UNUSED,
            6 => token_type::BYTE,
            _ => token_type::NORMAL,
        };
    }
    if let Some(Value::Object(added)) = read_json(src, "added_tokens.json")? {
        for (tok, id) in added {
            let Some(id) = id.as_u64().map(|i| i as usize) else {
                continue;
            };
            if id >= n {
                meta.warnings.push(format!(
                    "added token `{tok}` id {id} is beyond vocab_size {n}; skipped"
                ));
                continue;
            }
            tokens[id] = tok;
            scores[id] = -1000.0;
            types[id] = token_type::USER_DEFINED;
        }
    }
    if let Some(dec) = tok_config
        .get("added_tokens_decoder")
        .and_then(Value::as_object)
    {
        for (id, data) in dec {
            let (Ok(id), Some(content)) = (
                id.parse::<usize>(),
                data.get("content").and_then(Value::as_str),
            ) else {
                continue;
            };
            if id >= n {
                meta.warnings.push(format!(
                    "added token `{content}` id {id} is beyond vocab_size {n}; skipped"
                ));
                continue;
            }
            if data
                .get("special")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                || looks_special(content)
            {
                tokens[id] = content.to_owned();
                types[id] = token_type::CONTROL;
            } else {
                tokens[id] = content.replace('\u{2581}', " ");
                types[id] = token_type::USER_DEFINED;
            }
            scores[id] = -1000.0;
        }
    }
    meta.kv.push((
        "tokenizer.ggml.model".into(),
        MetaValue::Str("llama".into()),
    ));
    meta.kv.push((
        "tokenizer.ggml.pre".into(),
        MetaValue::Str("default".into()),
    ));
    meta.kv.push((
        "tokenizer.ggml.tokens".into(),
        MetaValue::Array(MetaArray::Str(tokens)),
    ));
    meta.kv.push((
        "tokenizer.ggml.scores".into(),
        MetaValue::Array(MetaArray::F32(scores)),
    ));
    meta.kv.push((
        "tokenizer.ggml.token_type".into(),
        MetaValue::Array(MetaArray::I32(types)),
    ));
    Ok(n)
}

/// Content of `*_token` in tokenizer_config.json (string or `{content}`).
fn config_token(tok_config: &Value, typ: &str) -> Option<String> {
    match tok_config.get(format!("{typ}_token"))? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn special_vocab(
    cfg: &ModelConfig,
    tj: Option<&Value>,
    tok_config: &Value,
    n_vocab: usize,
    meta: &mut TokenizerMeta,
) {
    const TYPES: [(&str, &str); 7] = [
        ("bos", "bos_token_id"),
        ("eos", "eos_token_id"),
        ("unk", "unknown_token_id"),
        ("sep", "seperator_token_id"),
        ("pad", "padding_token_id"),
        ("cls", "cls_token_id"),
        ("mask", "mask_token_id"),
    ];
    let added: Vec<(String, u64)> = tj
        .and_then(|t| t.get("added_tokens"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some((
                a.get("content")?.as_str()?.to_owned(),
                a.get("id")?.as_u64()?,
            ))
        })
        .collect();
    let mut ids: BTreeMap<&str, u64> = BTreeMap::new();
    let set = |typ: &'static str, id: Option<u64>, ids: &mut BTreeMap<&str, u64>| {
        if let Some(id) = id
            && (id as usize) < n_vocab
        {
            ids.entry(typ).or_insert(id);
        }
    };
    for (typ, _) in TYPES {
        let id = config_token(tok_config, typ)
            .and_then(|c| added.iter().find(|(a, _)| *a == c).map(|(_, id)| *id));
        set(typ, id, &mut ids);
    }
    for (typ, _) in TYPES {
        set(
            typ,
            cfg.raw
                .get(format!("{typ}_token_id"))
                .and_then(Value::as_u64),
            &mut ids,
        );
    }
    for (typ, key) in TYPES {
        if let Some(&id) = ids.get(typ) {
            meta.kv
                .push((format!("tokenizer.ggml.{key}"), MetaValue::U32(id as u32)));
        }
    }
    // add_{bos,eos,sep}: gguf-py's crude reading of the post-processor
    // (RobertaProcessing adds all three; TemplateProcessing `single` with a
    // leading/trailing special token), then tokenizer_config.json booleans.
    let mut add: BTreeMap<&str, bool> = BTreeMap::new();
    if let Some(pp) = tj.and_then(|t| t.get("post_processor")) {
        let processors: Vec<&Value> = match pp.get("processors").and_then(Value::as_array) {
            Some(list) => list.iter().collect(),
            None => vec![pp],
        };
        let bos = config_token(tok_config, "bos").or_else(|| config_token(tok_config, "cls"));
        let cls = config_token(tok_config, "cls");
        let eos = config_token(tok_config, "eos").or_else(|| config_token(tok_config, "sep"));
        for p in processors {
            match p.get("type").and_then(Value::as_str) {
                Some("RobertaProcessing") => {
                    for typ in ["bos", "eos", "sep"] {
                        add.insert(typ, true);
                    }
                }
                Some("TemplateProcessing") => {
                    let Some(single) = p.get("single").and_then(Value::as_array) else {
                        continue;
                    };
                    if single.len() < 2 {
                        continue;
                    }
                    let special = |v: &Value| {
                        v.get("SpecialToken")
                            .and_then(|s| s.get("id"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    };
                    if let Some(first) = special(&single[0]) {
                        let known = bos.is_none()
                            || Some(&first) == bos.as_ref()
                            || Some(&first) == cls.as_ref();
                        add.insert("bos", known);
                    }
                    if let Some(last) = special(&single[single.len() - 1]) {
                        if eos.as_ref().is_some_and(|e| *e != last) {
                            meta.warnings.push(format!(
                                "post-processor appends `{last}`, which is not the EOS token; add_eos_token set anyway"
                            ));
                        }
                        add.insert("eos", true);
                    }
                }
                _ => {}
            }
        }
    }
    for typ in ["bos", "eos", "sep"] {
        if let Some(b) = tok_config
            .get(format!("add_{typ}_token"))
            .and_then(Value::as_bool)
        {
            add.insert(typ, b);
        }
    }
    for (typ, b) in add {
        meta.kv.push((
            format!("tokenizer.ggml.add_{typ}_token"),
            MetaValue::Bool(b),
        ));
    }
}

fn chat_template(src: &SourceFiles, tok_config: &Value, meta: &mut TokenizerMeta) -> Result<()> {
    match tok_config.get("chat_template") {
        Some(Value::String(s)) => {
            meta.kv
                .push(("tokenizer.chat_template".into(), MetaValue::Str(s.clone())));
        }
        Some(Value::Array(list)) => {
            let mut names = Vec::new();
            for t in list {
                let (Some(name), Some(tpl)) = (
                    t.get("name").and_then(Value::as_str),
                    t.get("template").and_then(Value::as_str),
                ) else {
                    continue;
                };
                if name == "default" {
                    meta.kv.push((
                        "tokenizer.chat_template".into(),
                        MetaValue::Str(tpl.to_owned()),
                    ));
                } else {
                    meta.kv.push((
                        format!("tokenizer.chat_template.{name}"),
                        MetaValue::Str(tpl.to_owned()),
                    ));
                    names.push(name.to_owned());
                }
            }
            if !names.is_empty() {
                meta.kv.push((
                    "tokenizer.chat_templates".into(),
                    MetaValue::Array(MetaArray::Str(names)),
                ));
            }
        }
        _ => {
            if let Some(path) = src.path("chat_template.jinja") {
                let s =
                    std::fs::read_to_string(path).map_err(|e| ConvertError::io("read", path, e))?;
                meta.kv
                    .push(("tokenizer.chat_template".into(), MetaValue::Str(s)));
            } else if let Some(Value::String(s)) = read_json(src, "chat_template.json")?
                .as_ref()
                .and_then(|v| v.get("chat_template"))
            {
                meta.kv
                    .push(("tokenizer.chat_template".into(), MetaValue::Str(s.clone())));
            }
        }
    }
    Ok(())
}
