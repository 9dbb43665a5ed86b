//! `qserve-host policy inspect|check`: what a component imports and exports,
//! which contract it was built for, and whether it loads under the given
//! limits — in sentences, not parser errors.

use std::fmt::Write as _;

use wasmtime::component::types::ComponentItem;

use crate::contract::{DECIDE_FUNCTIONS, DECIDE_INTERFACE, POLICY_CONTRACT};
use crate::engine::GuestEngine;
use crate::error::LoadError;
use crate::policy::{Policy, PolicyOptions};

/// Imports the host provides for real; WASI is provided locked down.
const PROVIDED_IMPORTS: [&str; 2] = ["qserve:policy/host@0.2.0", "qserve:policy/types@0.2.0"];

/// One import or export and the functions it carries (for instances).
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub functions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Inspection {
    /// `builtin:NAME` or the path.
    pub origin: String,
    /// Lowercase hex SHA-256 of the component's bytes.
    pub sha256: String,
    pub imports: Vec<Item>,
    pub exports: Vec<Item>,
    /// Empty when the component loads as a policy under the given options.
    pub problems: Vec<String>,
    /// Imports that load but fail when called (the decision fails closed).
    pub warnings: Vec<String>,
    /// Things worth knowing that do not stop it from loading.
    pub notes: Vec<String>,
    /// `name version` from its `init`, when it loaded.
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
        let _ = writeln!(out, "sha256: {}", self.sha256);
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
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
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

/// Inspect a policy component (`builtin:NAME` or a path), loading it as the
/// daemon would under `options` (deadline, memory cap) with `config` handed
/// to `init` (`None`: `options.config_document`). `Err` only when it is not
/// a component at all (unreadable, not Wasm, a core module, does not
/// compile, unknown builtin); every other problem is in
/// [`Inspection::problems`].
pub async fn inspect_policy(
    engine: &GuestEngine,
    spec: &str,
    options: &PolicyOptions,
    config: Option<&str>,
) -> Result<Inspection, LoadError> {
    let mut options = options.clone();
    if let Some(config) = config {
        options.config_document = config.into();
    }
    let loaded = engine.load_component(spec)?;
    let ty = loaded.component.component_type();
    let wasm_engine = engine.engine();
    let item = |name: &str, kind: ComponentItem| Item {
        name: name.to_owned(),
        functions: match kind {
            ComponentItem::ComponentInstance(instance) => instance
                .exports(wasm_engine)
                .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
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
    match crate::contract::check_exports(&loaded.origin, exports.iter().map(|e| e.name.as_str())) {
        Err(refused) => problems.push(refused.to_string()),
        Ok(()) => match exports.iter().find(|e| e.name == DECIDE_INTERFACE) {
            None => problems.push(format!(
                "it does not export `{DECIDE_INTERFACE}` (a {POLICY_CONTRACT} policy exports it)"
            )),
            Some(decide) => {
                for func in DECIDE_FUNCTIONS {
                    if !decide.functions.iter().any(|f| f == func) {
                        problems.push(format!("`{DECIDE_INTERFACE}` lacks the function `{func}`"));
                    }
                }
            }
        },
    }
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    for import in &imports {
        let name = import.name.as_str();
        if PROVIDED_IMPORTS.contains(&name) {
            continue;
        }
        if name.starts_with("wasi:") {
            notes.push(format!(
                "imports `{name}`: given a locked-down WASI (no files, env, args, network; \
                 empty stdin; output to the log)"
            ));
        } else {
            warnings.push(format!(
                "imports `{name}`, which qserve does not provide: calls to it trap (and the \
                 decision fails closed)"
            ));
        }
    }

    // The authoritative check: load it exactly as the daemon would.
    let mut policy = None;
    if problems.is_empty() {
        let deadline = options.call_deadline;
        let memory_cap = options.memory_cap;
        match Policy::load(engine, &loaded, options).await {
            Ok(loaded_policy) => {
                let identity = loaded_policy.identity();
                policy = Some(format!("{} {}", identity.name, identity.version));
                notes.push(format!(
                    "instantiated and accepted its configuration in init() under a {} MiB \
                     memory cap; each decision must finish within {} ms",
                    memory_cap >> 20,
                    deadline.as_millis()
                ));
            }
            Err(err) => problems.push(err.to_string()),
        }
    }
    Ok(Inspection {
        origin: loaded.origin,
        sha256: loaded.sha256,
        imports,
        exports,
        problems,
        warnings,
        notes,
        policy,
    })
}
