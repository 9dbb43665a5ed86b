//! The built-in `rules` policy component (`--policy builtin:rules`): the
//! operator's TOML rules (`--policy-config`), compiled at `init` (see
//! `qserve_rules_logic::RulesPolicy` and guest/rules-logic/README.md).

qserve_policy_glue::export_policy!(qserve_rules_logic::RulesPolicy);
