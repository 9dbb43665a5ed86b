//! The core and the built-in policies, compiled into the binary so that the
//! daemon runs on a machine with no Wasm toolchain. `guest/build.sh --embed`
//! refreshes them and records a hash of their sources in
//! `embedded/SOURCES.sha256`; CI fails when that hash no longer matches
//! `guest/` and `wit/` (`guest/build.sh --check-embedded`).

/// The default core component (session registry, event ring, permissions).
pub static EMBEDDED_CORE: &[u8] = include_bytes!("../embedded/core.wasm");

/// The policies that ship inside qserve-host, chosen with `--component builtin:NAME`.
pub mod builtin {
    /// A policy component compiled into the binary.
    #[derive(Debug)]
    pub struct Builtin {
        /// How it is named on the command line and in `policy list`: `builtin:default`.
        pub name: &'static str,
        pub bytes: &'static [u8],
    }

    static ALL: [Builtin; 4] = [
        // Asks the clients about every permission; allows file access inside
        // the workspace.
        Builtin {
            name: "builtin:default",
            bytes: include_bytes!("../embedded/policy-default.wasm"),
        },
        // Allows reads, rejects everything that writes or runs.
        Builtin {
            name: "builtin:readonly",
            bytes: include_bytes!("../embedded/policy-readonly.wasm"),
        },
        // The operator's permission rules in TOML (--policy-config); see
        // guest/rules-logic/README.md.
        Builtin {
            name: "builtin:rules",
            bytes: include_bytes!("../embedded/policy-rules.wasm"),
        },
        // Policies in Cedar (--policy-config is the policy set), validated
        // against qserve's schema at load; see guest/cedar-logic/README.md.
        Builtin {
            name: "builtin:cedar",
            bytes: include_bytes!("../embedded/policy-cedar.wasm"),
        },
    ];

    /// Every built-in policy, `builtin:default` first.
    pub fn all() -> &'static [Builtin] {
        &ALL
    }

    /// The built-in policy named `name` (`builtin:NAME`).
    pub fn find(name: &str) -> Option<&'static Builtin> {
        ALL.iter().find(|b| b.name == name)
    }

    /// `builtin:default, builtin:readonly, …` (for messages).
    pub fn names() -> String {
        ALL.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
    }
}
