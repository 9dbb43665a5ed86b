//! The built-in `readonly` policy component: reading tools allowed, changing
//! tools rejected, agent file writes refused (see
//! `qserve_policy_logic::ReadonlyPolicy`).

qserve_policy_glue::export_builtin_policy!(qserve_policy_logic::ReadonlyPolicy, "readonly");
