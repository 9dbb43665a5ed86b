//! The built-in `default` policy component: the clients decide every
//! permission request; file access through the daemon stays inside the
//! workspace (see `qserve_policy_logic::DefaultPolicy`).

qserve_policy::export!(qserve_policy_logic::DefaultPolicy);
