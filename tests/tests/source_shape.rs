//! The shape of the source, checked: no import cycle between files and no oversized file.
//!
//! Reads every `use` declaration (`crate::…`, `super::…`, `self::…` and a child module's
//! name) of `origin/src`, `shared/src` and `edge/src`, resolves each path to the file that
//! defines the module it names, and looks for a cycle in the resulting graph of files. A cycle
//! means two files cannot be read, tested or moved apart; the fix is a module of their own for
//! what both need. Uses inside inline modules (`mod tests { use super::*; }`) refer to the file
//! itself and are skipped, and so is a module re-exporting its own children (`pub use
//! config::RoutePolicy;` in `policy/mod.rs`): that is the module's public face, not a use of
//! the child's code, and the child may still use its parent's items.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// No source file grows past this many lines, its unit tests not counted.
const MAX_LINES: usize = 600;

/// The crates checked, by their `src` folder under the repository.
const CRATES: &[&str] = &["origin/src", "shared/src", "edge/src"];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("readable source folder") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The module path of a file: `src/core/cache/mod.rs` → `["core", "cache"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

/// The file defining module `path`, or the file of its longest prefix that is one.
fn file_of(modules: &BTreeMap<Vec<String>, PathBuf>, path: &[String]) -> Option<PathBuf> {
    (0..=path.len())
        .rev()
        .find_map(|len| modules.get(&path[..len]).cloned())
}

/// The top-level `use` declarations of `text`, each as one string without `use` and `;`, and
/// whether it is a re-export (`pub use`).
fn top_level_uses(text: &str) -> Vec<(bool, String)> {
    let mut uses = Vec::new();
    let mut current: Option<(bool, String)> = None;
    for line in text.lines() {
        if let Some((_, statement)) = current.as_mut() {
            statement.push_str(line.trim());
            if line.contains(';') {
                uses.push(current.take().expect("a statement"));
            }
            continue;
        }
        let public = line.starts_with("pub");
        // rustfmt writes a file's own items at column 0; indented uses are in inline modules.
        let declaration = line
            .strip_prefix("use ")
            .or_else(|| line.strip_prefix("pub use "))
            .or_else(|| line.strip_prefix("pub(crate) use "));
        if let Some(rest) = declaration {
            if rest.contains(';') {
                uses.push((public, rest.to_owned()));
            } else {
                current = Some((public, rest.to_owned()));
            }
        }
    }
    uses.iter()
        .map(|(public, statement)| {
            let statement = without_aliases(statement.trim_end_matches(';'));
            (*public, statement.replace(' ', ""))
        })
        .collect()
}

/// `a::{b as c, d}` → `a::{b, d}`: a use path without its renamings.
fn without_aliases(statement: &str) -> String {
    let mut text = statement.to_owned();
    while let Some(at) = text.find(" as ") {
        let end = text[at + 4..]
            .find([',', '}'])
            .map_or(text.len(), |offset| at + 4 + offset);
        text.replace_range(at..end, "");
    }
    text
}

/// The paths a use tree names: `a::{b,c::d}` → `a::b`, `a::c::d`.
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.to_owned()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').expect("a closing brace")];
    let mut branches = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                branches.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    branches.push(&inner[start..]);
    branches
        .into_iter()
        .filter(|branch| !branch.is_empty())
        .flat_map(expand)
        .map(|path| format!("{prefix}{path}"))
        .collect()
}

/// The module path a use path names, from inside module `here`; `None` for other crates.
fn resolve(here: &[String], children: &BTreeSet<String>, path: &str) -> Option<Vec<String>> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    segments.retain(|s| *s != "*");
    let (mut base, rest) = match segments.first().copied()? {
        "crate" => (Vec::new(), &segments[1..]),
        "self" => (here.to_vec(), &segments[1..]),
        "super" => {
            let mut base = here.to_vec();
            let mut rest = &segments[..];
            while rest.first() == Some(&"super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        first if children.contains(first) => (here.to_vec(), &segments[..]),
        _ => return None,
    };
    base.extend(rest.iter().map(|s| (*s).to_owned()));
    Some(base)
}

/// The file graph of one crate: each file and the files its uses name.
fn graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let files = sources(src);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|file| (module_of(src, file), file.clone()))
        .collect();
    let mut edges = BTreeMap::new();
    for file in &files {
        let here = module_of(src, file);
        let children: BTreeSet<String> = modules
            .keys()
            .filter(|m| m.len() == here.len() + 1 && m.starts_with(&here))
            .map(|m| m.last().expect("a child").clone())
            .collect();
        let text = fs::read_to_string(file).expect("readable source");
        let targets: BTreeSet<PathBuf> = top_level_uses(&text)
            .iter()
            .flat_map(|(public, tree)| expand(tree).into_iter().map(move |path| (*public, path)))
            .filter_map(|(public, path)| Some((public, resolve(&here, &children, &path)?)))
            .filter(|(public, module)| {
                !(*public && module.len() > here.len() && module.starts_with(&here))
            })
            .filter_map(|(_, module)| file_of(&modules, &module))
            .filter(|target| target != file)
            .collect();
        edges.insert(file.clone(), targets);
    }
    edges
}

/// One cycle of `graph`, if it has any.
fn find_cycle(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Option<Vec<PathBuf>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &PathBuf,
        graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        marks: &mut BTreeMap<PathBuf, Mark>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack.iter().position(|n| n == node).expect("on the stack");
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

#[test]
fn no_file_imports_itself_through_others() {
    let root = repository();
    let mut cycles = Vec::new();
    for krate in CRATES {
        let graph = graph(&root.join(krate));
        assert!(graph.len() > 5, "{krate}: too few files found to check");
        if let Some(cycle) = find_cycle(&graph) {
            let names: Vec<String> = cycle
                .iter()
                .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
                .collect();
            cycles.push(names.join(" → "));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let src = dir.path();
    fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").expect("write");
    fs::write(src.join("a.rs"), "use crate::b::{Thing, other::{X}};\n").expect("write");
    fs::write(src.join("b.rs"), "use super::a::Other;\n").expect("write");
    let cycle = find_cycle(&graph(src)).expect("a cycle");
    assert_eq!(cycle.len(), 3, "{cycle:?}");
    fs::write(
        src.join("b.rs"),
        "mod tests {\n    use super::a::Other;\n}\n",
    )
    .expect("write");
    assert_eq!(find_cycle(&graph(src)), None);
    fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub use b::Thing;\n").expect("write");
    fs::write(src.join("b.rs"), "use crate::a::Other;\n").expect("write");
    fs::write(src.join("a.rs"), "use crate::Thing;\n").expect("write");
    assert_eq!(find_cycle(&graph(src)), None, "a re-export is not followed");
}

#[test]
fn no_source_file_is_oversized() {
    let root = repository();
    let oversized: Vec<String> = CRATES
        .iter()
        .flat_map(|krate| sources(&root.join(krate)))
        .filter(|file| {
            !file.ends_with("tests.rs") && !file.components().any(|c| c.as_os_str() == "tests")
        })
        .filter_map(|file| {
            let text = fs::read_to_string(&file).expect("readable");
            // A file's unit tests (its `#[cfg(test)]` module, last by convention) are tests.
            let lines = text.lines().take_while(|l| *l != "#[cfg(test)]").count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(
        oversized.is_empty(),
        "files over {MAX_LINES} lines: {}",
        oversized.join(", ")
    );
}
