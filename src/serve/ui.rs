//! The mirror's console for people at `/`: the repos held (size, revisions, licence verdict,
//! last pull and check) rendered on the server, with search, filters (verdict, pinned, tracked,
//! size) and sortable columns; the jobs with live progress; storage (used vs quota, pinned, a
//! chart of bytes served vs fetched upstream). Each repo has its own page ([`super::repo_page`]).
//! The script follows `GET /v1/events` (server-sent events) and falls back to polling
//! `GET /v1/jobs` while the stream is down. `?q=` filters on the server, so the page also works
//! without the script.
//!
//! Actions (pull, convert, cancel, pin, track, licence reviews) are built by the script only
//! when `GET /v1/session` says the browser is an admin: with the admin token the person pasted
//! into the sign-in form (kept in the tab's `sessionStorage`), or, with no admin tokens
//! configured, from the mirror's own machine. They call the `/v1` API with `fetch()`, a JSON
//! body and an `Authorization` header, which no other site can make a browser send (the
//! server checks the token, the content type and the origin on every change; see
//! [`super::access`]); a browser without admin rights gets no buttons, and any request it
//! forges is refused with 401 or 403.
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
use super::html::{escape, time_element, verdict_class, verdict_label};
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

/// The console page of a repo, percent-encoded.
pub fn repo_href(kind: RepoKind, name: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let encoded: Vec<String> = name
        .split('/')
        .map(|part| percent_encoding::utf8_percent_encode(part, SEGMENT).to_string())
        .collect();
    format!("/-/repo/{kind}/{}", encoded.join("/"))
}

fn repo_row(out: &mut String, row: &RepoRow) {
    let short = row.commit.get(..10).unwrap_or(&row.commit);
    let _ = write!(
        out,
        "<tr class=\"repo\" data-kind=\"{kind}\" data-name=\"{name}\" data-search=\"{search}\" \
         data-verdict=\"{verdict}\" data-pinned=\"{pinned}\" data-tracked=\"{tracked}\" \
         data-bytes=\"{bytes}\" data-pulled=\"{pulled}\" data-served=\"{served}\">\
         <td class=\"name\"><a href=\"{href}\">{name}</a>",
        kind = row.kind,
        name = escape(&row.name),
        search = escape(&row.search_text()),
        href = escape(&repo_href(row.kind, &row.name)),
        verdict = verdict_class(&row.licence.verdict),
        pinned = row.pinned,
        tracked = !row.tracked.is_empty(),
        bytes = row.bytes_held,
        pulled = row.last_pulled,
        served = row.last_served.unwrap_or(0),
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

/// The document's head and header, with the navigation and the admin sign-in (shared by the
/// console's pages); `page` names the page for the script.
pub fn head(out: &mut String, title: &str, page: &str, data: &[(&str, &str)]) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"{STYLE_PATH}\"></head>\n\
         <body data-page=\"{page}\"",
        title = escape(title),
        page = escape(page),
    );
    for (key, value) in data {
        let _ = write!(out, " data-{key}=\"{}\"", escape(value));
    }
    out.push_str(
        "><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><nav aria-label=\"Console\"><a class=\"brand\" href=\"/\">Larder</a> \
         <a href=\"/#repos-section\">Repositories</a> <a href=\"/#jobs-section\">Jobs</a> \
         <a href=\"/#storage-section\">Storage</a> \
         <a href=\"/#reviews-section\" id=\"nav-reviews\" hidden>Licence reviews</a></nav>\
         <form id=\"signin\" class=\"signin\" autocomplete=\"off\"><label for=\"admin-token\">Admin token</label> \
         <input id=\"admin-token\" type=\"password\" autocomplete=\"off\"> \
         <button type=\"submit\">Sign in</button></form>\
         <p id=\"session\" class=\"session\" hidden><span id=\"session-text\">Admin</span> \
         <button type=\"button\" id=\"signout\">Sign out</button></p>\
         <p id=\"live\" class=\"status\" aria-live=\"polite\"></p></header>\n",
    );
}

/// The end of a console page: footer and script.
pub fn foot(out: &mut String) {
    let _ = write!(
        out,
        "<footer><a href=\"/metrics\">metrics</a> · <a href=\"/healthz\">health</a> · \
         <a href=\"/v1/repos\">repos as JSON</a> · <a href=\"/v1/jobs\">jobs as JSON</a></footer>\n\
         <script src=\"{SCRIPT_PATH}\" defer></script></body></html>\n"
    );
}

/// The whole page.
pub fn render(overview: &Overview, query: Option<&str>) -> String {
    let mut out = String::with_capacity(8192 + overview.repos.len() * 600);
    let held: u64 = overview.repos.iter().map(|r| r.bytes_held).sum();
    head(
        &mut out,
        "Larder mirror",
        "overview",
        &[("online", if overview.online { "true" } else { "false" })],
    );
    let _ = write!(
        out,
        "<main id=\"main\"><p class=\"summary\">\
         Repos listed: <span id=\"repo-count\">{count}</span> · {held} held (newest revisions) · {mode} · {policy}",
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
        "</p>\n<section id=\"jobs-section\" aria-labelledby=\"jobs-title\"><h2 id=\"jobs-title\">Jobs</h2>\
         <div id=\"job-actions\"></div>\
         <div class=\"scroll\"><table id=\"jobs\"><thead><tr><th>Job</th><th>Target</th><th>State</th>\
         <th>Progress</th><th>Updated</th><th><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody id=\"jobs-body\">\
         <tr class=\"placeholder\"><td colspan=\"6\">The job list needs JavaScript.</td></tr>\
         </tbody></table></div><p id=\"jobs-status\" class=\"status\"></p></section>\n\
         <section id=\"reviews-section\" aria-labelledby=\"reviews-title\" hidden>\
         <h2 id=\"reviews-title\">Licence reviews</h2><div id=\"reviews\"></div></section>\n",
    );
    let _ = write!(
        out,
        "<section id=\"repos-section\" aria-labelledby=\"repos-title\"><h2 id=\"repos-title\">Repositories</h2>\
         <form method=\"get\" action=\"/\" role=\"search\" class=\"filters\"><input id=\"q\" name=\"q\" type=\"search\" \
         value=\"{q}\" placeholder=\"Filter by name, type or licence\" autocomplete=\"off\" \
         aria-label=\"Filter repositories\"> <button type=\"submit\">Filter</button> \
         <label>Licence <select id=\"f-verdict\"><option value=\"\">any</option>\
         <option value=\"allow\">allowed</option><option value=\"review\">needs review</option>\
         <option value=\"deny\">denied</option><option value=\"unknown\">unknown</option></select></label> \
         <label><input type=\"checkbox\" id=\"f-pinned\"> pinned</label> \
         <label><input type=\"checkbox\" id=\"f-tracked\"> tracked</label> \
         <label>Size <select id=\"f-size\"><option value=\"0\">any</option>\
         <option value=\"1048576\">&ge; 1 MiB</option><option value=\"1073741824\">&ge; 1 GiB</option>\
         <option value=\"10737418240\">&ge; 10 GiB</option></select></label></form>\
         <div class=\"scroll\"><table id=\"repos\"><thead><tr>\
         <th aria-sort=\"ascending\"><button type=\"button\" class=\"sort\" data-key=\"name\">Repository</button></th>\
         <th>Revisions</th>\
         <th><button type=\"button\" class=\"sort\" data-key=\"bytes\">Size held</button></th>\
         <th><button type=\"button\" class=\"sort\" data-key=\"verdict\">Licence</button></th>\
         <th><button type=\"button\" class=\"sort\" data-key=\"pulled\">Last pulled</button></th>\
         <th>Last checked</th>\
         <th><button type=\"button\" class=\"sort\" data-key=\"served\">Last served</button></th>\
         </tr></thead><tbody id=\"repos-body\">",
        q = escape(query.unwrap_or("")),
    );
    for row in &overview.repos {
        repo_row(&mut out, row);
    }
    let _ = write!(
        out,
        "</tbody></table></div><p id=\"no-match\" class=\"status\"{}>No repository matches.</p></section>\n\
         <section id=\"storage-section\" aria-labelledby=\"storage-title\"><h2 id=\"storage-title\">Storage</h2>\
         <p id=\"storage-used\" class=\"summary\">Loading…</p>\
         <div class=\"meter\"><div id=\"storage-bar\" class=\"meter-fill\"></div></div>\
         <h3>What the cache saved</h3>\
         <p class=\"legend\"><span class=\"key served\"></span> served to clients \
         <span class=\"key fetched\"></span> fetched upstream</p>\
         <svg id=\"traffic-chart\" class=\"chart\" viewBox=\"0 0 600 160\" role=\"img\" \
         aria-label=\"Bytes served and fetched over time\"></svg>\
         <p id=\"traffic-text\" class=\"summary\"></p>\
         <h3>Pinned</h3><ul id=\"pinned-list\"><li class=\"none\">Loading…</li></ul></section></main>\n",
        if overview.repos.is_empty() {
            ""
        } else {
            " hidden"
        },
    );
    foot(&mut out);
    out
}

pub fn with_headers(content_type: &'static str, cache: &'static str, body: String) -> Response {
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
            "/-/repo/dataset/acme/a%20b%3Cc%3E"
        );
    }
}
