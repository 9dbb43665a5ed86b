//! Turns a guest's core Wasm module (built by wit-bindgen, carrying its WIT
//! world in a `component-type` custom section) into a component, and checks
//! what the component imports and exports.
//!
//! The check is the build's guarantee of the sandbox: a guest that imports
//! anything beyond the narrow host interface (WASI, say, pulled in by a
//! dependency) fails the build instead of failing at load time.
//!
//! Hand-written modules (WAT text, no wit-bindgen) carry no world; for them
//! [`embed_world`] adds one from a WIT directory before [`componentize`].

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use wit_component::{ComponentEncoder, DecodedWasm, StringEncoding};
use wit_parser::{Resolve, WorldKey};

/// Reads a core module from Wasm binary or WAT text.
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let module = wat::parse_bytes(&bytes)
        .with_context(|| format!("parsing {} as WAT", path.display()))?
        .into_owned();
    Ok(module)
}

/// Embeds world `world` of the WIT package in `wit_dir` into `module` (as
/// wit-bindgen would), so [`componentize`] can encode a hand-written module.
pub fn embed_world(module: &mut Vec<u8>, wit_dir: &Path, world: &str) -> Result<()> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(wit_dir)
        .with_context(|| format!("reading the WIT in {}", wit_dir.display()))?;
    let world = resolve
        .select_world(&[package], Some(world))
        .with_context(|| format!("selecting world {world} in {}", wit_dir.display()))?;
    wit_component::embed_component_metadata(module, &resolve, world, StringEncoding::UTF8)
        .context("embedding the world into the module")
}

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
/// `qserve:policy/host@0.2.0`.
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
    use wit_component::{dummy_module, embed_component_metadata};
    use wit_parser::ManglingAndAbi;

    fn repo_path(relative: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(relative)
    }

    /// A module implementing `world` of the WIT package in `wit_dir` (relative
    /// to the repository), as wit-bindgen would emit it (stub bodies,
    /// metadata embedded).
    fn module_for(wit_dir: &str, world: &str) -> Vec<u8> {
        let mut resolve = Resolve::default();
        let (package, _) = resolve.push_path(repo_path(wit_dir)).unwrap();
        let world = resolve.select_world(&[package], Some(world)).unwrap();
        let mut module = dummy_module(&resolve, world, ManglingAndAbi::Standard32);
        embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8).unwrap();
        module
    }

    fn names(package: &str, list: &[&str]) -> BTreeSet<String> {
        list.iter()
            .map(|name| {
                let (package, version) = package.split_once('@').unwrap();
                format!("{package}/{name}@{version}")
            })
            .collect()
    }

    fn policy(list: &[&str]) -> BTreeSet<String> {
        names("qserve:policy@0.2.0", list)
    }

    fn core(list: &[&str]) -> BTreeSet<String> {
        names("qserve:core@0.1.0", list)
    }

    #[test]
    fn a_policy_module_becomes_a_component_with_the_policy_surface() {
        let component = componentize(&module_for("wit/policy", "policy")).unwrap();
        let surface = Surface::of(&component).unwrap();
        // `types` holds only types (the ones `decide` uses): imported all the same.
        assert_eq!(surface.imports, policy(&["host", "types"]));
        assert_eq!(surface.exports, policy(&["decide"]));
        surface
            .check(&policy(&["host", "types"]), &policy(&["decide"]))
            .unwrap();
    }

    #[test]
    fn an_import_outside_the_allowed_set_fails_the_check() {
        let surface =
            Surface::of(&componentize(&module_for("wit/policy", "policy")).unwrap()).unwrap();
        let error = surface
            .check(&policy(&["types"]), &policy(&["decide"]))
            .unwrap_err();
        assert!(
            error.to_string().contains("qserve:policy/host@0.2.0"),
            "{error}"
        );
    }

    #[test]
    fn the_core_surface_must_match_exactly() {
        let surface = Surface::of(&componentize(&module_for("wit/core", "core")).unwrap()).unwrap();
        let core_exports = core(&["lifecycle", "sessions", "events", "permissions"]);
        surface.check(&core(&["host"]), &core_exports).unwrap();
        assert!(surface
            .check(&core(&["host"]), &policy(&["decide"]))
            .is_err());
        // The two packages share nothing: the core's host is not the policy's.
        assert!(surface.check(&policy(&["host"]), &core_exports).is_err());
    }

    #[test]
    fn a_legacy_policy_has_the_old_surface_and_fails_the_new_check() {
        let module = module_for("guest/legacy-wit", "policy");
        let surface = Surface::of(&componentize(&module).unwrap()).unwrap();
        let legacy = |list: &[&str]| names("qserve:bridge@0.1.0", list);
        assert_eq!(surface.exports, legacy(&["decide"]));
        surface
            .check(&legacy(&["host", "policy-config"]), &legacy(&["decide"]))
            .unwrap();
        assert!(surface
            .check(&policy(&["host"]), &policy(&["decide"]))
            .is_err());
    }

    #[test]
    fn a_module_without_the_guest_world_fails_the_check() {
        // An empty module: no component-type metadata, nothing exported.
        let empty_module = b"\0asm\x01\0\0\0";
        let surface = Surface::of(&componentize(empty_module).unwrap()).unwrap();
        let error = surface
            .check(&policy(&["host"]), &policy(&["decide"]))
            .unwrap_err();
        assert!(error.to_string().contains("expected"), "{error}");
    }

    #[test]
    fn a_hand_written_module_gets_its_world_embedded() {
        let mut module = dummy_module_without_metadata("wit/policy", "policy");
        embed_world(&mut module, &repo_path("wit/policy"), "policy").unwrap();
        let surface = Surface::of(&componentize(&module).unwrap()).unwrap();
        assert_eq!(surface.exports, policy(&["decide"]));
        let error = embed_world(&mut module, &repo_path("wit/policy"), "nope").unwrap_err();
        assert!(format!("{error:#}").contains("nope"), "{error:#}");
    }

    #[test]
    fn wat_text_and_wasm_binaries_are_both_read() {
        let dir = std::env::temp_dir().join(format!("qserve-componentize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("m.wat");
        std::fs::write(&text, "(module (func (export \"f\")))").unwrap();
        let binary = dir.join("m.wasm");
        std::fs::write(&binary, read_module(&text).unwrap()).unwrap();
        assert_eq!(read_module(&binary).unwrap(), read_module(&text).unwrap());
        std::fs::write(&text, "(module (func (export \"f\") i32.add))").unwrap();
        // Parses, but is invalid: the encoder's validation refuses it.
        assert!(componentize(&read_module(&text).unwrap()).is_err());
        std::fs::write(&text, "(module (func").unwrap();
        assert!(read_module(&text).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bytes_that_are_not_wasm_are_refused() {
        assert!(componentize(b"not wasm").is_err());
    }

    fn dummy_module_without_metadata(wit_dir: &str, world: &str) -> Vec<u8> {
        let mut resolve = Resolve::default();
        let (package, _) = resolve.push_path(repo_path(wit_dir)).unwrap();
        let world = resolve.select_world(&[package], Some(world)).unwrap();
        dummy_module(&resolve, world, ManglingAndAbi::Standard32)
    }
}
