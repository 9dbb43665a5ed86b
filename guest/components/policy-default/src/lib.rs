//! The built-in `default` policy component: the clients decide every
//! permission request; file access through the daemon stays inside the
//! workspace (see `qserve_policy_logic::DefaultPolicy`).

qserve_policy_glue::export_policy!(qserve_policy_logic::DefaultPolicy);
