//! The native crate's modules depend one way: read from its sources, the modules that each one
//! uses (through `crate::` or `super::` paths, in `use` lines or inline; not in comments) form no
//! circle. A module that uses its parent's items, or a leaf that uses what uses it, fails here,
//! naming the circle; `cargo test -p hello-edge-native --test modules -- --nocapture` prints
//! what each module uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module of the library, by its path (`server::listener`; the root is `crate`), and the
/// modules it uses.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = BTreeMap::new();
    read(&src, &src, &mut sources);
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(module, text)| {
            // A module's own tests (`#[cfg(test)] mod tests { use super::*; }`) are left out,
            // and so are comments: a doc's link to a module is not a use of it.
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap()
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let mut used: BTreeSet<String> = paths(&code, module)
                .into_iter()
                .map(|path| deepest(&modules, &path))
                .filter(|used| used != module)
                .collect();
            // A module names its own children without `crate::` or `super::`: `listener::accept`.
            for child in modules.iter().filter(|child| parent_of(child) == *module) {
                let name = child.rsplit("::").next().unwrap();
                if names(&code, name) {
                    used.insert(child.clone());
                }
            }
            (module.clone(), used)
        })
        .collect()
}

/// The library's sources under `dir`, by module path; `main.rs`, the binary, is not one.
fn read(src: &Path, dir: &Path, sources: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read(src, &path, sources);
            continue;
        }
        let relative = path.strip_prefix(src).unwrap().with_extension("");
        let parts: Vec<String> = relative
            .iter()
            .map(|part| part.to_string_lossy().into_owned())
            .filter(|part| part != "mod" && part != "lib")
            .collect();
        if parts == ["main"] {
            continue;
        }
        let module = if parts.is_empty() {
            "crate".to_owned()
        } else {
            parts.join("::")
        };
        sources.insert(module, std::fs::read_to_string(&path).unwrap());
    }
}

/// The module `module` is declared in: `server` for `server::listener`, `crate` for `server`.
fn parent_of(module: &str) -> String {
    match module.rsplit_once("::") {
        Some((parent, _)) => parent.to_owned(),
        None if module == "crate" => String::new(),
        None => "crate".to_owned(),
    }
}

/// Whether `code` starts a path with `name`, as a module names its child: `name::` after
/// something that is not part of a path.
fn names(code: &str, name: &str) -> bool {
    code.match_indices(&format!("{name}::")).any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

/// Every `crate::a::b` and `super::a` path in `code`, written in `module`, as an absolute path
/// (`crate` for the root), braces opened: `use super::{a, b}` is `parent::a` and `parent::b`.
fn paths(code: &str, module: &str) -> Vec<String> {
    let parent = parent_of(module);
    let mut found = Vec::new();
    for (prefix, base) in [("crate::", "crate".to_owned()), ("super::", parent)] {
        for (at, _) in code.match_indices(prefix) {
            let preceded = code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            if preceded {
                continue;
            }
            let rest = &code[at + prefix.len()..];
            let names: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                group.split(',').map(|name| path_of(name.trim())).collect()
            } else {
                vec![path_of(rest)]
            };
            for name in names.into_iter().filter(|name| !name.is_empty()) {
                found.push(if base == "crate" {
                    name
                } else {
                    format!("{base}::{name}")
                });
            }
        }
    }
    found
}

/// The path at the start of `text`: `a::b` of `a::b::C;`.
fn path_of(text: &str) -> String {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    text[..end].trim_end_matches(':').to_owned()
}

/// The deepest module of `modules` that `path` names or is inside.
fn deepest(modules: &BTreeSet<String>, path: &str) -> String {
    let mut parts: Vec<&str> = path.split("::").collect();
    while !parts.is_empty() {
        let candidate = parts.join("::");
        if modules.contains(&candidate) {
            return candidate;
        }
        parts.pop();
    }
    "crate".to_owned()
}

/// A circle in `graph`, if there is one: the modules along it, the first one again at the end.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        module: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|on| on == module) {
            let mut circle = path[at..].to_vec();
            circle.push(module.to_owned());
            return Some(circle);
        }
        if !done.insert(module.to_owned()) {
            return None;
        }
        path.push(module.to_owned());
        for used in graph.get(module).into_iter().flatten() {
            if let Some(circle) = visit(graph, used, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(graph, module, &mut Vec::new(), &mut done))
}

/// No module uses, directly or through others, a module that uses it.
#[test]
fn the_modules_form_no_circle() {
    let graph = uses();
    for (module, used) in &graph {
        eprintln!("{module} uses {used:?}");
    }
    assert!(graph.contains_key("crate") && graph.contains_key("server::listener"));
    if let Some(circle) = circle(&graph) {
        panic!(
            "the native crate's modules form a circle: {}",
            circle.join(" -> ")
        );
    }
}

/// The reading sees a circle where there is one.
#[test]
fn a_circle_is_seen() {
    let code = "use super::shared::Shared;\nuse super::{config, drain::Steps};\nfn f() { crate::admin::serve(); }";
    let mut found = paths(code, "server::listener");
    found.sort();
    assert_eq!(
        found,
        [
            "admin::serve",
            "server::config",
            "server::drain::Steps",
            "server::shared::Shared"
        ]
    );
    assert!(names("listener::accept(&l);", "listener"));
    assert!(!names("crate::x::listener::accept(&l);", "listener"));
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("server", ["admin"].as_slice()),
        ("admin", ["accept"].as_slice()),
        ("accept", ["server"].as_slice()),
    ]
    .into_iter()
    .map(|(module, used)| (module.into(), used.iter().map(|u| u.to_string()).collect()))
    .collect();
    assert_eq!(
        circle(&graph).unwrap(),
        ["accept", "server", "admin", "accept"]
    );
}
