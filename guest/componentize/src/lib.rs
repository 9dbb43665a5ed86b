//! Turns a guest's core Wasm module (built by wit-bindgen, carrying its WIT
//! world in a `component-type` custom section) into a component, and checks
//! what the component imports and exports.
//!
//! The check is the build's guarantee of the sandbox: a guest that imports
//! anything beyond the narrow host interface (WASI, say, pulled in by a
//! dependency) fails the build instead of failing at load time.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use wit_component::{ComponentEncoder, DecodedWasm};
use wit_parser::WorldKey;

/// Encodes `module` as a component and validates the result.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>> {
    ComponentEncoder::default()
        .module(module)
        .context("reading the module's component-type metadata")?
        .validate(true)
        .encode()
        .context("encoding the component")
}

/// The fully qualified names a component imports and exports, e.g.
/// `qserve:bridge/host@0.1.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Surface {
    pub imports: BTreeSet<String>,
    pub exports: BTreeSet<String>,
}

impl Surface {
    pub fn of(component: &[u8]) -> Result<Self> {
        let DecodedWasm::Component(resolve, world) =
            wit_component::decode(component).context("decoding the component's world")?
        else {
            bail!("not a component but a WIT package");
        };
        let world = &resolve.worlds[world];
        let name = |key: &WorldKey| match key {
            WorldKey::Interface(id) => resolve.id_of(*id).unwrap_or_else(|| format!("{key:?}")),
            WorldKey::Name(name) => name.clone(),
        };
        Ok(Self {
            imports: world.imports.keys().map(name).collect(),
            exports: world.exports.keys().map(name).collect(),
        })
    }

    /// Imports must be among `allowed_imports` (unused ones are dropped by
    /// the encoder, so a subset is fine); exports must be exactly `exports`.
    pub fn check(
        &self,
        allowed_imports: &BTreeSet<String>,
        exports: &BTreeSet<String>,
    ) -> Result<()> {
        let unexpected: Vec<&String> = self.imports.difference(allowed_imports).collect();
        if !unexpected.is_empty() {
            bail!(
                "imports not allowed for this guest: {unexpected:?} (allowed: {allowed_imports:?})"
            );
        }
        if &self.exports != exports {
            bail!("exports {:?}, expected {exports:?}", self.exports);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit_component::{dummy_module, embed_component_metadata, StringEncoding};
    use wit_parser::{ManglingAndAbi, Resolve};

    /// A module implementing `world` of the project's real WIT, as
    /// wit-bindgen would emit it (stub bodies, metadata embedded).
    fn module_for(world: &str) -> Vec<u8> {
        let mut resolve = Resolve::default();
        let wit = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit");
        let (package, _) = resolve.push_path(wit).unwrap();
        let world = resolve.select_world(&[package], Some(world)).unwrap();
        let mut module = dummy_module(&resolve, world, ManglingAndAbi::Standard32);
        embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8).unwrap();
        module
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter()
            .map(|name| format!("qserve:bridge/{name}@0.1.0"))
            .collect()
    }

    #[test]
    fn a_policy_module_becomes_a_component_with_the_policy_surface() {
        let component = componentize(&module_for("policy")).unwrap();
        let surface = Surface::of(&component).unwrap();
        assert_eq!(surface.imports, names(&["host", "policy-config"]));
        assert_eq!(surface.exports, names(&["decide"]));
        surface
            .check(&names(&["host", "policy-config"]), &names(&["decide"]))
            .unwrap();
    }

    #[test]
    fn an_import_outside_the_allowed_set_fails_the_check() {
        let surface = Surface::of(&componentize(&module_for("policy")).unwrap()).unwrap();
        let error = surface
            .check(&names(&["host"]), &names(&["decide"]))
            .unwrap_err();
        assert!(error.to_string().contains("policy-config"), "{error}");
    }

    #[test]
    fn the_core_surface_must_match_exactly() {
        let surface = Surface::of(&componentize(&module_for("core")).unwrap()).unwrap();
        let core_exports = names(&["lifecycle", "sessions", "events", "permissions"]);
        surface.check(&names(&["host"]), &core_exports).unwrap();
        assert!(surface
            .check(&names(&["host"]), &names(&["decide"]))
            .is_err());
    }

    #[test]
    fn a_module_without_the_guest_world_fails_the_check() {
        // An empty module: no component-type metadata, nothing exported.
        let empty_module = b"\0asm\x01\0\0\0";
        let surface = Surface::of(&componentize(empty_module).unwrap()).unwrap();
        let error = surface
            .check(&names(&["host"]), &names(&["decide"]))
            .unwrap_err();
        assert!(error.to_string().contains("expected"), "{error}");
    }

    #[test]
    fn bytes_that_are_not_wasm_are_refused() {
        assert!(componentize(b"not wasm").is_err());
    }
}
