//! `qserve-host policy inspect|check`: what a component imports and exports,
//! and whether it fits the `policy` world — in sentences, not parser errors.

use std::fmt::Write as _;
use std::path::Path;

use wasmtime::component::types::ComponentItem;

use crate::engine::GuestEngine;
use crate::error::LoadError;
use crate::policy_guest::{PolicyGuest, PolicyOptions};

/// The interface a policy must export, and its functions.
pub const DECIDE_INTERFACE: &str = "qserve:bridge/decide@0.1.0";
const DECIDE_FUNCTIONS: [&str; 4] = [
    "info",
    "on-permission-request",
    "on-session-create",
    "on-file-access",
];
/// Imports the host provides for real; WASI is provided locked down.
const PROVIDED_IMPORTS: [&str; 2] = [
    "qserve:bridge/host@0.1.0",
    "qserve:bridge/policy-config@0.1.0",
];

/// One import or export and the functions it carries (for instances).
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub functions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Inspection {
    pub origin: String,
    pub imports: Vec<Item>,
    pub exports: Vec<Item>,
    /// Empty when the component fits the `policy` world.
    pub problems: Vec<String>,
    /// Things worth knowing that do not stop it from loading.
    pub notes: Vec<String>,
    /// `name version` from its `info()`, when it loaded.
    pub policy: Option<String>,
}

impl Inspection {
    pub fn fits(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report printed by `policy inspect`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "component: {}", self.origin);
        for (title, items) in [("imports", &self.imports), ("exports", &self.exports)] {
            let _ = writeln!(out, "{title}:");
            if items.is_empty() {
                let _ = writeln!(out, "  (none)");
            }
            for item in items {
                if item.functions.is_empty() {
                    let _ = writeln!(out, "  {}", item.name);
                } else {
                    let _ = writeln!(out, "  {}: {}", item.name, item.functions.join(", "));
                }
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        if self.fits() {
            let policy = self.policy.as_deref().unwrap_or("?");
            let _ = writeln!(out, "fits the `policy` world: yes ({policy})");
        } else {
            let _ = writeln!(out, "fits the `policy` world: no");
            for problem in &self.problems {
                let _ = writeln!(out, "  - {problem}");
            }
        }
        out
    }
}

/// Inspect a policy component file. `Err` only when the file is not a
/// component at all (unreadable, not Wasm, a core module, does not compile).
pub fn inspect_policy(engine: &GuestEngine, path: &Path) -> Result<Inspection, LoadError> {
    let loaded = engine.load_file(path)?;
    let ty = loaded.component.component_type();
    let wasm_engine = engine.engine();
    let item = |name: &str, kind: ComponentItem| Item {
        name: name.to_owned(),
        functions: match kind {
            ComponentItem::ComponentInstance(instance) => instance
                .exports(wasm_engine)
                .map(|(name, _)| name.to_owned())
                .collect(),
            _ => Vec::new(),
        },
    };
    let imports: Vec<Item> = ty
        .imports(wasm_engine)
        .map(|(n, k)| item(n, k.ty))
        .collect();
    let exports: Vec<Item> = ty
        .exports(wasm_engine)
        .map(|(n, k)| item(n, k.ty))
        .collect();

    let mut problems = Vec::new();
    match exports.iter().find(|e| e.name == DECIDE_INTERFACE) {
        None => {
            let similar: Vec<&str> = exports
                .iter()
                .filter(|e| e.name.contains("decide"))
                .map(|e| e.name.as_str())
                .collect();
            let mut problem = format!("it does not export `{DECIDE_INTERFACE}`");
            if !similar.is_empty() {
                let _ = write!(
                    problem,
                    " (it exports {}: another version?)",
                    similar.join(", ")
                );
            }
            problems.push(problem);
        }
        Some(decide) => {
            for func in DECIDE_FUNCTIONS {
                if !decide.functions.iter().any(|f| f == func) {
                    problems.push(format!("`{DECIDE_INTERFACE}` lacks the function `{func}`"));
                }
            }
        }
    }
    let mut notes = Vec::new();
    for import in &imports {
        let name = import.name.as_str();
        if PROVIDED_IMPORTS.contains(&name) {
            continue;
        }
        if name.starts_with("wasi:") {
            notes.push(format!(
                "imports `{name}`: given a locked-down WASI (no files, env, network; output to the log)"
            ));
        } else {
            notes.push(format!(
                "imports `{name}`, which qserve does not provide: calls to it trap (and fail closed)"
            ));
        }
    }

    // The authoritative check: link and type-check it exactly as the daemon would.
    let mut policy = None;
    if problems.is_empty() {
        match PolicyGuest::new(engine, &loaded, PolicyOptions::default()) {
            Ok(guest) => policy = Some(format!("{} {}", guest.info().name, guest.info().version)),
            Err(err) => problems.push(err.to_string()),
        }
    }
    Ok(Inspection {
        origin: loaded.origin,
        imports,
        exports,
        problems,
        notes,
        policy,
    })
}
