//! The built-in `default` policy component: the clients decide every
//! permission request (see `qserve_policy_logic::DefaultPolicy`).

qserve_policy_glue::export_builtin_policy!(qserve_policy_logic::DefaultPolicy, "default");
