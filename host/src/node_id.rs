//! `--node-id`: the name of this daemon among several behind a proxy.
//!
//! Every session id (and permission request id) the daemon hands out then
//! starts with `NAME.`, so a proxy can send `/session/NAME.…` and
//! `/permission/NAME.…` to the daemon that owns them with one regex (see
//! docs/deploy.md). The name is therefore restricted to what needs no
//! escaping anywhere: in a URL path, in an nginx `map` regex, in a
//! Kubernetes pod name (a DNS label), and it never contains the `.` that ends it.

/// Longest accepted name: a DNS label, so a StatefulSet pod name fits.
pub const MAX_LEN: usize = 63;

/// The clap value parser for `--node-id` / `QSERVE_NODE_ID`.
pub fn parse(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= MAX_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a node id: use 1 to {MAX_LEN} characters from a-z, 0-9 and `-`, \
             starting and ending with a letter or digit (e.g. `qserve-0`); it starts every \
             session id as `NAME.` so that a proxy can route on it"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn dns_label_names_are_accepted() {
        for name in ["a", "b", "qserve-0", "node-12", "0", &"x".repeat(63)] {
            assert_eq!(parse(name).as_deref(), Ok(name), "{name}");
        }
    }

    #[test]
    fn names_a_proxy_could_not_match_plainly_are_refused_with_the_rule() {
        for name in [
            "",
            "A",
            "node.a",
            "node_a",
            "-a",
            "a-",
            "a b",
            "é",
            "a/b",
            &"x".repeat(64),
        ] {
            let error = parse(name).expect_err(name);
            assert!(error.contains("a-z, 0-9 and `-`"), "{error}");
        }
    }
}
