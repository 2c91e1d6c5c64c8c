//! The module graph of every crate of the workspace has no import circles: no module names a
//! module (by `crate::…` or `super::…` path) that names it back, directly or through others.
//! A module and its own descendants are one unit here (a parent declares its children).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`fetch::transfer`) -> source file, for the crate rooted at `src`.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut segments: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                segments.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                segments.pop();
            }
            found.insert(segments.join("::"), path);
        }
    }
    found
}

/// The longest module prefix of a path.
fn owner<'a>(path: &str, modules: &'a BTreeMap<String, PathBuf>) -> Option<&'a String> {
    let segments: Vec<&str> = path.split("::").collect();
    (1..=segments.len()).rev().find_map(|n| {
        modules
            .get_key_value(&segments[..n].join("::"))
            .map(|(k, _)| k)
    })
}

fn is_within(module: &str, ancestor: &str) -> bool {
    ancestor.is_empty() || module == ancestor || module.starts_with(&format!("{ancestor}::"))
}

/// Paths after `crate::` / `super::` in code (comments stripped), with `{a, b::c}` groups expanded
/// one level.
fn referenced_paths(source: &str, module: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let parent = {
        let mut segments: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        // `super` in `a/b.rs` and in `a/b/mod.rs` both name `a`.
        segments.pop();
        segments.join("::")
    };
    let mut paths = Vec::new();
    for (prefix, base) in [("crate::", String::new()), ("super::", parent)] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let path = path.trim_end_matches(':').to_owned();
            let joined = |p: &str| {
                if base.is_empty() {
                    p.to_owned()
                } else {
                    format!("{base}::{p}")
                }
            };
            let after = &rest[path.len()..];
            // `crate::{a, b::c}` and `crate::x::{a, b}`.
            let group = if path.is_empty() {
                after.strip_prefix('{')
            } else {
                paths.push(joined(&path));
                after.strip_prefix("::{")
            };
            if let Some(group) = group
                && let Some(end) = group.find('}')
            {
                for item in group[..end].split(',') {
                    let item = item.trim().split(" as ").next().unwrap_or("").trim();
                    if !item.is_empty() && item != "self" && !item.starts_with('{') {
                        let item = item.split("::{").next().unwrap_or(item);
                        paths.push(joined(&if path.is_empty() {
                            item.to_owned()
                        } else {
                            format!("{path}::{item}")
                        }));
                    }
                }
            }
        }
    }
    paths
}

/// The edges `module -> module it imports`, ignoring a module's own ancestors and descendants.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &modules {
        let source = std::fs::read_to_string(file).unwrap();
        let edges = graph.entry(module.clone()).or_default();
        for path in referenced_paths(&source, module) {
            if let Some(target) = owner(&path, &modules)
                && !is_within(module, target)
                && !is_within(target, module)
            {
                edges.insert(target.clone());
            }
        }
    }
    graph
}

/// Modules that reach themselves again (the members of every strongly connected component).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = graph[from].iter().collect();
        while let Some(next) = stack.pop() {
            if seen.insert(next.clone()) {
                stack.extend(graph.get(next).into_iter().flatten());
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for (module, reached) in &reaches {
        if done.contains(*module) || !reached.contains(*module) {
            continue;
        }
        let circle: Vec<String> = reached
            .iter()
            .filter(|other| reaches[other].contains(*module))
            .cloned()
            .collect();
        done.extend(circle.iter().cloned());
        found.push(circle);
    }
    found
}

#[test]
fn no_crate_of_the_workspace_has_an_import_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for crate_src in ["src", "registry/src", "licence/src", "convert/src"] {
        let graph = import_graph(&root.join(crate_src));
        assert!(
            graph.len() > 3,
            "{crate_src}: found too few modules to check"
        );
        for circle in circles(&graph) {
            problems.push(format!("{crate_src}: {}", circle.join(" -> ")));
        }
    }
    assert!(
        problems.is_empty(),
        "import circles:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_circle_check_finds_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lib.rs"), "mod a;\nmod b;\nmod c;\n").unwrap();
    std::fs::write(dir.path().join("a.rs"), "use crate::b::Thing;\n").unwrap();
    std::fs::write(dir.path().join("b.rs"), "use crate::{c::Other, a};\n").unwrap();
    std::fs::write(dir.path().join("c.rs"), "// use crate::a;\n").unwrap();
    let graph = import_graph(dir.path());
    assert_eq!(circles(&graph), vec![vec!["a".to_owned(), "b".to_owned()]]);
}
