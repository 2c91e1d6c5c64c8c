//! A repo's page in the console, `/-/repo/{kind}/{org}/{name}`, rendered on the server from
//! [`super::repo_detail`]: revisions over time (licence per revision, changes marked), the
//! `base_model` lineage graph, conversions made from it, and the files of the newest revision
//! with sizes and hashes. Every repo-provided string is escaped; the admin actions for the repo
//! (pin and unpin per revision, track, convert) are added by the script for admins only.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::Mirror;
use super::errors::internal;
use super::html::{escape, time_element, verdict_class, verdict_label};
use super::repo_detail::{RepoDetail, detail};
use super::ui::{foot, head, repo_href};
use crate::units::human_size;

/// `GET /-/repo/{kind}/{org}/{name}`.
pub async fn page(
    State(mirror): State<Arc<Mirror>>,
    Path((kind, org, name)): Path<(String, String, String)>,
) -> Response {
    let not_found = || {
        (
            axum::http::StatusCode::NOT_FOUND,
            "no such repository is held here",
        )
            .into_response()
    };
    let Ok(kind) = super::actions::path_kind(&kind) else {
        return not_found();
    };
    let name = format!("{org}/{name}");
    if crate::hub::RepoId::parse(&name).is_err() {
        return not_found();
    }
    match detail(&mirror, kind, &name).await {
        Ok(Some(detail)) => {
            super::ui::with_headers("text/html; charset=utf-8", "no-store", render(&detail))
        }
        Ok(None) => not_found(),
        Err(e) => internal("reading a repo for its page failed", &e).into_response(),
    }
}

/// The page.
pub fn render(detail: &RepoDetail) -> String {
    let mut out = String::with_capacity(16384 + detail.files.len() * 200);
    let kind = detail.kind.to_string();
    head(
        &mut out,
        &format!("{} · Larder", detail.name),
        "repo",
        &[("kind", &kind), ("name", &detail.name)],
    );
    let newest = detail.revisions.first();
    let _ = write!(
        out,
        "<main id=\"main\"><h1 class=\"repo-title\">{name}</h1><p class=\"summary\">{kind}",
        name = escape(&detail.name),
    );
    if let Some(gate) = &detail.gated {
        let _ = write!(out, " · gated: {}", escape(gate));
    }
    let _ = write!(
        out,
        " · licence <span class=\"licence-id\">{id}</span> \
         <span class=\"badge verdict-{class}\" data-verdict=\"{class}\" title=\"{reasons}\">{label}</span>",
        id = escape(&detail.licence.id),
        class = verdict_class(&detail.licence.verdict),
        reasons = escape(&detail.licence.reasons.join("; ")),
        label = verdict_label(&detail.licence.verdict),
    );
    if let Some(newest) = newest {
        let _ = write!(
            out,
            " · {} held of {}",
            human_size(newest.bytes_held),
            human_size(newest.bytes_total)
        );
    }
    if !detail.tracked.is_empty() {
        let _ = write!(
            out,
            " · tracked: <span id=\"tracked-refs\">{}</span>",
            escape(&detail.tracked.join(", "))
        );
    }
    out.push_str("</p><div id=\"repo-actions\"></div>\n");

    // Revisions over time.
    out.push_str(
        "<section id=\"revisions-section\" aria-labelledby=\"revisions-title\">\
         <h2 id=\"revisions-title\">Revisions</h2><div class=\"scroll\"><table id=\"revisions\">\
         <thead><tr><th>Commit</th><th>Refs</th><th>Pulled</th><th>Size held</th>\
         <th>Licence</th><th>Pinned</th><th><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>",
    );
    for revision in &detail.revisions {
        let licence = revision.licence.as_deref().unwrap_or("not detected");
        let _ = write!(
            out,
            "<tr class=\"revision\" data-commit=\"{commit}\" data-pinned=\"{pinned}\" \
             data-licence-changed=\"{changed}\"><td><code title=\"{commit}\">{short}</code></td>\
             <td>{refs}</td><td>{pulled}</td><td>{held}</td>\
             <td><span class=\"licence-id\" title=\"{licence_name}\">{licence}</span>{mark}</td>\
             <td class=\"pin-state\">{pin}</td><td class=\"row-actions\"></td></tr>",
            commit = escape(&revision.commit),
            short = escape(revision.commit.get(..12).unwrap_or(&revision.commit)),
            pinned = revision.pinned,
            changed = revision.licence_changed,
            refs = escape(&revision.refs.join(", ")),
            pulled = time_element(Some(revision.fetched_at)),
            held = human_size(revision.bytes_held),
            licence = escape(licence),
            licence_name = escape(revision.licence_name.as_deref().unwrap_or("")),
            mark = if revision.licence_changed {
                " <span class=\"tag changed\" title=\"differs from the revision pulled before\">licence changed</span>"
            } else {
                ""
            },
            pin = if revision.pinned { "pinned" } else { "" },
        );
    }
    out.push_str("</tbody></table></div></section>\n");

    // Lineage.
    out.push_str(
        "<section id=\"lineage-section\" aria-labelledby=\"lineage-title\">\
         <h2 id=\"lineage-title\">Lineage</h2>",
    );
    let graph = super::lineage::svg(&detail.lineage);
    if graph.is_empty() {
        out.push_str("<p class=\"status\">The card names no base model.</p>");
    } else {
        let _ = write!(
            out,
            "<div class=\"scroll\">{graph}</div><ol class=\"lineage-list\">"
        );
        for node in &detail.lineage.nodes {
            let _ = write!(
                out,
                "<li data-depth=\"{depth}\">{indent}{name} — <span class=\"licence-id\">{licence}</span> \
                 <span class=\"badge verdict-{class}\">{label}</span></li>",
                depth = node.depth,
                indent = "↳ ".repeat(node.depth.min(1)),
                name = if node.held && node.depth > 0 {
                    format!(
                        "<a href=\"{}\">{}</a>",
                        escape(&repo_href(crate::registry::RepoKind::Model, &node.name)),
                        escape(&node.name)
                    )
                } else {
                    escape(&node.name)
                },
                licence = escape(&node.licence),
                class = verdict_class(&node.verdict),
                label = if node.held {
                    verdict_label(&node.verdict)
                } else {
                    "not held"
                },
            );
        }
        out.push_str("</ol>");
        if detail.lineage.truncated {
            out.push_str("<p class=\"status\">The lineage goes on beyond what is drawn.</p>");
        }
    }
    out.push_str("</section>\n");

    // Conversions made from it.
    out.push_str(
        "<section id=\"derived-section\" aria-labelledby=\"derived-title\">\
         <h2 id=\"derived-title\">Conversions</h2>",
    );
    if detail.derived.is_empty() {
        out.push_str("<p class=\"status\">None made here.</p>");
    } else {
        out.push_str("<ul id=\"derived\">");
        for derived in &detail.derived {
            let _ = write!(
                out,
                "<li><a href=\"{href}\">{repo}</a> <code>{commit}</code> from <code>{source}</code> \
                 by {tool} <span class=\"params\">{params}</span> {at}</li>",
                href = escape(&repo_href(crate::registry::RepoKind::Model, &derived.repo)),
                repo = escape(&derived.repo),
                commit = escape(derived.commit.get(..12).unwrap_or(&derived.commit)),
                source = escape(
                    derived
                        .source_commit
                        .get(..12)
                        .unwrap_or(&derived.source_commit)
                ),
                tool = escape(&derived.tool),
                params = escape(&derived.params.to_string()),
                at = time_element(Some(derived.created_at)),
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>\n");

    // Files.
    let _ = write!(
        out,
        "<section id=\"files-section\" aria-labelledby=\"files-title\">\
         <h2 id=\"files-title\">Files of the newest revision</h2><div class=\"scroll\"><table id=\"files\">\
         <thead><tr><th>Path</th><th>Size</th><th>SHA-256</th><th>Held</th></tr></thead><tbody>"
    );
    for file in &detail.files {
        let _ = write!(
            out,
            "<tr class=\"file\"><td class=\"path\">{path}</td><td data-bytes=\"{size}\">{human}</td>\
             <td><code class=\"hash\">{hash}</code></td><td>{held}</td></tr>",
            path = escape(&file.path),
            size = file.size,
            human = human_size(file.size),
            hash = escape(file.sha256.as_deref().unwrap_or(&file.git_oid)),
            held = if file.held { "yes" } else { "no" },
        );
    }
    out.push_str("</tbody></table></div>");
    if detail.files_omitted > 0 {
        let _ = write!(
            out,
            "<p class=\"status\">{} more files not listed.</p>",
            detail.files_omitted
        );
    }
    out.push_str("</section></main>\n");
    foot(&mut out);
    out
}
