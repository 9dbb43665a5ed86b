//! Which contract a policy component was built for, read from its exports
//! before anything is linked: a policy built for another version of
//! `qserve:policy` (or for the old `qserve:bridge`) is refused with a
//! sentence naming both versions, not with a linker error about a missing
//! function.

use wasmtime::component::Component;

use crate::error::LoadError;

/// The contract this host speaks.
pub const POLICY_CONTRACT: &str = "qserve:policy@0.2.0";
/// The interface a policy must export.
pub const DECIDE_INTERFACE: &str = "qserve:policy/decide@0.2.0";
/// The functions of [`DECIDE_INTERFACE`].
pub const DECIDE_FUNCTIONS: [&str; 4] = [
    "init",
    "on-permission-request",
    "on-session-create",
    "on-file-access",
];

/// The contract named by one export, if it is a policy's `decide` of some
/// version: `qserve:policy/decide@0.1.0` → `qserve:policy@0.1.0`.
pub(crate) fn contract_of_export(export: &str) -> Option<String> {
    let (package_and_interface, version) = match export.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (export, None),
    };
    let (package, interface) = package_and_interface.split_once('/')?;
    if interface != "decide" || !matches!(package, "qserve:policy" | "qserve:bridge") {
        return None;
    }
    Some(match version {
        Some(version) => format!("{package}@{version}"),
        None => format!("{package} (unversioned)"),
    })
}

/// Refuse a component that exports a `decide` of another contract version.
/// One that exports no `decide` at all passes here and fails to link, with
/// the wrong-world error.
pub(crate) fn check(
    origin: &str,
    component: &Component,
    engine: &wasmtime::Engine,
) -> Result<(), LoadError> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    check_exports(origin, exports.iter().map(String::as_str))
}

pub(crate) fn check_exports<'a>(
    origin: &str,
    exports: impl IntoIterator<Item = &'a str>,
) -> Result<(), LoadError> {
    let mut other = None;
    for export in exports {
        if export == DECIDE_INTERFACE {
            return Ok(());
        }
        if other.is_none() {
            other = contract_of_export(export);
        }
    }
    match other {
        Some(found) => Err(LoadError::ContractVersion {
            origin: origin.to_owned(),
            found,
            expected: POLICY_CONTRACT.to_owned(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_versions_of_decide_are_named() {
        assert_eq!(
            contract_of_export("qserve:bridge/decide@0.1.0").as_deref(),
            Some("qserve:bridge@0.1.0")
        );
        assert_eq!(
            contract_of_export("qserve:policy/decide@0.3.0").as_deref(),
            Some("qserve:policy@0.3.0")
        );
        assert_eq!(contract_of_export("qserve:policy/types@0.2.0"), None);
        assert_eq!(contract_of_export("wasi:cli/run@0.2.0"), None);
        let err = check_exports("p.wasm", ["qserve:policy/decide@0.3.0"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.wasm was built for qserve:policy@0.3.0, this host speaks qserve:policy@0.2.0: \
             rebuild it against wit/policy/policy.wit (qserve:policy@0.2.0)"
        );
        assert!(check_exports("p.wasm", ["qserve:policy/decide@0.2.0"]).is_ok());
        assert!(check_exports("p.wasm", ["qserve:core/events@0.1.0"]).is_ok());
    }
}
