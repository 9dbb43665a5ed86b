//! Facts derived from the agent's strings for the Cedar entities: the words
//! of a shell command, a URL's host, an MCP tool name's parts.
//!
//! Everything here reads untrusted text. Where a reading could be fooled,
//! it errs towards showing the policy more (more prefixes, the shell-syntax
//! flag set), so a `forbid` keyed on them is harder to slip past.

use std::collections::BTreeSet;

/// Words of one command that become prefixes (`git`, `git push`, …).
/// Enough for any sub-command rule; bounds the work on a long command.
pub const MAX_PREFIX_WORDS: usize = 8;

/// Tokens that separate commands in a shell command line.
const CONTROL_OPERATORS: &[&str] = &["&&", "||", ";", ";;", "|", "|&", "&", "!"];

/// Characters with which a shell chains, substitutes or redirects.
const SHELL_SYNTAX: &[char] = &[';', '&', '|', '`', '$', '<', '>', '(', ')', '\n', '\r'];

/// What the policy learns about an `execute` command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandFacts {
    /// Every word, shell-split (`commandTokens`).
    pub tokens: BTreeSet<String>,
    /// For each command in the line, its first 1..=[`MAX_PREFIX_WORDS`]
    /// words joined by one space (`commandPrefixes`).
    pub prefixes: BTreeSet<String>,
    /// The line split cleanly; false for an open quote or a trailing
    /// backslash, when the words were split on whitespace instead.
    pub parsed: bool,
    /// The line contains a character of [`SHELL_SYNTAX`], quoted or not.
    pub shell_syntax: bool,
}

/// Splits `command` the way a POSIX shell splits words (the `shlex`
/// crate) and lists, per command, the prefixes a rule can match.
///
/// Commands are separated at control-operator words (`&&`, `||`, `;`, `|`,
/// `&`) and after a word ending in `;` (`cd src; git push`); leading
/// variable assignments (`GIT_DIR=x git push`) are skipped. Operators
/// written without spaces (`a&&b`) stay inside one word: that is what
/// [`CommandFacts::shell_syntax`] is for.
pub fn command(command: &str) -> CommandFacts {
    let (words, parsed) = match shlex::split(command) {
        Some(words) => (words, true),
        // An open quote: a shell would not run this as written, but the
        // words still tell what it is about.
        None => (
            command.split_whitespace().map(str::to_owned).collect(),
            false,
        ),
    };
    let mut prefixes = BTreeSet::new();
    let mut current: Vec<&str> = Vec::new();
    for word in &words {
        if CONTROL_OPERATORS.contains(&word.as_str()) {
            add_prefixes(&current, &mut prefixes);
            current.clear();
        } else if let Some(last) = word.strip_suffix(';').filter(|last| !last.is_empty()) {
            current.push(last);
            add_prefixes(&current, &mut prefixes);
            current.clear();
        } else {
            current.push(word);
        }
    }
    add_prefixes(&current, &mut prefixes);
    CommandFacts {
        tokens: words.iter().cloned().collect(),
        prefixes,
        parsed,
        shell_syntax: command.contains(SHELL_SYNTAX),
    }
}

fn add_prefixes(words: &[&str], prefixes: &mut BTreeSet<String>) {
    let words: Vec<&str> = words
        .iter()
        .copied()
        .skip_while(|word| is_assignment(word))
        .take(MAX_PREFIX_WORDS)
        .collect();
    for end in 1..=words.len() {
        prefixes.insert(words[..end].join(" "));
    }
}

/// `NAME=value`, as a shell reads it before the command word.
fn is_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first == '_' || first.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The host of `url`, lowercase, without port or trailing dot; "" when
/// there is none. A missing scheme is tolerated (`example.com/x`).
///
/// `\` ends the host as it does for browsers and most HTTP clients
/// (WHATWG), so `http://evil.example\@good.example/` is `evil.example`:
/// the reading that the fetching side is likely to use.
pub fn domain(url: &str) -> String {
    let rest = url.trim();
    let rest = rest.split_once("://").map_or(rest, |(_, rest)| rest);
    let authority = rest.split(['/', '\\', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if host.starts_with('[') {
        // An IPv6 literal keeps its brackets; a port may follow them.
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or_default()
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// `(server, tool)` from an MCP tool name written `mcp__SERVER__TOOL` (the
/// form Claude Code and others use); ("", "") for any other name.
pub fn mcp(tool_name: &str) -> (String, String) {
    tool_name
        .strip_prefix("mcp__")
        .and_then(|rest| rest.split_once("__"))
        .filter(|(server, tool)| !server.is_empty() && !tool.is_empty())
        .map_or_else(Default::default, |(server, tool)| {
            (server.to_owned(), tool.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn a_command_is_split_like_a_shell_splits_it() {
        let facts = command(r#"git commit -m "fix the build""#);
        assert_eq!(facts.tokens, set(&["git", "commit", "-m", "fix the build"]));
        assert_eq!(
            facts.prefixes,
            set(&[
                "git",
                "git commit",
                "git commit -m",
                "git commit -m fix the build"
            ])
        );
        assert!(facts.parsed);
        assert!(!facts.shell_syntax);
    }

    #[test]
    fn quoting_and_spacing_do_not_hide_a_sub_command() {
        for line in [
            "git push",
            "git  push origin",
            "'git' \"push\"",
            "g''it pu\\sh",
        ] {
            assert!(
                command(line).prefixes.contains("git push"),
                "{line}: {:?}",
                command(line).prefixes
            );
        }
        assert!(!command("git status").prefixes.contains("git push"));
        assert!(!command("echo git push").prefixes.contains("git push"));
    }

    #[test]
    fn every_command_of_a_line_has_its_prefixes() {
        for line in [
            "cd src && git push",
            "make || git push",
            "cd src; git push",
            "cd src ; git push",
            "true | git push",
            "sleep 1 & git push",
            "GIT_DIR=/x git push",
            "A=1 B=2 git push --force",
        ] {
            let facts = command(line);
            assert!(
                facts.prefixes.contains("git push"),
                "{line}: {:?}",
                facts.prefixes
            );
        }
        assert!(command("cd src && git push").shell_syntax);
        assert!(!command("GIT_DIR=/x git push").shell_syntax);
    }

    #[test]
    fn shell_syntax_is_flagged_even_where_the_words_hide_it() {
        for line in [
            "a&&git push",
            "echo $(git push)",
            "echo `id`",
            "cat < x",
            "a\ngit push",
        ] {
            assert!(command(line).shell_syntax, "{line}");
        }
    }

    #[test]
    fn an_open_quote_still_yields_the_words() {
        let facts = command("git push 'origin");
        assert!(!facts.parsed);
        assert!(facts.prefixes.contains("git push"), "{:?}", facts.prefixes);
        assert!(facts.tokens.contains("push"));
    }

    #[test]
    fn prefixes_stop_at_the_word_limit() {
        let facts = command("a b c d e f g h i j");
        assert_eq!(facts.prefixes.len(), MAX_PREFIX_WORDS);
        assert!(facts.prefixes.contains("a b c d e f g h"));
        assert_eq!(facts.tokens.len(), 10, "every word is a token");
    }

    #[test]
    fn an_empty_command_has_no_words() {
        let facts = command("");
        assert!(facts.tokens.is_empty() && facts.prefixes.is_empty());
        assert!(facts.parsed);
    }

    #[test]
    fn the_domain_is_the_host_the_request_goes_to() {
        for (url, host) in [
            ("https://GitHub.com/cedar-policy/cedar", "github.com"),
            ("http://user:pw@example.com:8080/x?y#z", "example.com"),
            ("https://docs.rs.", "docs.rs"),
            ("example.org/path", "example.org"),
            ("http://evil.example\\@good.example/", "evil.example"),
            ("http://[::1]:8080/", "[::1]"),
            ("https://a.example?q=@b.example", "a.example"),
            ("", ""),
        ] {
            assert_eq!(domain(url), host, "{url}");
        }
    }

    #[test]
    fn mcp_tool_names_give_server_and_tool() {
        assert_eq!(
            mcp("mcp__github__create_issue"),
            ("github".into(), "create_issue".into())
        );
        assert_eq!(mcp("mcp__a__b__c"), ("a".into(), "b__c".into()));
        for name in ["Bash", "mcp__", "mcp__server", "mcp____tool", "xmcp__a__b"] {
            assert_eq!(mcp(name), (String::new(), String::new()), "{name}");
        }
    }
}
