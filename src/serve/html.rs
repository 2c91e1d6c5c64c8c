//! Writing HTML on the server: escaping repo-provided text, `<time>` elements the script
//! turns into "3 min ago", and the licence verdicts' labels and class names. Shared by the
//! console's pages and the lineage drawing.

/// Escape text for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-11-27 14:03 UTC` in a `<time>` element the script turns into "3 min ago".
pub fn time_element(unix: Option<i64>) -> String {
    let Some(unix) = unix else {
        return "<span class=\"none\">never</span>".to_owned();
    };
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(unix) else {
        return "<span class=\"none\">?</span>".to_owned();
    };
    let iso = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let shown = at
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default();
    format!(
        "<time datetime=\"{}\" data-unix=\"{unix}\" title=\"{}\">{}</time>",
        escape(&iso),
        escape(&shown),
        escape(&shown)
    )
}

/// `allowed` / `needs review` / `denied` / `unknown`.
pub fn verdict_label(verdict: &str) -> &'static str {
    match verdict {
        "allow" => "allowed",
        "review" => "needs review",
        "deny" => "denied",
        _ => "unknown",
    }
}

/// A verdict safe to use in a class name.
pub fn verdict_class(verdict: &str) -> &'static str {
    match verdict {
        "allow" => "allow",
        "review" => "review",
        "deny" => "deny",
        _ => "unknown",
    }
}
