//! The code's arrows run one way: within every module of every crate, the files and
//! folders side by side never import each other in a circle. A module's own `mod.rs` (or
//! `lib.rs`, `main.rs`) is their parent and may be used by them; what is measured are the
//! `crate::`, `super::` and `self::` paths between siblings, as `use` trees and inline
//! paths. See docs/ARCHITECTURE.md for the direction each crate's modules run in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source roots checked, relative to the repository.
const CRATES: &[&str] = &[
    "src",
    "crds/src",
    "apiserver/src",
    "clients/src",
    "controllers/src",
    "listen/src",
    "sim/src",
];

type ModPath = Vec<String>;

/// The module path of a source file below `root` (`a/b.rs` and `a/b/mod.rs` → `[a, b]`).
fn module_of(root: &Path, file: &Path) -> ModPath {
    let relative = file.strip_prefix(root).unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments and string literals (they may mention paths).
fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let chars: Vec<char> = source.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('/', Some('/')) => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ('/', Some('*')) => {
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            ('"', _) => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A char literal ('"', '{'): skipped so it cannot open a string or a group.
            ('\'', _) if chars.get(i + 2) == Some(&'\'') => i += 3,
            ('\'', Some('\\')) if chars.get(i + 3) == Some(&'\'') => i += 4,
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Every path starting at `crate`, `super` or `self`, use-tree groups expanded.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            let boundary = at == 0
                || !(bytes[at - 1].is_ascii_alphanumeric()
                    || bytes[at - 1] == b'_'
                    || bytes[at - 1] == b':');
            if !boundary {
                continue;
            }
            let head = start.trim_end_matches("::").to_owned();
            let (trees, _) = use_tree(&code[from..]);
            for mut tail in trees {
                tail.insert(0, head.clone());
                found.push(tail);
            }
        }
    }
    found
}

/// Parses `a::b::{c, d::e}` at the start of `text`: the paths it names, and the length read.
fn use_tree(text: &str) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut i = 0;
    let bytes = text.as_bytes();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'{' {
            i += 1;
            let mut all = Vec::new();
            loop {
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    i += 1;
                    break;
                }
                let (trees, read) = use_tree(&text[i..]);
                i += read.max(1);
                for tree in trees {
                    let mut path = prefix.clone();
                    path.extend(tree);
                    all.push(path);
                }
                // Skip `as alias` and anything else up to the next separator.
                while i < bytes.len() && !matches!(bytes[i], b',' | b'}') {
                    i += 1;
                }
            }
            return (all, i);
        }
        let word_start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i == word_start {
            return (vec![prefix], i);
        }
        prefix.push(text[word_start..i].to_owned());
        if text[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// The deepest module `path` (written in `module`) points into.
fn resolve(path: &[String], module: &ModPath, modules: &BTreeSet<ModPath>) -> ModPath {
    let mut at: ModPath = match path[0].as_str() {
        "crate" => Vec::new(),
        _ => module.clone(),
    };
    let mut rest = &path[1..];
    if path[0] == "super" {
        at.pop();
        while rest.first().is_some_and(|s| s == "super") {
            at.pop();
            rest = &rest[1..];
        }
    }
    for segment in rest {
        let mut next = at.clone();
        next.push(segment.clone());
        if !modules.contains(&next) {
            break;
        }
        at = next;
    }
    at
}

/// Sibling edges per parent module: (parent, from child, to child).
fn sibling_edges(root: &Path) -> BTreeMap<ModPath, BTreeSet<(String, String)>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeSet<ModPath> = files.iter().map(|f| module_of(root, f)).collect();
    let mut edges: BTreeMap<ModPath, BTreeSet<(String, String)>> = BTreeMap::new();
    for file in &files {
        let module = module_of(root, file);
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        for path in paths_in(&code) {
            let target = resolve(&path, &module, &modules);
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common < module.len() && common < target.len() {
                edges
                    .entry(module[..common].to_vec())
                    .or_default()
                    .insert((module[common].clone(), target[common].clone()));
            }
        }
    }
    edges
}

/// The cycles among one module's children, each as the sorted members of a strongly
/// connected component.
fn cycles(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
    let reaches = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(n) = todo.pop() {
            for (a, b) in edges {
                if a == n && seen.insert(b) {
                    todo.push(b);
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<&String>> =
        nodes.iter().map(|n| (*n, reaches(n))).collect();
    let mut components: BTreeSet<Vec<String>> = BTreeSet::new();
    for n in &nodes {
        if !reach[n].contains(n) {
            continue;
        }
        let members: Vec<String> = nodes
            .iter()
            .filter(|m| reach[n].contains(*m) && reach[*m].contains(n))
            .map(|m| m.to_string())
            .collect();
        components.insert(members);
    }
    components.into_iter().collect()
}

#[test]
fn no_import_cycle_between_sibling_modules() {
    let repo = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut found = Vec::new();
    for krate in CRATES {
        for (parent, edges) in sibling_edges(&repo.join(krate)) {
            for cycle in cycles(&edges) {
                let place = if parent.is_empty() {
                    (*krate).to_owned()
                } else {
                    format!("{krate}/{}", parent.join("/"))
                };
                let arrows: Vec<String> = edges
                    .iter()
                    .filter(|(a, b)| cycle.contains(a) && cycle.contains(b))
                    .map(|(a, b)| format!("{a} → {b}"))
                    .collect();
                found.push(format!(
                    "{place}: {{{}}} ({})",
                    cycle.join(", "),
                    arrows.join(", ")
                ));
            }
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_use_trees_and_inline_paths() {
    let code = code_only(
        "use super::{a::{self, X}, b};\n// crate::c in a comment\nfn f() { crate::d::g(); let s = \"super::e\"; }",
    );
    let paths = paths_in(&code);
    let expected: Vec<Vec<String>> = [
        vec!["crate", "d", "g"],
        vec!["super", "a", "X"],
        vec!["super", "a", "self"],
        vec!["super", "b"],
    ]
    .iter()
    .map(|p| p.iter().map(|s| s.to_string()).collect())
    .collect();
    let mut paths = paths;
    paths.sort();
    assert_eq!(paths, expected);
    let edges: BTreeSet<(String, String)> = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(
        cycles(&edges),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
}
