//! The domain's modules stand on floors: this reads `domain/src` and fails on any import
//! circle among its top-level modules, and on a ground-floor module that imports a feature
//! module. A new module joins the check by existing.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Modules that import nothing from the crate but each other and the tables.
const GROUND_FLOOR: [&str; 2] = ["identity", "input"];
/// What the ground floor may import.
const BELOW_GROUND: [&str; 3] = ["identity", "input", "entity"];

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src` belongs to (`None` for `lib.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_owned();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(name) => Some(name.to_owned()),
        None => Some(first),
    }
}

/// The code without comments (line comments and doc comments), so that prose naming a
/// module is not taken for an import.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate's top-level modules that `code` names: `crate::x…` paths, and the items of
/// `use crate::{x, y::…}` groups.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Names at the group's own depth, each before `::`, `,` or `}`.
            let mut depth = 0;
            let mut name = String::new();
            let mut expecting_name = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !name.is_empty() {
                            found.insert(std::mem::take(&mut name));
                        }
                        expecting_name = true;
                    }
                    c if depth == 0 && expecting_name && (c.is_alphanumeric() || c == '_') => {
                        name.push(c)
                    }
                    _ if depth == 0 && expecting_name && !name.is_empty() => {
                        found.insert(std::mem::take(&mut name));
                        expecting_name = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                found.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let code = without_comments(&std::fs::read_to_string(&file).unwrap());
        let used = graph.entry(module.clone()).or_default();
        for name in imports(&code) {
            if name != module && name != "self" && name != "super" {
                used.insert(name);
            }
        }
    }
    graph
}

/// A circle in `graph`, as the path that closes it, if there is one.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_reader_finds_paths_and_group_items_but_not_prose() {
    let code = without_comments(
        "use crate::{\n    accounts,\n    audit::{self, Event},\n    authz::Authz,\n    identity::Member,\n};\n\
         // crate::members is only mentioned here\n\
         let x = crate::lockout::clear(db);\n",
    );
    let found: Vec<String> = imports(&code).into_iter().collect();
    assert_eq!(found, ["accounts", "audit", "authz", "identity", "lockout"]);
    let mut circular = BTreeMap::new();
    circular.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    circular.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(find_circle(&circular).unwrap(), ["a", "b", "a"]);
}

#[test]
fn no_import_circle_among_the_domain_modules() {
    let graph = graph();
    assert!(graph.len() > 10, "read too few modules: {graph:?}");
    if let Some(circle) = find_circle(&graph) {
        panic!(
            "domain modules import each other in a circle: {}",
            circle.join(" → ")
        );
    }
}

#[test]
fn the_ground_floor_imports_nothing_above_it() {
    let graph = graph();
    for module in GROUND_FLOOR {
        let above: Vec<&String> = graph[module]
            .iter()
            .filter(|name| !BELOW_GROUND.contains(&name.as_str()))
            .collect();
        assert!(above.is_empty(), "{module} imports {above:?}");
    }
}
