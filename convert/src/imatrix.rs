//! Importance matrices written by `llama-imatrix`, in both of its formats,
//! turned into the per-column weights `llama-quantize --imatrix` uses.
//!
//! - GGUF (current): for every weight `NAME`, an F32 tensor `NAME.in_sum2`
//!   (`[n_per_row, n_mat]`: summed squared activations per column, one row
//!   per expert) and `NAME.counts` (`[n_mat]`: how many activations each
//!   sum holds), plus `imatrix.datasets`, `imatrix.chunk_count`,
//!   `imatrix.chunk_size`. The weights are `in_sum2 / count`, per expert
//!   (an expert never routed to, count 0, gets weights of 1, as in
//!   llama-quantize).
//! - Legacy `.dat`: `i32 n_entries`, then per entry `i32 name_len, name,
//!   i32 ncall, i32 nval, f32 values[nval]`, then optionally `i32 chunks,
//!   i32 len, dataset`. The weights are `values / ncall`; as in llama-quantize, an
//!   entry with `ncall` 0 (never written by llama-imatrix, which skips entries
//!   without data) keeps its values undivided.
//!
//! Everything is bounds-checked: a truncated or inconsistent file, a NaN or
//! infinite value, a negative sum or count, an entry with no recorded
//! activations (GGUF counts all 0, legacy values all 0), a sum so large for
//! its count that the weight overflows, and (in [`Imatrix::check_against`]) a
//! tensor name the model does not have or a length that does not match the
//! tensor are refused with an error naming the entry. Accepted weights are
//! finite and non-negative.
//!
//! Allocation is bounded by the file's size: every count and length read from
//! it (tensors, metadata entries, array elements, string bytes, tensor
//! elements) is checked against the bytes the file has left before anything
//! is allocated or looped over, so a header claiming 2^40 elements is refused
//! at once, and parsing an N-byte file holds O(N) memory.

use std::collections::BTreeMap;
use std::path::Path;

/// What is wrong with an imatrix file.
#[derive(Debug, thiserror::Error)]
pub enum ImatrixError {
    /// The file could not be read.
    #[error("failed to read the importance matrix `{path}`")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file ends before a field it announces.
    #[error("the importance matrix is truncated: {0}")]
    Truncated(String),
    /// A structural problem (bad counts, types, shapes, duplicates).
    #[error("invalid importance matrix: {0}")]
    Invalid(String),
    /// A value is NaN or infinite.
    #[error("the importance matrix entry `{entry}` contains a non-finite value at {index}")]
    NonFinite {
        /// The entry (tensor) name.
        entry: String,
        /// Index of the offending value.
        index: usize,
    },
    /// A sum divided by its count gives a weight too large for an `f32` (a huge sum over a
    /// fractional count).
    #[error(
        "the importance matrix entry `{entry}` gives an infinite weight at {index}: its sum is too large for its count"
    )]
    WeightOverflow {
        /// The entry (tensor) name.
        entry: String,
        /// Index of the offending weight.
        index: usize,
    },
    /// An entry recorded no activations at all.
    #[error("the importance matrix entry `{0}` has no recorded activations (zero count)")]
    ZeroCount(String),
    /// An entry names no tensor of the model being converted.
    #[error(
        "the importance matrix has an entry `{0}` that is not a tensor of this model (was it made for another model?)"
    )]
    UnknownTensor(String),
    /// An entry's length does not match its tensor.
    #[error(
        "the importance matrix entry `{entry}` has {got} values, but the tensor needs {expected} (columns × experts)"
    )]
    SizeMismatch {
        /// The entry (tensor) name.
        entry: String,
        /// Values in the file.
        got: usize,
        /// Columns × experts of the tensor.
        expected: usize,
    },
    /// A type that needs the matrix found no entry for a tensor.
    #[error(
        "the importance matrix has no entry for `{0}`, which this type cannot quantize without one"
    )]
    Missing(String),
}

type Result<T> = std::result::Result<T, ImatrixError>;

/// A loaded importance matrix.
#[derive(Debug, Clone, Default)]
pub struct Imatrix {
    /// Per tensor name, the weights: `n_per_row` values per expert.
    pub entries: BTreeMap<String, Vec<f32>>,
    /// Names of the datasets it was computed on.
    pub datasets: Vec<String>,
    /// Chunks of text it was computed on (0 if unknown).
    pub chunk_count: u32,
    /// Whether it came from the legacy `.dat` format.
    pub legacy: bool,
}

/// A bounds-checked little-endian reader.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| {
                ImatrixError::Truncated(format!("{what} at byte {} needs {n} bytes", self.pos))
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8"),
        ))
    }
    fn len(&mut self, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.b.len())
            .ok_or_else(|| ImatrixError::Truncated(format!("{what}: length {n} beyond the file")))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.len(what)?;
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec())
            .map_err(|_| ImatrixError::Invalid(format!("{what} is not UTF-8")))
    }
    fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>> {
        let bytes = self.take(
            n.checked_mul(4)
                .ok_or_else(|| ImatrixError::Truncated(format!("{what}: {n} values")))?,
            what,
        )?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect())
    }
}

fn check_finite(entry: &str, v: &[f32]) -> Result<()> {
    if let Some(index) = v.iter().position(|x| !x.is_finite()) {
        return Err(ImatrixError::NonFinite {
            entry: entry.to_owned(),
            index,
        });
    }
    if v.iter().any(|x| *x < 0.0) {
        return Err(ImatrixError::Invalid(format!(
            "entry `{entry}` has a negative sum of squares"
        )));
    }
    Ok(())
}

impl Imatrix {
    /// Reads a file in either format (GGUF is recognized by its magic).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| ImatrixError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes)
    }

    /// Parses the bytes of a file in either format.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.starts_with(b"GGUF") {
            Self::parse_gguf(bytes)
        } else {
            Self::parse_legacy(bytes)
        }
    }

    fn parse_legacy(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { b: bytes, pos: 0 };
        let n = r.i32("the entry count")?;
        if n < 1 {
            return Err(ImatrixError::Invalid(format!("{n} entries")));
        }
        let mut m = Imatrix {
            legacy: true,
            ..Default::default()
        };
        for i in 0..n {
            let len = r.i32("an entry name length")?;
            let len = usize::try_from(len)
                .map_err(|_| ImatrixError::Invalid(format!("entry {i}: name length {len}")))?;
            let name = String::from_utf8(r.take(len, "an entry name")?.to_vec())
                .map_err(|_| ImatrixError::Invalid(format!("entry {i}: name is not UTF-8")))?;
            let ncall = r.i32("a call count")?;
            let nval = r.i32("a value count")?;
            if nval < 1 {
                return Err(ImatrixError::Invalid(format!(
                    "entry `{name}` has {nval} values"
                )));
            }
            let values = r.f32s(nval as usize, "entry values")?;
            check_finite(&name, &values)?;
            if ncall < 0 {
                return Err(ImatrixError::Invalid(format!(
                    "entry `{name}` has a negative call count ({ncall})"
                )));
            }
            // llama-quantize divides by the call count only when it is positive: with 0 the
            // values are taken as the weights themselves (llama-imatrix never writes such an
            // entry; it skips tensors without data). Values that are all zero say nothing.
            if values.iter().all(|v| *v == 0.0) {
                return Err(ImatrixError::ZeroCount(name));
            }
            let weights = if ncall > 0 {
                values.iter().map(|v| v / ncall as f32).collect()
            } else {
                values
            };
            if m.entries.insert(name.clone(), weights).is_some() {
                return Err(ImatrixError::Invalid(format!(
                    "entry `{name}` appears twice"
                )));
            }
        }
        if r.pos < bytes.len() {
            let chunks = r.i32("the chunk count")?;
            m.chunk_count = chunks.max(0) as u32;
            if r.pos < bytes.len() {
                let len = r.i32("the dataset name length")?;
                if len > 0 {
                    let d = r.take(len as usize, "the dataset name")?;
                    m.datasets.push(String::from_utf8_lossy(d).into_owned());
                }
            }
        }
        Ok(m)
    }

    fn parse_gguf(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { b: bytes, pos: 4 };
        let version = r.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(ImatrixError::Invalid(format!("GGUF version {version}")));
        }
        let n_tensors = r.len("the tensor count")?;
        let n_kv = r.len("the metadata count")?;
        let mut m = Imatrix::default();
        let mut alignment = 32u64;
        for _ in 0..n_kv {
            let key = r.string("a metadata key")?;
            let ty = r.u32("a metadata type")?;
            match (key.as_str(), ty) {
                ("imatrix.datasets", 9) => {
                    let et = r.u32("an array type")?;
                    let n = r.len("an array length")?;
                    for _ in 0..n {
                        if et != 8 {
                            return Err(ImatrixError::Invalid(
                                "imatrix.datasets is not a list of strings".into(),
                            ));
                        }
                        m.datasets.push(r.string("a dataset name")?);
                    }
                }
                ("imatrix.chunk_count", 4) => m.chunk_count = r.u32("imatrix.chunk_count")?,
                ("general.alignment", 4) => {
                    alignment = u64::from(r.u32("general.alignment")?);
                    if alignment == 0 || !alignment.is_power_of_two() {
                        return Err(ImatrixError::Invalid(format!("alignment {alignment}")));
                    }
                }
                _ => skip_value(&mut r, ty, 0)?,
            }
        }
        struct Info {
            name: String,
            n: usize,
            offset: u64,
        }
        let mut infos = Vec::with_capacity(n_tensors.min(1 << 16));
        for _ in 0..n_tensors {
            let name = r.string("a tensor name")?;
            let n_dims = r.u32("a tensor's dimension count")?;
            if n_dims > 4 {
                return Err(ImatrixError::Invalid(format!(
                    "`{name}` has {n_dims} dimensions"
                )));
            }
            let mut n = 1usize;
            for _ in 0..n_dims {
                let d = r.u64("a tensor dimension")?;
                n = usize::try_from(d)
                    .ok()
                    .and_then(|d| n.checked_mul(d))
                    .filter(|n| *n <= bytes.len())
                    .ok_or_else(|| ImatrixError::Invalid(format!("`{name}` is too large")))?;
            }
            let ty = r.u32("a tensor type")?;
            if ty != 0 {
                return Err(ImatrixError::Invalid(format!(
                    "`{name}` is not F32 (ggml type {ty})"
                )));
            }
            let offset = r.u64("a tensor offset")?;
            infos.push(Info { name, n, offset });
        }
        let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
        let mut sums: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        let mut counts: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        for info in infos {
            let start = data_start
                .checked_add(info.offset)
                .and_then(|s| usize::try_from(s).ok())
                .ok_or_else(|| ImatrixError::Truncated(format!("`{}`", info.name)))?;
            let mut tr = Reader {
                b: bytes,
                pos: start,
            };
            let v = tr.f32s(info.n, &format!("the data of `{}`", info.name))?;
            let (target, base) = if let Some(b) = info.name.strip_suffix(".in_sum2") {
                (&mut sums, b)
            } else if let Some(b) = info.name.strip_suffix(".counts") {
                (&mut counts, b)
            } else {
                continue;
            };
            if target.insert(base.to_owned(), v).is_some() {
                return Err(ImatrixError::Invalid(format!(
                    "`{}` appears twice",
                    info.name
                )));
            }
        }
        if sums.is_empty() {
            return Err(ImatrixError::Invalid("no entries".into()));
        }
        for (name, s) in sums {
            let c = counts
                .remove(&name)
                .ok_or_else(|| ImatrixError::Invalid(format!("`{name}` has sums but no counts")))?;
            check_finite(&name, &s)?;
            if let Some(index) = c.iter().position(|x| !x.is_finite()) {
                return Err(ImatrixError::NonFinite { entry: name, index });
            }
            if c.is_empty() || s.is_empty() || s.len() % c.len() != 0 {
                return Err(ImatrixError::Invalid(format!(
                    "`{name}`: {} sums do not divide into {} counts",
                    s.len(),
                    c.len()
                )));
            }
            if c.iter().any(|x| *x < 0.0) {
                return Err(ImatrixError::Invalid(format!(
                    "`{name}` has a negative count"
                )));
            }
            // llama-quantize divides by the stored counts as they are (llama-imatrix
            // writes whole numbers; only its own loader rounds them).
            if c.iter().all(|x| *x == 0.0) {
                return Err(ImatrixError::ZeroCount(name));
            }
            let ne0 = s.len() / c.len();
            let mut w = vec![1.0f32; s.len()];
            for (j, &count) in c.iter().enumerate() {
                if count > 0.0 {
                    for i in 0..ne0 {
                        w[j * ne0 + i] = s[j * ne0 + i] / count;
                    }
                }
            }
            if let Some(index) = w.iter().position(|x| !x.is_finite()) {
                return Err(ImatrixError::WeightOverflow { entry: name, index });
            }
            m.entries.insert(name, w);
        }
        if let Some(name) = counts.into_keys().next() {
            return Err(ImatrixError::Invalid(format!(
                "`{name}` has counts but no sums"
            )));
        }
        Ok(m)
    }

    /// Checks every entry against the model's tensors (`name → columns ×
    /// experts`): each must name one of them and have its length.
    pub fn check_against(&self, tensors: &BTreeMap<String, usize>) -> Result<()> {
        for (name, w) in &self.entries {
            let Some(&expected) = tensors.get(name) else {
                return Err(ImatrixError::UnknownTensor(name.clone()));
            };
            // llama-quantize tolerates a mismatched token embedding (it never has activations).
            if w.len() != expected && name != "token_embd.weight" {
                return Err(ImatrixError::SizeMismatch {
                    entry: name.clone(),
                    got: w.len(),
                    expected,
                });
            }
        }
        Ok(())
    }

    /// The weights for tensor `name` of `len` values (columns × experts), if any.
    pub fn weights(&self, name: &str, len: usize) -> Option<&[f32]> {
        self.entries
            .get(name)
            .filter(|w| w.len() == len)
            .map(Vec::as_slice)
    }
}

/// Skips one GGUF metadata value of type `ty`.
fn skip_value(r: &mut Reader<'_>, ty: u32, depth: u32) -> Result<()> {
    let size = match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => {
            let n = r.len("a string")?;
            r.take(n, "a string")?;
            return Ok(());
        }
        9 if depth == 0 => {
            let et = r.u32("an array type")?;
            let n = r.len("an array length")?;
            for _ in 0..n {
                skip_value(r, et, depth + 1)?;
            }
            return Ok(());
        }
        _ => return Err(ImatrixError::Invalid(format!("metadata type {ty}"))),
    };
    r.take(size, "a metadata value")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy file with the given entries `(name, ncall, values)`.
    pub(super) fn legacy(entries: &[(&str, i32, &[f32])], trailer: bool) -> Vec<u8> {
        let mut b = (entries.len() as i32).to_le_bytes().to_vec();
        for (name, ncall, v) in entries {
            b.extend((name.len() as i32).to_le_bytes());
            b.extend(name.as_bytes());
            b.extend(ncall.to_le_bytes());
            b.extend((v.len() as i32).to_le_bytes());
            for x in *v {
                b.extend(x.to_le_bytes());
            }
        }
        if trailer {
            b.extend(7i32.to_le_bytes());
            b.extend(4i32.to_le_bytes());
            b.extend(b"wiki");
        }
        b
    }

    #[test]
    fn legacy_divides_by_calls() {
        let m = Imatrix::parse(&legacy(&[("blk.0.attn_q.weight", 4, &[4.0, 8.0])], true)).unwrap();
        assert!(m.legacy);
        assert_eq!(m.entries["blk.0.attn_q.weight"], vec![1.0, 2.0]);
        assert_eq!(m.chunk_count, 7);
        assert_eq!(m.datasets, vec!["wiki".to_owned()]);
    }

    /// A call count of 0 (which llama-imatrix never writes) leaves the values undivided, as
    /// llama-quantize's legacy loader does.
    #[test]
    fn legacy_zero_calls_take_the_values_as_weights() {
        let m = Imatrix::parse(&legacy(&[("a.weight", 0, &[3.0, 0.5])], false)).unwrap();
        assert_eq!(m.entries["a.weight"], vec![3.0, 0.5]);
    }

    #[test]
    fn legacy_hostile_files_are_refused() {
        let good = legacy(&[("a.weight", 2, &[1.0, 2.0, 3.0])], false);
        for cut in 0..good.len() {
            assert!(Imatrix::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            Imatrix::parse(&legacy(&[("a.weight", 2, &[1.0, f32::NAN])], false)),
            Err(ImatrixError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            Imatrix::parse(&legacy(&[("a.weight", 0, &[0.0, 0.0])], false)),
            Err(ImatrixError::ZeroCount(_))
        ));
        assert!(matches!(
            Imatrix::parse(&legacy(&[("a.weight", 3, &[0.0])], false)),
            Err(ImatrixError::ZeroCount(_))
        ));
        assert!(matches!(
            Imatrix::parse(&legacy(&[("a.weight", -1, &[1.0])], false)),
            Err(ImatrixError::Invalid(m)) if m.contains("negative call count")
        ));
        assert!(Imatrix::parse(&legacy(&[("a.weight", 1, &[-1.0])], false)).is_err());
        let mut huge = legacy(&[("a.weight", 1, &[1.0])], false);
        huge[4..8].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(matches!(
            Imatrix::parse(&huge),
            Err(ImatrixError::Truncated(_))
        ));
    }

    /// Found by `fuzz::gguf_hostile_files`: the largest finite sum over a fractional count
    /// gave an infinite weight, accepted.
    #[test]
    fn gguf_weight_overflow_is_refused() {
        let file = super::fuzz::gguf(&[(vec![f32::MAX, 1.0], vec![0.5])]);
        assert!(matches!(
            Imatrix::parse(&file),
            Err(ImatrixError::WeightOverflow { index: 0, .. })
        ));
        let file = super::fuzz::gguf(&[(vec![f32::MAX, 1.0], vec![1.0])]);
        assert_eq!(
            Imatrix::parse(&file).unwrap().entries["blk.0.ffn_up.weight"],
            vec![f32::MAX, 1.0]
        );
    }

    /// Counts and lengths claiming 2^40 of anything are refused at once, before anything is
    /// allocated for them.
    #[test]
    fn gguf_huge_claims_are_refused_at_once() {
        let good = super::fuzz::gguf(&[(vec![1.0, 2.0], vec![1.0])]);
        assert!(Imatrix::parse(&good).is_ok());
        let huge = (1u64 << 40).to_le_bytes();
        // Tensor count, metadata count, the first key's length, the dataset array's length,
        // and the first string in it.
        let first_key = 24;
        let key_len = "imatrix.datasets".len();
        let array_len = first_key + 8 + key_len + 4 + 4;
        for at in [8, 16, first_key, array_len, array_len + 8] {
            let mut file = good.clone();
            file[at..at + 8].copy_from_slice(&huge);
            let started = std::time::Instant::now();
            let error = Imatrix::parse(&file).unwrap_err();
            assert!(
                matches!(error, ImatrixError::Truncated(_) | ImatrixError::Invalid(_)),
                "{at}: {error}"
            );
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "{at}"
            );
        }
        // A tensor dimension of 2^40 elements.
        let name = b"blk.0.ffn_up.weight.in_sum2";
        let at = good.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4;
        let mut file = good.clone();
        file[at..at + 8].copy_from_slice(&huge);
        assert!(
            matches!(Imatrix::parse(&file), Err(ImatrixError::Invalid(m)) if m.contains("too large"))
        );
        // A legacy file claiming i32::MAX values of one entry.
        let mut legacy_file = legacy(&[("a.weight", 1, &[1.0])], false);
        let values_at = 4 + 4 + "a.weight".len() + 4;
        legacy_file[values_at..values_at + 4].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(matches!(
            Imatrix::parse(&legacy_file),
            Err(ImatrixError::Truncated(_))
        ));
    }

    #[test]
    fn names_and_sizes_are_checked_against_the_model() {
        let m = Imatrix::parse(&legacy(&[("blk.0.attn_q.weight", 1, &[1.0; 4])], false)).unwrap();
        let mut model = BTreeMap::new();
        model.insert("blk.0.attn_q.weight".to_owned(), 4usize);
        m.check_against(&model).unwrap();
        model.insert("blk.0.attn_q.weight".to_owned(), 8usize);
        assert!(matches!(
            m.check_against(&model),
            Err(ImatrixError::SizeMismatch {
                got: 4,
                expected: 8,
                ..
            })
        ));
        let other = BTreeMap::from([("blk.0.attn_k.weight".to_owned(), 4usize)]);
        assert!(matches!(
            m.check_against(&other),
            Err(ImatrixError::UnknownTensor(_))
        ));
    }
}

/// Property tests: hostile imatrix files in both formats, the GGUF one being Larder's only GGUF
/// reader. Run with `PROPTEST_CASES` cases (256 by default); `bench/fuzz` runs many more.
#[cfg(test)]
mod fuzz {
    use super::tests::legacy;
    use super::*;
    use crate::gguf::{MetaArray, MetaValue, TensorInfo, encode_header};
    use crate::quant::GgmlType;
    use proptest::prelude::*;

    /// One entry: `n_mat` rows of `n_per_row` sums, and `n_mat` counts.
    type Entry = (Vec<f32>, Vec<f32>);

    /// The name of the `i`th entry.
    fn entry_name(i: usize) -> String {
        format!("blk.{i}.ffn_up.weight")
    }

    /// A GGUF imatrix file as llama-imatrix writes it (tensor data aligned to 32 bytes).
    pub(super) fn gguf(entries: &[Entry]) -> Vec<u8> {
        let kvs = vec![
            (
                "imatrix.datasets".to_owned(),
                MetaValue::Array(MetaArray::Str(vec!["wiki".to_owned()])),
            ),
            ("imatrix.chunk_count".to_owned(), MetaValue::U32(7)),
            ("general.name".to_owned(), MetaValue::Str("x".to_owned())),
        ];
        let mut tensors = Vec::new();
        let mut data: Vec<Vec<f32>> = Vec::new();
        for (i, (sums, counts)) in entries.iter().enumerate() {
            let name = entry_name(i);
            let n_mat = counts.len().max(1);
            tensors.push(TensorInfo {
                name: format!("{name}.in_sum2"),
                shape: vec![n_mat, sums.len() / n_mat],
                ty: GgmlType::F32,
            });
            tensors.push(TensorInfo {
                name: format!("{name}.counts"),
                shape: vec![counts.len()],
                ty: GgmlType::F32,
            });
            data.push(sums.clone());
            data.push(counts.clone());
        }
        let (mut out, _) = encode_header(&kvs, &tensors).unwrap();
        for values in data {
            out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            out.resize(out.len().next_multiple_of(32), 0);
        }
        out
    }

    fn value() -> impl Strategy<Value = f32> {
        prop_oneof![
            6 => 0.0f32..1e6,
            1 => Just(0.0f32),
            1 => Just(f32::MAX),
            1 => Just(f32::MIN_POSITIVE / 8.0),
            1 => any::<f32>(),
        ]
    }

    fn count() -> impl Strategy<Value = f32> {
        prop_oneof![
            6 => (1u32..200).prop_map(|c| c as f32),
            1 => Just(0.0f32),
            1 => Just(f32::MIN_POSITIVE / 8.0),
            1 => 0.0f32..1.0,
            1 => any::<f32>(),
        ]
    }

    fn entry() -> impl Strategy<Value = Entry> {
        (1usize..4, 1usize..9).prop_flat_map(|(n_mat, n_per_row)| {
            (
                proptest::collection::vec(value(), n_mat * n_per_row),
                proptest::collection::vec(count(), n_mat),
            )
        })
    }

    /// A damaged spot: one byte, or a length-sized field overwritten with a huge claim.
    fn damage() -> impl Strategy<Value = (proptest::sample::Index, Option<u64>, u8)> {
        (
            any::<proptest::sample::Index>(),
            prop_oneof![
                4 => Just(None),
                1 => prop_oneof![Just(1u64 << 40), Just(u64::MAX), Just(u64::from(u32::MAX)), 0u64..4096].prop_map(Some),
            ],
            any::<u8>(),
        )
    }

    fn apply(mut file: Vec<u8>, damage: &[(proptest::sample::Index, Option<u64>, u8)]) -> Vec<u8> {
        for (at, word, byte) in damage {
            let i = at.index(file.len());
            match word {
                Some(w) if i + 8 <= file.len() => file[i..i + 8].copy_from_slice(&w.to_le_bytes()),
                _ => file[i] = *byte,
            }
        }
        file
    }

    fn check_weights(m: &Imatrix) -> std::result::Result<(), TestCaseError> {
        for (name, w) in &m.entries {
            prop_assert!(!w.is_empty());
            prop_assert!(
                w.iter().all(|x| x.is_finite() && *x >= 0.0),
                "`{name}`: {w:?}"
            );
        }
        Ok(())
    }

    proptest! {
        /// A GGUF imatrix with any values and damage: an error, or finite, non-negative weights
        /// (per expert: sums over counts, 1 for an expert never routed to).
        #[test]
        fn gguf_hostile_files(
            entries in proptest::collection::vec(entry(), 1..3),
            damage in proptest::collection::vec(damage(), 0..3),
        ) {
            let file = apply(gguf(&entries), &damage);
            if let Ok(m) = Imatrix::parse(&file) {
                check_weights(&m)?;
                if damage.is_empty() {
                    for (i, (sums, _)) in entries.iter().enumerate() {
                        prop_assert_eq!(m.entries[&entry_name(i)].len(), sums.len());
                    }
                }
            }
        }

        /// Arbitrary bytes after the GGUF magic, or as a legacy file: never a panic.
        #[test]
        fn gguf_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(m) = Imatrix::parse(&bytes) {
                check_weights(&m)?;
            }
            let mut g = b"GGUF".to_vec();
            g.extend_from_slice(&bytes);
            if let Ok(m) = Imatrix::parse(&g) {
                check_weights(&m)?;
            }
        }

        /// A legacy file with any values and damage: an error, or finite, non-negative weights.
        #[test]
        fn legacy_hostile_files(
            values in proptest::collection::vec(value(), 1..8),
            ncall in prop_oneof![1i32..50, Just(0), Just(-1), any::<i32>()],
            trailer in any::<bool>(),
            damage in proptest::collection::vec(damage(), 0..3),
        ) {
            let file = apply(legacy(&[("blk.0.ffn_up.weight", ncall, &values)], trailer), &damage);
            if let Ok(m) = Imatrix::parse(&file) {
                check_weights(&m)?;
            }
        }
    }
}
