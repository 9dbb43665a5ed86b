//! The TOML document as written, before it is checked and compiled.
//!
//! Every table refuses keys it does not know (`deny_unknown_fields`): a typo
//! in a security setting (`alow = [...]`, `prioirty = 10`) must stop the
//! daemon with the line, not be silently ignored. Values that are words
//! (decisions, modes, kinds) are kept as strings here and checked in
//! [`crate::compile`], which names the rule and the line.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub mode: Option<Spanned<String>>,
    pub ask_timeout_ms: Option<u64>,
    #[serde(default)]
    pub allow: Vec<Spanned<ListEntry>>,
    #[serde(default)]
    pub ask: Vec<Spanned<ListEntry>>,
    #[serde(default)]
    pub deny: Vec<Spanned<ListEntry>>,
    #[serde(default)]
    pub prefix_rule: Vec<Spanned<RawPrefixRule>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub files: RawFiles,
    #[serde(default)]
    pub example: Vec<Spanned<RawExample>>,
}

/// An entry of `allow`/`ask`/`deny`: `"Bash(git push)"`, or a table
/// `{ rule = "Bash(git push)", reason = "...", timeout_ms = 30000 }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListEntry {
    pub rule: String,
    pub reason: Option<String>,
    pub timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListEntryTable {
    rule: String,
    reason: Option<String>,
    timeout_ms: Option<u64>,
}

impl<'de> Deserialize<'de> for ListEntry {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = ListEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a rule such as \"Bash(git push)\", or a table { rule = \"…\", reason = \"…\", timeout_ms = … }",
                )
            }
            fn visit_str<E: de::Error>(self, rule: &str) -> Result<ListEntry, E> {
                Ok(ListEntry {
                    rule: rule.to_owned(),
                    reason: None,
                    timeout_ms: None,
                })
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<ListEntry, M::Error> {
                let table =
                    ListEntryTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ListEntry {
                    rule: table.rule,
                    reason: table.reason,
                    timeout_ms: table.timeout_ms,
                })
            }
        }
        deserializer.deserialize_any(EntryVisitor)
    }
}

/// One word, or a list of alternatives for one position.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a word, or a list of alternative words")]
pub(crate) enum PatternWord {
    One(String),
    Alternatives(Vec<String>),
}

/// A command, as a line (`"git push origin"`) or as words.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a command line, or a list of words")]
pub(crate) enum CommandExample {
    Line(String),
    Words(Vec<String>),
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a string, or a list of strings")]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

/// Codex `prefix_rule`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrefixRule {
    pub pattern: Vec<PatternWord>,
    pub decision: Option<String>,
    #[serde(default, rename = "match")]
    pub matches: Vec<CommandExample>,
    #[serde(default)]
    pub not_match: Vec<CommandExample>,
    #[serde(alias = "justification")]
    pub reason: Option<String>,
    pub priority: Option<i64>,
    pub timeout_ms: Option<u64>,
    pub modes: Option<Vec<String>>,
}

/// Gemini CLI `[[rule]]` (its camelCase keys), plus `reason` and
/// `timeout_ms` as everywhere else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    #[serde(rename = "toolName")]
    pub tool_name: Option<OneOrMany>,
    #[serde(rename = "commandPrefix")]
    pub command_prefix: Option<OneOrMany>,
    #[serde(rename = "argsPattern")]
    pub args_pattern: Option<String>,
    #[serde(rename = "mcpServer", alias = "mcpName")]
    pub mcp_server: Option<String>,
    #[serde(rename = "mcpTool")]
    pub mcp_tool: Option<String>,
    pub priority: Option<i64>,
    pub decision: Option<String>,
    pub modes: Option<Vec<String>>,
    #[serde(rename = "allowRedirection")]
    pub allow_redirection: Option<bool>,
    #[serde(alias = "denyMessage", alias = "deny_message")]
    pub reason: Option<String>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSession {
    #[serde(default)]
    pub allowed_roots: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFiles {
    pub workspace: Option<Spanned<String>>,
    #[serde(default)]
    pub read: Vec<Spanned<String>>,
    #[serde(default)]
    pub write: Vec<Spanned<String>>,
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
}

/// `[[example]]`: a call and the decision it must get.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExample {
    pub name: Option<String>,
    /// A tool name as rules spell it (`Bash`, `run_shell_command`, `mcp__x__y`).
    pub tool: Option<String>,
    /// An ACP kind (`execute`, `read`, …).
    pub kind: Option<String>,
    pub command: Option<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    pub url: Option<String>,
    pub raw_input: Option<String>,
    /// Default `/workspace`.
    pub workspace: Option<String>,
    /// `read`/`write`: a file access through the daemon (one path) instead
    /// of a permission request.
    pub access: Option<String>,
    pub expect: String,
}

/// Line numbers of byte offsets, for messages (one pass over the text,
/// then a binary search per lookup: a config of thousands of rules asks for
/// thousands of lines).
pub(crate) struct Lines {
    newlines: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Self {
        Self {
            newlines: text
                .bytes()
                .enumerate()
                .filter(|&(_, byte)| byte == b'\n')
                .map(|(offset, _)| offset)
                .collect(),
        }
    }

    /// The line (from 1) of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&newline| newline < offset) + 1
    }
}
