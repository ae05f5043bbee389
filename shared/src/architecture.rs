//! The dependency rules between the crate's top-level modules, checked against the source.
//!
//! Layers, bottom up; a module may import only the modules its rule lists (and never one above
//! it), so there can be no import cycle. ARCHITECTURE.md explains each layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// (module, the crate modules it may import).
const RULES: &[(&str, &[&str])] = &[
    // The leaf: the nudge, the delivery log, policy, send windows, account vocabulary.
    ("domain", &[]),
    ("telemetry", &[]),
    ("schedule", &[]),
    // Pure contracts over the domain.
    ("events", &["domain"]),
    ("config", &["domain"]),
    ("templates", &["domain"]),
    // Ports and their SDK adapters.
    ("store", &["domain", "events"]),
    ("channels", &["domain"]),
    ("deps", &["config", "store", "channels"]),
    // The one send path and sweep.
    (
        "delivery",
        &[
            "domain",
            "events",
            "config",
            "templates",
            "store",
            "channels",
            "deps",
        ],
    ),
    // Features plan nudges; they never import delivery.
    (
        "reminders",
        &["domain", "events", "config", "store", "deps"],
    ),
    // A feature may hand work to its own queue (`channels::Queue`), never send.
    (
        "health",
        &["domain", "events", "config", "store", "channels", "deps"],
    ),
    // A feature over another's data: the onboarding steps and key features are the health
    // model's.
    (
        "milestones",
        &["domain", "events", "config", "store", "deps", "health"],
    ),
    // Above the features.
    (
        "registry",
        &[
            "domain",
            "events",
            "config",
            "store",
            "channels",
            "deps",
            "delivery",
            "reminders",
            "health",
            "milestones",
            "schedule",
        ],
    ),
    (
        "ingest",
        &[
            "domain", "events", "config", "store", "channels", "deps", "delivery", "registry",
        ],
    ),
    // Test-only use cases: run features and delivery together, as the functions do.
    (
        "usecases",
        &[
            "domain",
            "events",
            "config",
            "store",
            "channels",
            "deps",
            "delivery",
            "registry",
            "health",
            "milestones",
            "ingest",
        ],
    ),
];

/// The crate modules a source text refers to (`crate::x`, and `crate::Deps` = `deps`).
fn imports(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in src.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let tail = &rest[i + "crate::".len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let module = match name.as_str() {
                "Deps" => "deps".to_string(),
                _ => name.clone(),
            };
            if !module.is_empty() {
                out.insert(module);
            }
            rest = &tail[name.len()..];
        }
        // `use crate::{a, b}` groups.
        if let Some(i) = code.find("crate::{") {
            let group = &code[i + "crate::{".len()..];
            for part in group.split([',', '}']) {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(if name == "Deps" { "deps".into() } else { name });
                }
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Which top-level module a file under `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

#[test]
fn rules_are_layered_so_no_cycle_is_possible() {
    let order: BTreeMap<&str, usize> = RULES
        .iter()
        .enumerate()
        .map(|(i, (m, _))| (*m, i))
        .collect();
    for (i, (module, allowed)) in RULES.iter().enumerate() {
        for dep in *allowed {
            let j = order.get(dep).copied();
            assert!(
                j.is_some_and(|j| j < i),
                "rule for `{module}` allows `{dep}`, which is not below it"
            );
        }
    }
}

#[test]
fn modules_import_only_what_their_layer_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rules: BTreeMap<&str, &[&str]> = RULES.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut seen = BTreeSet::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        if module == "lib" || module == "architecture" {
            continue;
        }
        seen.insert(module.clone());
        let Some(allowed) = rules.get(module.as_str()) else {
            violations.push(format!("{}: module `{module}` has no rule", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for dep in imports(&text) {
            if dep != module && !allowed.contains(&dep.as_str()) {
                violations.push(format!(
                    "{}: `{module}` imports `crate::{dep}`, which its layer does not allow",
                    file.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    for (module, _) in RULES {
        assert!(
            seen.contains(*module),
            "rule for a module that does not exist: {module}"
        );
    }
}

#[test]
fn the_checker_sees_every_import_form() {
    let found = imports(
        "use crate::store::X;\nuse crate::{Deps, domain::Nudge};\nlet x = crate::registry::find(\"a\"); // crate::ignored",
    );
    let want: BTreeSet<String> = ["store", "deps", "domain", "registry"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(found, want);
}
