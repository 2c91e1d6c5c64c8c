//! The web page for people at `/`: the repos held (size, revisions, licence verdict, last pull
//! and check) rendered on the server, and the jobs with live progress filled in by a small
//! script that polls `GET /v1/jobs`. A search box filters the rows as one types (and `?q=`
//! filters on the server, so the page also works without the script).
//!
//! The page, its script and its style are embedded in the binary; nothing is loaded from
//! elsewhere, and the Content-Security-Policy says so. Everything that comes from the registry
//! (names, refs, licences from cards) is HTML-escaped here and set as text by the script.
//! Static files live under `/-/`, which is no repo id (the Hub's ids never start with `-`).

use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Mirror;
use super::errors::internal;
use super::repos::{self, Overview, RepoRow};
use crate::registry::RepoKind;

const SCRIPT: &str = include_str!("ui/page.js");
const STYLE: &str = include_str!("ui/page.css");

/// Where the script and style are served.
pub const SCRIPT_PATH: &str = "/-/larder.js";
/// See [`SCRIPT_PATH`].
pub const STYLE_PATH: &str = "/-/larder.css";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page, its assets and `/v1/repos`.
pub fn routes() -> Router<Arc<Mirror>> {
    Router::new()
        .route("/", get(page))
        .route(SCRIPT_PATH, get(script))
        .route(STYLE_PATH, get(style))
        .route("/v1/repos", get(repos::list))
}

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
fn time_element(unix: Option<i64>) -> String {
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
fn verdict_class(verdict: &str) -> &'static str {
    match verdict {
        "allow" => "allow",
        "review" => "review",
        "deny" => "deny",
        _ => "unknown",
    }
}

/// The Hub API URL of a repo (its info as JSON), percent-encoded.
fn repo_href(kind: RepoKind, name: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let plural = match kind {
        RepoKind::Model => "models",
        RepoKind::Dataset => "datasets",
    };
    let encoded: Vec<String> = name
        .split('/')
        .map(|part| percent_encoding::utf8_percent_encode(part, SEGMENT).to_string())
        .collect();
    format!("/api/{plural}/{}", encoded.join("/"))
}

fn repo_row(out: &mut String, row: &RepoRow) {
    let short = row.commit.get(..10).unwrap_or(&row.commit);
    let _ = write!(
        out,
        "<tr class=\"repo\" data-kind=\"{kind}\" data-name=\"{name}\" data-search=\"{search}\">\
         <td class=\"name\"><a href=\"{href}\">{name}</a>",
        kind = row.kind,
        name = escape(&row.name),
        search = escape(&row.search_text()),
        href = escape(&repo_href(row.kind, &row.name)),
    );
    if row.kind == RepoKind::Dataset {
        out.push_str(" <span class=\"tag\">dataset</span>");
    }
    if let Some(gate) = &row.gated {
        let _ = write!(out, " <span class=\"tag\">gated: {}</span>", escape(gate));
    }
    if !row.tracked.is_empty() {
        let _ = write!(
            out,
            " <span class=\"tag tracked\">tracked: {}</span>",
            escape(&row.tracked.join(", "))
        );
    }
    if let Some(error) = &row.track_error {
        let _ = write!(
            out,
            " <span class=\"tag failed\" title=\"{}\">check failed</span>",
            escape(error)
        );
    }
    if row.pinned {
        out.push_str(" <span class=\"tag pinned\">pinned</span>");
    }
    let refs = if row.refs.is_empty() {
        String::new()
    } else {
        format!("{} → ", row.refs.join(", "))
    };
    let _ = write!(
        out,
        "</td><td class=\"revisions\"><span class=\"count\">{count}</span> \
         <span class=\"refs\">{refs}<code>{short}</code></span></td>",
        count = row.revisions,
        refs = escape(&refs),
        short = escape(short),
    );
    let _ = write!(
        out,
        "<td class=\"size\" data-bytes=\"{}\">{}",
        row.bytes_held,
        crate::units::human_size(row.bytes_held)
    );
    if row.bytes_held < row.bytes_total {
        let _ = write!(
            out,
            " <span class=\"of\">of {}</span>",
            crate::units::human_size(row.bytes_total)
        );
    }
    let reasons = row.licence.reasons.join("; ");
    let _ = write!(
        out,
        "</td><td class=\"licence\"><span class=\"licence-id\" title=\"{name}\">{id}</span> \
         <span class=\"badge verdict-{class}\" data-verdict=\"{verdict}\" title=\"{reasons}\">{label}</span></td>",
        name = escape(&row.licence.name),
        id = escape(&row.licence.id),
        class = verdict_class(&row.licence.verdict),
        verdict = verdict_class(&row.licence.verdict),
        reasons = escape(&reasons),
        label = verdict_label(&row.licence.verdict),
    );
    let _ = write!(
        out,
        "<td class=\"pulled\">{}</td><td class=\"checked\">{}</td><td class=\"served\">{}</td></tr>",
        time_element(Some(row.last_pulled)),
        time_element(row.last_checked),
        time_element(row.last_served)
    );
}

/// The whole page.
pub fn render(overview: &Overview, query: Option<&str>) -> String {
    let mut out = String::with_capacity(8192 + overview.repos.len() * 600);
    let held: u64 = overview.repos.iter().map(|r| r.bytes_held).sum();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Larder mirror</title><link rel=\"stylesheet\" href=\"{STYLE_PATH}\"></head>\n\
         <body data-online=\"{online}\"><header><h1>Larder</h1><p class=\"summary\">\
         Repos listed: <span id=\"repo-count\">{count}</span> · {held} held (newest revisions) · {mode} · {policy}",
        online = overview.online,
        count = overview.repos.len(),
        held = crate::units::human_size(held),
        mode = if overview.online {
            "pull-through on"
        } else {
            "offline"
        },
        policy = if overview.policy {
            "licence policy: configured"
        } else {
            "licence policy: none configured (every licence needs review)"
        },
    );
    if overview.private_hidden > 0 {
        let _ = write!(out, " · {} private not listed", overview.private_hidden);
    }
    if let Some(t) = &overview.transports {
        let _ = write!(
            out,
            "</p><p class=\"summary\" id=\"transports\">Since start: {} over Xet ({} reconstructions) · \
             {} over plain HTTP · {} reused by Xet pulls instead of fetched",
            crate::units::human_size(t.xet_bytes),
            t.reconstructions,
            crate::units::human_size(t.http_bytes),
            crate::units::human_size(t.reused_bytes),
        );
    }
    out.push_str(
        "</p></header>\n<main><section id=\"jobs-section\"><h2>Jobs</h2>\
         <table id=\"jobs\"><thead><tr><th>Job</th><th>Target</th><th>State</th>\
         <th>Progress</th><th>Updated</th></tr></thead><tbody id=\"jobs-body\">\
         <tr class=\"placeholder\"><td colspan=\"5\">The job list needs JavaScript.</td></tr>\
         </tbody></table><p id=\"jobs-status\" class=\"status\"></p></section>\n",
    );
    let _ = write!(
        out,
        "<section id=\"repos-section\"><h2>Repositories</h2>\
         <form method=\"get\" action=\"/\" role=\"search\"><input id=\"q\" name=\"q\" type=\"search\" \
         value=\"{q}\" placeholder=\"Filter by name, type or licence\" autocomplete=\"off\" \
         aria-label=\"Filter repositories\"> <button type=\"submit\">Filter</button></form>\
         <table id=\"repos\"><thead><tr><th>Repository</th><th>Revisions</th><th>Size held</th>\
         <th>Licence</th><th>Last pulled</th><th>Last checked</th><th>Last served</th></tr></thead><tbody id=\"repos-body\">",
        q = escape(query.unwrap_or("")),
    );
    for row in &overview.repos {
        repo_row(&mut out, row);
    }
    let _ = write!(
        out,
        "</tbody></table><p id=\"no-match\" class=\"status\"{}>No repository matches.</p></section></main>\n\
         <footer><a href=\"/metrics\">metrics</a> · <a href=\"/healthz\">health</a> · \
         <a href=\"/v1/repos\">repos as JSON</a> · <a href=\"/v1/jobs\">jobs as JSON</a></footer>\n\
         <script src=\"{SCRIPT_PATH}\" defer></script></body></html>\n",
        if overview.repos.is_empty() {
            ""
        } else {
            " hidden"
        },
    );
    out
}

fn with_headers(content_type: &'static str, cache: &'static str, body: String) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `GET /[?q=words]`.
async fn page(State(mirror): State<Arc<Mirror>>, uri: Uri) -> Response {
    let query = repos::search_query(uri.query());
    match repos::overview(&mirror, query.as_deref()).await {
        Ok(overview) => with_headers(
            "text/html; charset=utf-8",
            "no-store",
            render(&overview, query.as_deref()),
        ),
        Err(e) => internal("listing repos for the page failed", &e).into_response(),
    }
}

async fn script() -> Response {
    with_headers(
        "text/javascript; charset=utf-8",
        "no-cache",
        SCRIPT.to_owned(),
    )
}

async fn style() -> Response {
    with_headers("text/css; charset=utf-8", "no-cache", STYLE.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<img src=x onerror='a(\"1\")'>&"),
            "&lt;img src=x onerror=&#39;a(&quot;1&quot;)&#39;&gt;&amp;"
        );
        assert_eq!(escape("acme/model-1.5"), "acme/model-1.5");
    }

    #[test]
    fn sizes_and_links() {
        assert_eq!(crate::units::human_size(0), "0 B");
        assert_eq!(crate::units::human_size(1023), "1023 B");
        assert_eq!(crate::units::human_size(1536), "1.5 KiB");
        assert_eq!(crate::units::human_size(24 << 20), "24.0 MiB");
        assert_eq!(
            repo_href(RepoKind::Dataset, "acme/a b<c>"),
            "/api/datasets/acme/a%20b%3Cc%3E"
        );
    }
}
