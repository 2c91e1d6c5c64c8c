//! llama.cpp's BPE pre-tokenizer fingerprint (`get_vocab_base_pre`).
//!
//! The converter encodes a fixed probe text ([`CHKTXT`]) with the model's
//! tokenizer, hashes `str(list_of_ids)` with SHA-256 and looks the hash up in
//! a table of known tokenizers. We reproduce that encoding for the
//! tokenizer.json shapes used by Llama 3 / Qwen2 style models: an optional NFC
//! normalizer, `Split` (regex, isolated) and `ByteLevel` pre-tokenizers, a
//! byte-level BPE model (with `ignore_merges`) and a `TemplateProcessing`
//! post-processor. Anything else returns `None`, and the caller falls back to
//! recognizing the pre-tokenizer regex.

use std::collections::HashMap;

use fancy_regex::Regex;
use serde_json::Value;
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

/// The probe text, verbatim from llama.cpp's `get_vocab_base_pre`.
pub const CHKTXT: &str = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\u{1f680} (normal) \u{1f636}\u{200d}\u{1f32b}\u{fe0f} (multiple emojis concatenated) \u{2705} \u{1f999}\u{1f999} 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \u{1780}\u{17b6}\u{1793}\u{17cb}\u{178f}\u{17c2}\u{1796}\u{17b7}\u{179f}\u{17c1}\u{179f}\u{17a2}\u{17b6}\u{1785}\u{1f601} ?\u{6211}\u{60f3}\u{5728}apple\u{5de5}\u{4f5c}1314151\u{5929}\u{ff5e} ------======= \u{43d}\u{435}\u{449}\u{43e} \u{43d}\u{430} \u{411}\u{44a}\u{43b}\u{433}\u{430}\u{440}\u{441}\u{43a}\u{438} ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

/// Known fingerprints (hash → `tokenizer.ggml.pre`), in the order of
/// llama.cpp's `get_vocab_base_pre` (2025 snapshot). Its checks are a chain of
/// independent `if`s, so for a hash listed twice the later name wins.
const KNOWN: &[(&str, &str)] = &[
    (
        "b6e8e1518dc4305be2fe39c313ed643381c4da5db34a98f6a04c093f8afbe99b",
        "chatglm-bpe",
    ),
    (
        "81d72c7348a9f0ebe86f23298d37debe0a5e71149e29bd283904c02262b27516",
        "chatglm-bpe",
    ),
    (
        "a1336059768a55c99a734006ffb02203cd450fed003e9a71886c88acf24fdbc2",
        "glm4",
    ),
    (
        "9ca2dd618e8afaf09731a7cf6e2105b373ba6a1821559f258b272fe83e6eb902",
        "glm4",
    ),
    (
        "1431a23e583c97432bc230bff598d103ddb5a1f89960c8f1d1051aaa944d0b35",
        "minerva-7b",
    ),
    (
        "7e57df22b1fe23a7b1e1c7f3dc4e3f96d43a4eb0836d0c6bdc3436d7b2f1c664",
        "hunyuan",
    ),
    (
        "bba3b3366b646dbdded5dbc42d59598b849371afc42f7beafa914afaa5b70aa6",
        "hunyuan-dense",
    ),
    (
        "a6b57017d60e6edb4d88ecc2845188e0eb333a70357e45dcc9b53964a73bbae6",
        "falcon-h1",
    ),
    (
        "60476e1243776c4fb1b993dbd7a5f15ac22f83c80afdf425fa5ae01c8d44ef86",
        "falcon-h1",
    ),
    (
        "3eda48b4c4dc7de733d1a8b3e3b4a85243dbbf704da2ee9d42c6beced8897896",
        "falcon-h1",
    ),
    (
        "48f8e02c0359c0bbdd82f26909171fac1c18a457bb47573ed1fe3bbb2c1cfd4b",
        "falcon-h1",
    ),
    (
        "81212dc7cdb7e0c1074ca62c5aeab0d43c9f52b8a737be7b12a777c953027890",
        "kimi-k2",
    ),
    (
        "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c",
        "qwen2",
    ),
    (
        "66b8d4e19ab16c3bfd89bce5d785fb7e0155e8648708a1f42077cb9fe002c273",
        "grok-2",
    ),
    (
        "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5",
        "llama-bpe",
    ),
    (
        "049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754",
        "deepseek-llm",
    ),
    (
        "347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821",
        "deepseek-coder",
    ),
    (
        "8aeee3860c56296a157a1fe2fad249ec40aa59b1bb5709f4ade11c4e6fe652ed",
        "falcon",
    ),
    (
        "0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f",
        "bert-bge",
    ),
    (
        "9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e",
        "falcon3",
    ),
    (
        "8e62295832751ca1e8f92f2226f403dea30dc5165e448b5bfa05af5340c64ec7",
        "bert-bge-large",
    ),
    (
        "b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166",
        "mpt",
    ),
    (
        "35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34",
        "starcoder",
    ),
    (
        "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454",
        "gpt-2",
    ),
    (
        "32d85c31273f8019248f2559fed492d929ea28b17e51d81d3bb36fff23ca72b3",
        "stablelm2",
    ),
    (
        "6221ad2852e85ce96f791f476e0b390cf9b474c9e3d1362f53a24a06dc8220ff",
        "refact",
    ),
    (
        "9c2227e4dd922002fb81bde4fc02b0483ca4f12911410dee2255e4987644e3f8",
        "command-r",
    ),
    (
        "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea",
        "qwen2",
    ),
    (
        "b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166",
        "olmo",
    ),
    (
        "a8594e3edff7c29c003940395316294b2c623e09894deebbc65f33f1515df79e",
        "dbrx",
    ),
    (
        "c7699093ba4255a91e702aa38a596aa81669f3525dae06c2953267dde580f448",
        "jina-v1-en",
    ),
    (
        "0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f",
        "jina-v2-en",
    ),
    (
        "171aeeedd6fb548d418a7461d053f11b6f1f1fc9b387bd66640d28a4b9f5c643",
        "jina-v2-es",
    ),
    (
        "27949a2493fc4a9f53f5b9b029c82689cfbe5d3a1929bb25e043089e28466de6",
        "jina-v2-de",
    ),
    (
        "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d",
        "smaug-bpe",
    ),
    (
        "c7ea5862a53e4272c035c8238367063e2b270d51faa48c0f09e9d5b54746c360",
        "poro-chat",
    ),
    (
        "7967bfa498ade6b757b064f31e964dddbb80f8f9a4d68d4ba7998fcf281c531a",
        "jina-v2-code",
    ),
    (
        "7fc505bd3104ca1083b150b17d088b59534ede9bde81f0dd2090967d7fe52cee",
        "viking",
    ),
    (
        "b53802fb28e26d645c3a310b34bfe07da813026ec7c7716883404d5e0f8b1901",
        "jais",
    ),
    (
        "7b3e7548e4308f52a76e8229e4e6cc831195d0d1df43aed21ac6c93da05fec5f",
        "codeshell",
    ),
    (
        "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e",
        "tekken",
    ),
    (
        "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249",
        "smollm",
    ),
    (
        "3c30d3ad1d6b64202cd222813e7736c2db6e1bd6d67197090fc1211fbc612ae7",
        "bloom",
    ),
    (
        "bc01ce58980e1db43859146dc51b1758b3b88729b217a74792e9f8d43e479d21",
        "gpt3-finnish",
    ),
    (
        "4e2b24cc4770243d65a2c9ec19770a72f08cffc161adbb73fcbb6b7dd45a0aae",
        "exaone",
    ),
    (
        "fcace8b9cac38ce847670c970cd5892031a753a1ef381abd1d9af00f713da085",
        "phi-2",
    ),
    (
        "60824e3c0d9401f89943cbb2fff727f0e2d4c545ba4df2d6e4f09a6db0f5b450",
        "chameleon",
    ),
    (
        "8b5a93ed704057481f240da0be7e7dca721d7f8f4755263b6807227a2cbeae65",
        "roberta-bpe",
    ),
    (
        "ad851be1dba641f2e3711822f816db2c265f788b37c63b4e1aeacb9ee92de8eb",
        "gigachat",
    ),
    (
        "d4c8f286ea6b520b3d495c4455483cfa2302c0cfcd4be05d781b6a8a0a7cdaf1",
        "megrez",
    ),
    (
        "877081d19cf6996e2c4ff0e1236341e9b7bde288f5311a56a937f0afbbb3aeb5",
        "deepseek-v3",
    ),
    (
        "b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5",
        "deepseek-r1-qwen",
    ),
    (
        "ccc2ef013c104be7bae2965776d611e1d7a8a2a9c547dd93a682c9a9fc80352e",
        "gpt-4o",
    ),
    (
        "7dec86086fcc38b66b7bc1575a160ae21cf705be7718b9d5598190d7c12db76f",
        "superbpe",
    ),
    (
        "1994ffd01900cfb37395608534236ecd63f2bd5995d6cb1004dda1af50240f15",
        "trillion",
    ),
    (
        "96a5f08be6259352137b512d4157e333e21df7edd3fcd152990608735a65b224",
        "bailingmoe",
    ),
    (
        "d353350c764d8c3b39c763113960e4fb4919bea5fbf208a0e3b22e8469dc7406",
        "llama4",
    ),
    (
        "0e9433cbbb161f89e264eb32e8e64bfe69e834973ffca5d41d3948a604a3e2a3",
        "pixtral",
    ),
    (
        "d5f1dd6f980fec569fb218a81a7658ac45fc56b38c5a0adeb1c232fbe04ef5ec",
        "seed-coder",
    ),
    (
        "b0a6b1c0bd5998ebd9df08611efde34a4ff03faed45ae09c43e6b31ebd4b94cf",
        "a.x-4.0",
    ),
    (
        "f6791d196f87ce6b56a7d234be618e0d58f8cda3549416635b2bebcd22cd95c4",
        "midm-2.0",
    ),
    (
        "169bf0296a13c4d9b7672313f749eb36501d931022de052aad6e36f2bf34dd51",
        "lfm2",
    ),
    (
        "2085e1638f6c377a0aa4ead21b27bb4cb941bf800df86ed391011769c1758dfb",
        "exaone4",
    ),
    (
        "a1e163ecab2e718a4c829d1148b6e86824ec36163bb71941c3dca9cd5ac25756",
        "mellum",
    ),
    (
        "9b1be57e70d20d9501b2b3186e792d81181ae36ada3903c26f9fea418cf87206",
        "bailingmoe2",
    ),
    (
        "53e325976a6e142379c19b09afcae354f2f496f147afa8f9e189a33fe4e3024e",
        "granite-docling",
    ),
    (
        "f4f37b6c8eb9ea29b3eac6bb8c8487c5ab7885f8d8022e67edc1c68ce8403e95",
        "minimax-m2",
    ),
];

/// GPT-2's split regex (`ByteLevel` with `use_regex: true`).
const GPT2_REGEX: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// The `tokenizer.ggml.pre` name for a fingerprint, if llama.cpp knows it.
pub fn lookup(hash: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .rev()
        .find(|(h, _)| *h == hash)
        .map(|(_, n)| *n)
}

/// SHA-256 of Python's `str(ids)`.
pub fn hash_ids(ids: &[u32]) -> String {
    let text = format!(
        "[{}]",
        ids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fingerprint of a tokenizer.json, or `None` if it uses features this
/// encoder does not reproduce.
pub fn fingerprint(tj: &Value) -> Option<String> {
    encode(tj, CHKTXT).map(|ids| hash_ids(&ids))
}

/// GPT-2's byte → printable-char table.
fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).expect("latin-1")
        } else {
            n += 1;
            char::from_u32(255 + n).expect("BMP")
        };
    }
    table
}

/// Splits `pieces` by `re`, keeping matches and gaps (`Isolated`).
fn split_isolated(pieces: Vec<String>, re: &Regex) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for p in pieces {
        let mut last = 0;
        for m in re.find_iter(&p) {
            let m = m.ok()?;
            if m.start() > last {
                out.push(p[last..m.start()].to_owned());
            }
            if m.end() > m.start() {
                out.push(m.as_str().to_owned());
            }
            last = m.end();
        }
        if last < p.len() {
            out.push(p[last..].to_owned());
        }
    }
    Some(out)
}

/// Encodes `text` like `tokenizer.encode(text)` (special tokens added) for
/// the supported tokenizer.json shapes.
pub fn encode(tj: &Value, text: &str) -> Option<Vec<u32>> {
    // Added tokens are matched before anything else in HF tokenizers; we only
    // handle texts that contain none of them.
    for at in tj
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let content = at.get("content")?.as_str()?;
        if !content.is_empty() && text.contains(content) {
            return None;
        }
    }
    let normalized: String = match tj.get("normalizer") {
        None | Some(Value::Null) => text.to_owned(),
        Some(n) if n.get("type")?.as_str()? == "NFC" => text.nfc().collect(),
        Some(n)
            if n.get("type")?.as_str()? == "Sequence"
                && n.get("normalizers")?
                    .as_array()?
                    .iter()
                    .all(|x| x.get("type").and_then(Value::as_str) == Some("NFC")) =>
        {
            text.nfc().collect()
        }
        _ => return None,
    };
    let pre = tj.get("pre_tokenizer")?;
    let steps: Vec<&Value> = match pre.get("type")?.as_str()? {
        "Sequence" => pre.get("pretokenizers")?.as_array()?.iter().collect(),
        _ => vec![pre],
    };
    let mut pieces = vec![normalized];
    let mut byte_level = false;
    for step in steps {
        match step.get("type")?.as_str()? {
            "Split" => {
                if step.get("behavior")?.as_str()? != "Isolated" || step.get("invert")?.as_bool()? {
                    return None;
                }
                let pattern = step.get("pattern")?;
                let re = match (pattern.get("Regex"), pattern.get("String")) {
                    (Some(r), _) => Regex::new(r.as_str()?).ok()?,
                    (None, Some(s)) => Regex::new(&fancy_regex::escape(s.as_str()?)).ok()?,
                    _ => return None,
                };
                pieces = split_isolated(pieces, &re)?;
            }
            "ByteLevel" => {
                if step
                    .get("add_prefix_space")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                {
                    return None;
                }
                if step
                    .get("use_regex")
                    .and_then(Value::as_bool)
                    .unwrap_or(true)
                {
                    pieces = split_isolated(pieces, &Regex::new(GPT2_REGEX).ok()?)?;
                }
                byte_level = true;
            }
            _ => return None,
        }
    }
    if !byte_level {
        return None;
    }
    let model = tj.get("model")?;
    if model.get("type")?.as_str()? != "BPE"
        || model
            .get("continuing_subword_prefix")
            .is_some_and(|v| !v.is_null() && v != "")
        || model
            .get("end_of_word_suffix")
            .is_some_and(|v| !v.is_null() && v != "")
    {
        return None;
    }
    let vocab: HashMap<&str, u32> = model
        .get("vocab")?
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.as_str(), u32::try_from(v.as_u64()?).ok()?)))
        .collect::<Option<_>>()?;
    let mut ranks: HashMap<(String, String), usize> = HashMap::new();
    for (rank, m) in model.get("merges")?.as_array()?.iter().enumerate() {
        let pair = match m {
            Value::String(s) => {
                let (a, b) = s.split_once(' ')?;
                (a.to_owned(), b.to_owned())
            }
            Value::Array(p) if p.len() == 2 => {
                (p[0].as_str()?.to_owned(), p[1].as_str()?.to_owned())
            }
            _ => return None,
        };
        ranks.entry(pair).or_insert(rank);
    }
    let ignore_merges = model
        .get("ignore_merges")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let table = byte_chars();
    let mut ids = Vec::new();
    for piece in pieces {
        let word: String = piece.bytes().map(|b| table[b as usize]).collect();
        if ignore_merges && let Some(&id) = vocab.get(word.as_str()) {
            ids.push(id);
            continue;
        }
        let mut parts: Vec<String> = word.chars().map(String::from).collect();
        loop {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| ranks.get(&(w[0].clone(), w[1].clone())).map(|&r| (r, i)))
                .min();
            let Some((_, i)) = best else { break };
            let merged = format!("{}{}", parts[i], parts[i + 1]);
            parts.splice(i..i + 2, [merged]);
        }
        for p in parts {
            ids.push(*vocab.get(p.as_str())?);
        }
    }
    post_process(tj.get("post_processor"), ids)
}

fn post_process(pp: Option<&Value>, ids: Vec<u32>) -> Option<Vec<u32>> {
    let Some(pp) = pp.filter(|p| !p.is_null()) else {
        return Some(ids);
    };
    let processors: Vec<&Value> = match pp.get("type")?.as_str()? {
        "Sequence" => pp.get("processors")?.as_array()?.iter().collect(),
        _ => vec![pp],
    };
    let mut ids = ids;
    for p in processors {
        match p.get("type")?.as_str()? {
            "ByteLevel" => {}
            "TemplateProcessing" => {
                let specials = p.get("special_tokens")?;
                let mut out = Vec::new();
                for item in p.get("single")?.as_array()? {
                    if let Some(s) = item.get("SpecialToken") {
                        let id = s.get("id")?.as_str()?;
                        for x in specials.get(id)?.get("ids")?.as_array()? {
                            out.push(u32::try_from(x.as_u64()?).ok()?);
                        }
                    } else if item.get("Sequence").is_some() {
                        out.extend_from_slice(&ids);
                    } else {
                        return None;
                    }
                }
                ids = out;
            }
            _ => return None,
        }
    }
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_formats_like_python_str_list() {
        // sha256(str([1, 2, 3]).encode())
        assert_eq!(
            hash_ids(&[1, 2, 3]),
            "a36b1f2c3f84522dd1005145646617d7054c0851e97c72a039c0bdfac9fa07f3"
        );
        assert_eq!(
            lookup("e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea"),
            Some("qwen2")
        );
        assert_eq!(byte_chars()[b' ' as usize], '\u{120}');
        // Listed twice upstream (mpt, then olmo): the later `if` wins.
        assert_eq!(
            lookup("b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166"),
            Some("olmo")
        );
    }
}
