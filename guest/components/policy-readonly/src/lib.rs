//! The built-in `readonly` policy component: looking tools allowed once,
//! every other tool rejected, agent file writes refused (see
//! `qserve_policy_logic::ReadonlyPolicy`).

qserve_policy_glue::export_policy!(qserve_policy_logic::ReadonlyPolicy);
