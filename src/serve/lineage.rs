//! The `base_model` lineage of a repo: the card's base models, theirs, and so on, each with its
//! licence and the policy's verdict when the mirror holds it, as a small graph (a merge has
//! several bases), and its drawing as inline SVG for the repo page.
//!
//! The walk is bounded ([`MAX_DEPTH`] levels, [`MAX_NODES`] repos) and names each repo once, so
//! a card that names itself, or a cycle, ends. Names come from cards and are escaped.

use std::collections::VecDeque;
use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

use super::Mirror;
use super::html::escape;
use super::repos::LicenceView;
use crate::licence::evidence::card_base_models;
use crate::registry::{RegistryError, RepoKind};

/// Deepest level followed.
pub const MAX_DEPTH: usize = 8;
/// Most repos in a graph.
pub const MAX_NODES: usize = 32;

/// One repo in the lineage.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// `org/name`.
    pub name: String,
    /// 0 for the repo itself, 1 for its bases, ...
    pub depth: usize,
    /// Whether the mirror holds it (a public revision of it).
    pub held: bool,
    /// Its licence id (`unknown` when not held or undetected).
    pub licence: String,
    /// The verdict (`allow`, `review`, `deny`, `unknown`).
    pub verdict: String,
}

/// `child` was made from `base` (indices into [`Lineage::nodes`]).
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// The derived repo.
    pub child: usize,
    /// Its base.
    pub base: usize,
}

/// The graph.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lineage {
    /// The repo first, then its ancestors level by level.
    pub nodes: Vec<Node>,
    /// Who was made from whom.
    pub edges: Vec<Edge>,
    /// Whether the walk stopped at a bound before the end.
    pub truncated: bool,
}

/// Walk the lineage of `name` (whose newest card is `card` and licence `licence`).
pub async fn trace(
    mirror: &Mirror,
    name: &str,
    licence: &LicenceView,
    card: Option<&Value>,
) -> Result<Lineage, RegistryError> {
    let registry = &mirror.larder.registry;
    let repos = registry.list_repos().await?;
    let mut lineage = Lineage {
        nodes: vec![Node {
            name: name.to_owned(),
            depth: 0,
            held: true,
            licence: licence.id.clone(),
            verdict: licence.verdict.clone(),
        }],
        ..Lineage::default()
    };
    let mut queue: VecDeque<(usize, Option<Value>)> = VecDeque::new();
    queue.push_back((0, card.cloned()));
    while let Some((child, card)) = queue.pop_front() {
        let depth = lineage.nodes[child].depth + 1;
        for base in card_base_models(card.as_ref()) {
            if let Some(known) = lineage.nodes.iter().position(|n| n.name == base) {
                lineage.edges.push(Edge { child, base: known });
                continue;
            }
            if depth > MAX_DEPTH || lineage.nodes.len() >= MAX_NODES {
                lineage.truncated = true;
                continue;
            }
            let held = repos
                .iter()
                .find(|r| r.kind == RepoKind::Model && r.name == base && !r.private)
                .and_then(|r| r.revisions.first().map(|v| v.sha));
            let mut node = Node {
                name: base.clone(),
                depth,
                held: held.is_some(),
                licence: "unknown".to_owned(),
                verdict: "unknown".to_owned(),
            };
            let mut base_card = None;
            if let Some(sha) = &held {
                let view = super::repos::verdict(mirror, RepoKind::Model, &base, sha).await;
                node.licence = view.id;
                node.verdict = view.verdict;
                base_card = registry
                    .commit_detail(RepoKind::Model, &base, sha)
                    .await?
                    .and_then(|d| d.card_json);
            }
            lineage.nodes.push(node);
            let index = lineage.nodes.len() - 1;
            lineage.edges.push(Edge { child, base: index });
            if base_card.is_some() {
                queue.push_back((index, base_card));
            }
        }
    }
    Ok(lineage)
}

const BOX_W: usize = 220;
const BOX_H: usize = 54;
const GAP_X: usize = 24;
const GAP_Y: usize = 46;

/// Shorten text to `max` characters, with an ellipsis.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// The graph as inline SVG: the oldest ancestors on top, the repo at the bottom, an arrow from
/// each base to what was made from it. Empty when the repo names no base model.
pub fn svg(lineage: &Lineage) -> String {
    if lineage.nodes.len() < 2 {
        return String::new();
    }
    let levels = lineage.nodes.iter().map(|n| n.depth).max().unwrap_or(0) + 1;
    let mut per_level = vec![0usize; levels];
    let mut place = Vec::with_capacity(lineage.nodes.len());
    for node in &lineage.nodes {
        place.push(per_level[node.depth]);
        per_level[node.depth] += 1;
    }
    let widest = per_level.iter().copied().max().unwrap_or(1);
    let width = widest * (BOX_W + GAP_X) + GAP_X;
    let height = levels * (BOX_H + GAP_Y);
    let position = |i: usize| {
        let node = &lineage.nodes[i];
        let row_width = per_level[node.depth] * (BOX_W + GAP_X) - GAP_X;
        let left = (width - row_width) / 2;
        let x = left + place[i] * (BOX_W + GAP_X);
        let y = GAP_Y / 2 + (levels - 1 - node.depth) * (BOX_H + GAP_Y);
        (x, y)
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"lineage\" id=\"lineage-graph\" role=\"img\" viewBox=\"0 0 {width} {height}\" \
         width=\"{width}\" height=\"{height}\">\
         <title>base_model lineage</title>\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" \
         class=\"arrow-head\"/></marker></defs>"
    );
    for edge in &lineage.edges {
        let (bx, by) = position(edge.base);
        let (cx, cy) = position(edge.child);
        let _ = write!(
            out,
            "<line class=\"edge\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" marker-end=\"url(#arrow)\"/>",
            bx + BOX_W / 2,
            by + BOX_H,
            cx + BOX_W / 2,
            cy
        );
    }
    for (i, node) in lineage.nodes.iter().enumerate() {
        let (x, y) = position(i);
        let verdict = match node.verdict.as_str() {
            v @ ("allow" | "review" | "deny") => v,
            _ => "unknown",
        };
        let _ = write!(
            out,
            "<g class=\"node verdict-{verdict}{held}\" data-name=\"{name}\" data-licence=\"{licence}\" \
             data-depth=\"{depth}\"><title>{name}: {licence} ({label})</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"6\"/>\
             <text x=\"{tx}\" y=\"{ty1}\" class=\"node-name\">{short}</text>\
             <text x=\"{tx}\" y=\"{ty2}\" class=\"node-licence\">{licence_short} · {label}</text></g>",
            held = if node.held { "" } else { " not-held" },
            name = escape(&node.name),
            licence = escape(&node.licence),
            depth = node.depth,
            label = if node.held {
                super::html::verdict_label(verdict)
            } else {
                "not held"
            },
            tx = x + 10,
            ty1 = y + 22,
            ty2 = y + 42,
            short = escape(&clip(&node.name, 28)),
            licence_short = escape(&clip(&node.licence, 18)),
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, depth: usize) -> Node {
        Node {
            name: name.to_owned(),
            depth,
            held: true,
            licence: "<b>mit</b>".to_owned(),
            verdict: "allow".to_owned(),
        }
    }

    #[test]
    fn draws_a_chain_with_escaped_names() {
        let lineage = Lineage {
            nodes: vec![
                node("acme/tune", 0),
                node("acme/<merge>", 1),
                node("meta/llama", 2),
            ],
            edges: vec![Edge { child: 0, base: 1 }, Edge { child: 1, base: 2 }],
            truncated: false,
        };
        let svg = svg(&lineage);
        assert_eq!(svg.matches("<g class=\"node").count(), 3);
        assert_eq!(svg.matches("<line class=\"edge\"").count(), 2);
        assert!(svg.contains("acme/&lt;merge&gt;"));
        assert!(!svg.contains("<merge>") && !svg.contains("<b>"));
        // The oldest ancestor is drawn above the repo.
        let y_of = |name: &str| {
            let at = svg.find(&format!("data-name=\"{name}\"")).unwrap();
            let rect = &svg[at..];
            let y = rect.find(" y=\"").unwrap() + 4;
            rect[y..y + rect[y..].find('"').unwrap()]
                .parse::<usize>()
                .unwrap()
        };
        assert!(y_of("meta/llama") < y_of("acme/tune"));
    }

    #[test]
    fn no_graph_without_a_base() {
        let lineage = Lineage {
            nodes: vec![node("acme/solo", 0)],
            ..Lineage::default()
        };
        assert_eq!(svg(&lineage), "");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
