//! Licence-text normalisation: the canonical form in which texts are fingerprinted and phrases
//! matched (lowercased, copyright statements and years dropped, punctuation except `+` turned
//! into spaces, whitespace collapsed). A leaf: the catalog normalises its phrases with it when
//! it loads, and [`crate::text`] normalises the texts it identifies.

/// Normalise licence text for hashing and phrase matching.
#[must_use]
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut lowered = line.to_lowercase();
        // Copyright statements carry names and years that differ between copies: drop the
        // line from the first marker on (a NOTICE line keeps its licence sentence).
        let starts_with_copyright = lowered
            .trim_start_matches(|c: char| !c.is_alphanumeric())
            .starts_with("copyright");
        let cut = if starts_with_copyright {
            Some(0)
        } else {
            ["©", "(c)"]
                .iter()
                .filter_map(|marker| lowered.find(marker))
                .min()
        };
        if let Some(cut) = cut {
            lowered.truncate(cut);
        }
        for word in lowered
            .split(|c: char| !(c.is_alphanumeric() || c == '+'))
            .filter(|word| !word.is_empty() && !is_year(word))
        {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

fn is_year(word: &str) -> bool {
    word.len() == 4
        && (word.starts_with("19") || word.starts_with("20"))
        && word.chars().all(|c| c.is_ascii_digit())
}
