//! Reading `--policy-config` documents.
//!
//! The built-in policies take no configuration; test and example policies
//! take a few `key = value` lines. Both refuse what they do not understand,
//! with a message naming the line: a typo in a security setting must stop the
//! daemon, not be ignored.

use std::fmt;

/// Why a configuration was refused. Its `Display` is the message the
/// operator sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The policy takes no configuration, but one was given.
    #[error("the {policy} policy takes no configuration, but --policy-config gave {bytes} bytes; remove --policy-config")]
    NotAccepted { policy: String, bytes: usize },
    /// A line that is not `key = value`.
    #[error("line {line}: expected `key = value`, found {found:?}")]
    Malformed { line: usize, found: String },
    /// A key the policy does not know.
    #[error("line {line}: unknown key {key:?} (known: {known})")]
    UnknownKey {
        line: usize,
        key: String,
        known: KnownKeys,
    },
    /// A key given twice.
    #[error("line {line}: {key:?} is set twice")]
    Duplicate { line: usize, key: String },
    /// A value the key does not accept.
    #[error("line {line}: {key} = {value:?}: {expected}")]
    BadValue {
        line: usize,
        key: String,
        value: String,
        expected: String,
    },
}

/// The keys a policy knows, for [`ConfigError::UnknownKey`]'s message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownKeys(pub Vec<String>);

impl fmt::Display for KnownKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&self.0.join(", "))
    }
}

/// A blank document (only whitespace: an empty file, a trailing newline)
/// counts as no configuration.
pub fn is_empty(config: &str) -> bool {
    config.trim().is_empty()
}

/// For policies that take no configuration: accepts only a blank document.
pub fn refuse_any(policy: &str, config: &str) -> Result<(), ConfigError> {
    if is_empty(config) {
        Ok(())
    } else {
        Err(ConfigError::NotAccepted {
            policy: policy.to_owned(),
            bytes: config.len(),
        })
    }
}

/// One `key = value` setting and the line (from 1) it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<'a> {
    pub line: usize,
    pub key: &'a str,
    pub value: &'a str,
}

impl Setting<'_> {
    /// The value as an integer, or a [`ConfigError::BadValue`].
    pub fn parse_u64(&self) -> Result<u64, ConfigError> {
        self.value.parse().map_err(|_| ConfigError::BadValue {
            line: self.line,
            key: self.key.to_owned(),
            value: self.value.to_owned(),
            expected: "expected a whole number".into(),
        })
    }
}

/// Parses `key = value` lines (spaces around `=` optional; blank lines and
/// lines starting with `#` skipped). Every key must be in `known` and given
/// at most once; values are taken verbatim (trimmed), quotes included.
pub fn key_values<'a>(config: &'a str, known: &[&str]) -> Result<Vec<Setting<'a>>, ConfigError> {
    let mut settings: Vec<Setting<'a>> = Vec::new();
    for (index, raw) in config.lines().enumerate() {
        let line = index + 1;
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let Some((key, value)) = text.split_once('=') else {
            return Err(ConfigError::Malformed {
                line,
                found: text.to_owned(),
            });
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(ConfigError::Malformed {
                line,
                found: text.to_owned(),
            });
        }
        if !known.contains(&key) {
            return Err(ConfigError::UnknownKey {
                line,
                key: key.to_owned(),
                known: KnownKeys(known.iter().map(|key| (*key).to_owned()).collect()),
            });
        }
        if settings.iter().any(|setting| setting.key == key) {
            return Err(ConfigError::Duplicate {
                line,
                key: key.to_owned(),
            });
        }
        settings.push(Setting { line, key, value });
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_documents_are_no_configuration() {
        for blank in ["", "\n", "  \n\t\n"] {
            assert!(is_empty(blank), "{blank:?}");
            assert_eq!(refuse_any("default", blank), Ok(()));
        }
    }

    #[test]
    fn refuse_any_names_the_policy_and_the_way_out() {
        let message = refuse_any("default", "mode = strict\n")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("default policy takes no configuration"),
            "{message}"
        );
        assert!(message.contains("14 bytes"), "{message}");
        assert!(message.contains("remove --policy-config"), "{message}");
    }

    #[test]
    fn key_values_reads_settings_and_skips_comments_and_blank_lines() {
        let settings = key_values(
            "# slow\n\ndelay_ms=30\n  version = 2 \n",
            &["delay_ms", "version"],
        )
        .unwrap();
        assert_eq!(
            settings,
            vec![
                Setting {
                    line: 3,
                    key: "delay_ms",
                    value: "30"
                },
                Setting {
                    line: 4,
                    key: "version",
                    value: "2"
                },
            ]
        );
        assert_eq!(settings[0].parse_u64(), Ok(30));
    }

    #[test]
    fn key_values_refuses_what_it_does_not_understand_naming_the_line() {
        let known = ["delay_ms"];
        let message = key_values("delay_ms = 1\ndelay\n", &known)
            .unwrap_err()
            .to_string();
        assert_eq!(message, "line 2: expected `key = value`, found \"delay\"");
        let message = key_values("= 3", &known).unwrap_err().to_string();
        assert!(message.starts_with("line 1: expected"), "{message}");
        let message = key_values("dealy_ms = 3", &known).unwrap_err().to_string();
        assert_eq!(
            message,
            "line 1: unknown key \"dealy_ms\" (known: delay_ms)"
        );
        let message = key_values("x = 3", &[]).unwrap_err().to_string();
        assert!(message.ends_with("(known: none)"), "{message}");
        let message = key_values("delay_ms=1\ndelay_ms=2", &known)
            .unwrap_err()
            .to_string();
        assert_eq!(message, "line 2: \"delay_ms\" is set twice");
    }

    #[test]
    fn parse_u64_refuses_a_non_number_naming_key_and_value() {
        let settings = key_values("delay_ms = soon", &["delay_ms"]).unwrap();
        let message = settings[0].parse_u64().unwrap_err().to_string();
        assert_eq!(
            message,
            "line 1: delay_ms = \"soon\": expected a whole number"
        );
    }
}
