//! The precompiled matchers: command word prefixes in a trie, path globs in
//! two `GlobSet`s (relative to the workspace, absolute), fetch domains in a
//! hash map. Built once at `init`; a decision walks each structure once,
//! whatever the number of rules, without allocating per rule.

use std::collections::HashMap;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// One word of a command pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Word {
    Exact(String),
    /// `prefix*` (only as the last word): any word starting with `prefix`.
    Prefix(String),
}

impl Word {
    fn matches(&self, word: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == word,
            Self::Prefix(prefix) => word.starts_with(prefix.as_str()),
        }
    }
}

/// A command prefix: each position lists its alternatives (Codex's nested
/// arrays; a single word otherwise). The command's words must start with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandPattern {
    pub words: Vec<Vec<Word>>,
}

/// Most paths one pattern may expand to through its alternatives.
const MAX_EXPANSIONS: usize = 1024;

impl CommandPattern {
    /// Builds a pattern from words as written, where `*` ends the last word
    /// (`test:*`, `test*`, or a lone `*`). Claude Code's `:*` prefix marker
    /// (`git push:*`) keeps the bare word too: it matches `push` as well as
    /// `push:x`. `*` anywhere else is refused, rather than silently taken
    /// literally.
    pub fn from_words(words: Vec<Vec<String>>) -> Result<Self, String> {
        let count = words.len();
        let mut pattern = Vec::with_capacity(count);
        for (index, alternatives) in words.into_iter().enumerate() {
            let last = index + 1 == count;
            if alternatives.is_empty() {
                return Err("an empty list of alternatives".into());
            }
            let mut position = Vec::new();
            for word in alternatives {
                if word.is_empty() {
                    return Err("an empty word".into());
                }
                match word.find('*') {
                    None => position.push(Word::Exact(word)),
                    Some(at) if last && at + 1 == word.len() => {
                        let stem = &word[..at];
                        if stem.is_empty() {
                            // A lone `*`: anything (or nothing) follows.
                            continue;
                        }
                        if let Some(bare) = stem.strip_suffix(':') {
                            if bare.is_empty() {
                                return Err(format!("{word:?} has nothing before `:*`"));
                            }
                            position.push(Word::Exact(bare.to_owned()));
                        }
                        position.push(Word::Prefix(stem.to_owned()));
                    }
                    Some(_) => {
                        return Err(format!(
                            "{word:?}: `*` is only allowed at the end of the last word (a prefix wildcard)"
                        ))
                    }
                }
            }
            if position.is_empty() {
                // Only a lone `*` here: the pattern ends before it.
                if !last {
                    return Err("`*` is only allowed at the end of the last word".into());
                }
            } else {
                pattern.push(position);
            }
        }
        let expansions = pattern
            .iter()
            .try_fold(1usize, |total, position| total.checked_mul(position.len()))
            .unwrap_or(usize::MAX);
        if expansions > MAX_EXPANSIONS {
            return Err(format!(
                "the alternatives expand to {expansions} commands (at most {MAX_EXPANSIONS})"
            ));
        }
        Ok(Self { words: pattern })
    }

    /// Splits a command prefix as written in a rule (`git push`, with shell
    /// quoting) into words.
    pub fn parse(text: &str) -> Result<Self, String> {
        let words = shlex::split(text).ok_or_else(|| format!("{text:?} has unbalanced quotes"))?;
        Self::from_words(words.into_iter().map(|word| vec![word]).collect())
    }

    /// Empty: matches every command (`Bash(*)`).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn matches(&self, words: &[String]) -> bool {
        words.len() >= self.words.len()
            && self
                .words
                .iter()
                .zip(words)
                .all(|(alternatives, word)| alternatives.iter().any(|alt| alt.matches(word)))
    }

    /// Every word path the alternatives spell.
    fn expand(&self) -> Vec<Vec<&Word>> {
        let mut paths: Vec<Vec<&Word>> = vec![Vec::new()];
        for alternatives in &self.words {
            let mut next = Vec::with_capacity(paths.len() * alternatives.len());
            for path in &paths {
                for word in alternatives {
                    let mut longer = path.clone();
                    longer.push(word);
                    next.push(longer);
                }
            }
            paths = next;
        }
        paths
    }
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, u32>,
    /// Last words with a prefix wildcard, and their rule.
    wild: Vec<(String, u32)>,
    /// Rules whose pattern ends at this node.
    ends: Vec<u32>,
}

/// Every command pattern of a ruleset, by word. Walking a command visits
/// the rules whose pattern is a prefix of it: one hash lookup per word.
#[derive(Debug)]
pub(crate) struct CommandTrie {
    nodes: Vec<Node>,
}

impl Default for CommandTrie {
    fn default() -> Self {
        Self {
            nodes: vec![Node::default()],
        }
    }
}

impl CommandTrie {
    pub fn insert(&mut self, pattern: &CommandPattern, rule: u32) {
        for path in pattern.expand() {
            let mut node = 0usize;
            let count = path.len();
            for (index, word) in path.into_iter().enumerate() {
                match word {
                    Word::Prefix(prefix) => {
                        debug_assert_eq!(index + 1, count, "prefix words are last");
                        self.nodes[node].wild.push((prefix.clone(), rule));
                        break;
                    }
                    Word::Exact(exact) => {
                        node = match self.nodes[node].children.get(exact.as_str()) {
                            Some(&child) => child as usize,
                            None => {
                                let child = self.nodes.len();
                                self.nodes.push(Node::default());
                                self.nodes[node]
                                    .children
                                    .insert(exact.clone(), child as u32);
                                child
                            }
                        };
                        if index + 1 == count {
                            self.nodes[node].ends.push(rule);
                        }
                    }
                }
            }
        }
    }

    /// Calls `visit` with every rule whose pattern is a prefix of `words`
    /// (a rule may be visited more than once).
    pub fn walk(&self, words: &[String], mut visit: impl FnMut(u32)) {
        let mut node = &self.nodes[0];
        for word in words {
            for (prefix, rule) in &node.wild {
                if word.starts_with(prefix.as_str()) {
                    visit(*rule);
                }
            }
            match node.children.get(word.as_str()) {
                Some(&child) => {
                    node = &self.nodes[child as usize];
                    for &rule in &node.ends {
                        visit(rule);
                    }
                }
                None => return,
            }
        }
    }
}

/// The host of a URL, lower-cased, or `None` when it cannot be told with
/// confidence (then no domain rule matches, so none can allow it).
///
/// A backslash ends the authority as it does in browsers, so
/// `https://evil.example\@github.com/` is `evil.example`, not `github.com`.
pub(crate) fn url_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let authority = rest.split(['/', '\\', '?', '#']).next()?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        &bracketed[..bracketed.find(']')?]
    } else {
        host_port.split(':').next()?
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return None;
    }
    Some(host)
}

/// Checks a `domain:` value: `example.com` (and its subdomains) or
/// `*.example.com` (subdomains only). Returns the domain and whether it is
/// subdomains only.
pub(crate) fn parse_domain(value: &str) -> Result<(String, bool), String> {
    let (domain, subdomains_only) = match value.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (value, false),
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty()
        || domain.starts_with('.')
        || domain.contains("..")
        || !domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err(format!(
            "{value:?} is not a domain (write `domain:example.com`, which includes its subdomains, or `domain:*.example.com`)"
        ));
    }
    Ok((domain, subdomains_only))
}

/// Fetch domains, by domain.
#[derive(Debug, Default)]
pub(crate) struct DomainIndex {
    /// `domain:example.com`: the host or any subdomain.
    with_subdomains: HashMap<String, Vec<u32>>,
    /// `domain:*.example.com`: subdomains only.
    subdomains_only: HashMap<String, Vec<u32>>,
}

impl DomainIndex {
    pub fn insert(&mut self, domain: String, subdomains_only: bool, rule: u32) {
        let map = if subdomains_only {
            &mut self.subdomains_only
        } else {
            &mut self.with_subdomains
        };
        map.entry(domain).or_default().push(rule);
    }

    pub fn is_empty(&self) -> bool {
        self.with_subdomains.is_empty() && self.subdomains_only.is_empty()
    }

    /// Visits the rules for `host` (lower case): one lookup per label.
    pub fn walk(&self, host: &str, mut visit: impl FnMut(u32)) {
        let mut suffix = host;
        let mut whole = true;
        loop {
            if let Some(rules) = self.with_subdomains.get(suffix) {
                rules.iter().copied().for_each(&mut visit);
            }
            if !whole {
                if let Some(rules) = self.subdomains_only.get(suffix) {
                    rules.iter().copied().for_each(&mut visit);
                }
            }
            match suffix.split_once('.') {
                Some((_, rest)) if !rest.is_empty() => suffix = rest,
                _ => return,
            }
            whole = false;
        }
    }
}

/// A path glob as written, made ready: relative ones are matched against
/// the path inside the workspace, absolute ones against the resolved path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathGlob {
    Relative(String),
    Absolute(String),
}

/// Checks and normalizes a path glob:
/// - `/x` and `//x` are absolute (`//` is Claude Code's absolute spelling);
/// - `x` and `./x` are relative to the workspace and only ever match paths
///   inside it;
/// - `~` is refused: a policy has no home directory to expand it with;
/// - `..` is refused in relative globs: resolved paths never contain it.
pub(crate) fn parse_glob(text: &str) -> Result<PathGlob, String> {
    let glob = normalize_glob(text)?;
    let (PathGlob::Relative(pattern) | PathGlob::Absolute(pattern)) = &glob;
    // Compiled once here for the message (naming the rule's line); the
    // GlobSet compiles it again with the others.
    add_glob(&mut GlobSetBuilder::new(), pattern)?;
    Ok(glob)
}

fn normalize_glob(text: &str) -> Result<PathGlob, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("an empty path glob".into());
    }
    if trimmed.starts_with('~') {
        return Err(format!(
            "{text:?}: `~` cannot be expanded by a policy (it has no home directory); write the absolute path"
        ));
    }
    if let Some(absolute) = trimmed.strip_prefix("//") {
        return Ok(PathGlob::Absolute(format!(
            "/{}",
            absolute.trim_start_matches('/')
        )));
    }
    if trimmed.starts_with('/') {
        return Ok(PathGlob::Absolute(trimmed.to_owned()));
    }
    let relative = trimmed.trim_start_matches("./");
    if relative.split('/').any(|part| part == "..") {
        return Err(format!(
            "{text:?}: `..` cannot match (paths are resolved); write an absolute glob for paths outside the workspace"
        ));
    }
    if relative.is_empty() || relative == "." {
        return Ok(PathGlob::Relative("**".into()));
    }
    Ok(PathGlob::Relative(relative.to_owned()))
}

/// Compiles one glob: `*` and `?` stay within a path component, `**` spans
/// components, and the glob also matches everything beneath what it names
/// (`Read(src)` covers `src/main.rs`; `deny Edit(.git)` covers `.git/config`).
fn add_glob(builder: &mut GlobSetBuilder, glob: &str) -> Result<usize, String> {
    let glob = glob.trim_end_matches('/');
    let glob = if glob.is_empty() { "/" } else { glob };
    let mut count = 0;
    let beneath = if glob.ends_with("/**") || glob == "**" {
        None
    } else if glob == "/" {
        Some("/**".to_owned())
    } else {
        Some(format!("{glob}/**"))
    };
    for pattern in std::iter::once(glob.to_owned()).chain(beneath) {
        let compiled = GlobBuilder::new(&pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|error| format!("{glob:?} is not a valid glob: {}", error.kind()))?;
        builder.add(compiled);
        count += 1;
    }
    Ok(count)
}

/// The path inside the workspace, relative to it (`""` for the workspace
/// itself), when `resolved` is inside `workspace`.
pub(crate) fn relative_to<'a>(resolved: &'a str, workspace: &str) -> Option<&'a str> {
    let workspace = workspace.trim_end_matches('/');
    let rest = resolved.strip_prefix(workspace)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('/')
    }
}

/// Many path globs, each for a rule (or a `[files]` entry), matched at once.
#[derive(Debug)]
pub(crate) struct PathGlobs {
    relative: GlobSet,
    relative_owner: Vec<u32>,
    absolute: GlobSet,
    absolute_owner: Vec<u32>,
}

impl Default for PathGlobs {
    fn default() -> Self {
        Self {
            relative: GlobSet::empty(),
            relative_owner: Vec::new(),
            absolute: GlobSet::empty(),
            absolute_owner: Vec::new(),
        }
    }
}

pub(crate) struct PathGlobsBuilder {
    relative: GlobSetBuilder,
    relative_owner: Vec<u32>,
    absolute: GlobSetBuilder,
    absolute_owner: Vec<u32>,
}

impl Default for PathGlobsBuilder {
    fn default() -> Self {
        Self {
            relative: GlobSetBuilder::new(),
            relative_owner: Vec::new(),
            absolute: GlobSetBuilder::new(),
            absolute_owner: Vec::new(),
        }
    }
}

impl PathGlobsBuilder {
    pub fn add(&mut self, glob: &PathGlob, owner: u32) -> Result<(), String> {
        let (builder, owners, text) = match glob {
            PathGlob::Relative(text) => (&mut self.relative, &mut self.relative_owner, text),
            PathGlob::Absolute(text) => (&mut self.absolute, &mut self.absolute_owner, text),
        };
        let added = add_glob(builder, text)?;
        owners.extend(std::iter::repeat_n(owner, added));
        Ok(())
    }

    pub fn build(self) -> Result<PathGlobs, String> {
        let build = |builder: GlobSetBuilder| {
            builder
                .build()
                .map_err(|error| format!("the path globs do not compile: {error}"))
        };
        Ok(PathGlobs {
            relative: build(self.relative)?,
            relative_owner: self.relative_owner,
            absolute: build(self.absolute)?,
            absolute_owner: self.absolute_owner,
        })
    }
}

impl PathGlobs {
    /// Visits the owners of the globs matching `resolved`. Relative globs
    /// only see paths inside `workspace` (`inside` is the host's word on
    /// that, and the path must also lie under the workspace textually).
    pub fn walk(
        &self,
        resolved: &str,
        inside: bool,
        workspace: &str,
        scratch: &mut Vec<usize>,
        mut visit: impl FnMut(u32),
    ) {
        if !self.absolute_owner.is_empty() {
            self.absolute.matches_into(resolved, scratch);
            for &index in scratch.iter() {
                visit(self.absolute_owner[index]);
            }
        }
        if inside && !self.relative_owner.is_empty() {
            if let Some(relative) = relative_to(resolved, workspace) {
                self.relative.matches_into(relative, scratch);
                for &index in scratch.iter() {
                    visit(self.relative_owner[index]);
                }
            }
        }
    }

    /// The first owner matching, if any.
    pub fn first(&self, resolved: &str, inside: bool, workspace: &str) -> Option<u32> {
        let mut scratch = Vec::new();
        let mut found = None;
        self.walk(resolved, inside, workspace, &mut scratch, |owner| {
            found = Some(found.map_or(owner, |known: u32| known.min(owner)));
        });
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn matched(trie: &CommandTrie, command: &str) -> Vec<u32> {
        let mut rules = Vec::new();
        trie.walk(&words(command), |rule| rules.push(rule));
        rules.sort_unstable();
        rules.dedup();
        rules
    }

    #[test]
    fn command_patterns_match_by_word_prefix() {
        let mut trie = CommandTrie::default();
        let patterns = [
            "git status",
            "git push:*",
            "npm run test:*",
            "rm -rf",
            "cargo t*",
        ];
        for (rule, text) in patterns.iter().enumerate() {
            trie.insert(&CommandPattern::parse(text).unwrap(), rule as u32);
        }
        assert_eq!(matched(&trie, "git status"), [0]);
        assert_eq!(matched(&trie, "git status --short"), [0]);
        assert_eq!(matched(&trie, "git"), Vec::<u32>::new());
        assert_eq!(matched(&trie, "git statusx"), Vec::<u32>::new());
        assert_eq!(matched(&trie, "git push origin main"), [1]);
        assert_eq!(matched(&trie, "git push:x"), [1]);
        assert_eq!(matched(&trie, "npm run test"), [2]);
        assert_eq!(matched(&trie, "npm run test:unit --watch"), [2]);
        assert_eq!(matched(&trie, "npm run testing"), Vec::<u32>::new());
        assert_eq!(matched(&trie, "npm run build"), Vec::<u32>::new());
        assert_eq!(matched(&trie, "rm -rf /"), [3]);
        assert_eq!(matched(&trie, "rm -r -f /"), Vec::<u32>::new());
        assert_eq!(matched(&trie, "cargo test"), [4]);
        assert_eq!(matched(&trie, "cargo tree"), [4]);
        assert_eq!(matched(&trie, "cargo build"), Vec::<u32>::new());
    }

    #[test]
    fn alternatives_expand_and_stars_elsewhere_are_refused() {
        let pattern = CommandPattern::from_words(vec![
            vec!["git".into()],
            vec!["push".into(), "fetch".into()],
        ])
        .unwrap();
        let mut trie = CommandTrie::default();
        trie.insert(&pattern, 7);
        assert_eq!(matched(&trie, "git fetch origin"), [7]);
        assert_eq!(matched(&trie, "git push"), [7]);
        assert!(pattern.matches(&words("git fetch")));
        assert!(!pattern.matches(&words("git pull")));
        for bad in ["ls *.txt", "git * main", ":*", "a **"] {
            assert!(CommandPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(CommandPattern::parse("*").unwrap().is_empty());
        assert_eq!(
            CommandPattern::parse("git *").unwrap(),
            CommandPattern::parse("git").unwrap()
        );
        let huge: Vec<Vec<String>> = (0..11).map(|_| vec!["a".into(), "b".into()]).collect();
        assert!(CommandPattern::from_words(huge)
            .unwrap_err()
            .contains("2048"));
        assert!(CommandPattern::parse("git 'unbalanced").is_err());
    }

    #[test]
    fn url_hosts_are_read_carefully() {
        for (url, host) in [
            ("https://github.com/a/b", Some("github.com")),
            ("https://API.GitHub.com:443/x?y#z", Some("api.github.com")),
            ("http://user:pw@example.com/", Some("example.com")),
            ("https://evil.example\\@github.com/", Some("evil.example")),
            (
                "https://github.com.evil.example/",
                Some("github.com.evil.example"),
            ),
            ("http://[::1]:8080/", Some("::1")),
            ("https://example.com./", Some("example.com")),
            ("github.com/a", None),
            ("https:///nohost", None),
            ("https://exa%6dple.com/", None),
        ] {
            assert_eq!(url_host(url).as_deref(), host, "{url}");
        }
    }

    #[test]
    fn domains_match_themselves_and_subdomains() {
        let mut index = DomainIndex::default();
        let (domain, only) = parse_domain("GitHub.com").unwrap();
        index.insert(domain, only, 1);
        let (domain, only) = parse_domain("*.example.com").unwrap();
        index.insert(domain, only, 2);
        let visit = |host: &str| {
            let mut rules = Vec::new();
            index.walk(host, |rule| rules.push(rule));
            rules
        };
        assert_eq!(visit("github.com"), [1]);
        assert_eq!(visit("api.github.com"), [1]);
        assert_eq!(visit("notgithub.com"), Vec::<u32>::new());
        assert_eq!(visit("github.com.evil.example"), Vec::<u32>::new());
        assert_eq!(visit("example.com"), Vec::<u32>::new());
        assert_eq!(visit("a.b.example.com"), [2]);
        for bad in ["", "*.", "exa mple.com", "https://x.com", "a..b", "*.*.x"] {
            assert!(parse_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn globs_are_relative_to_the_workspace_or_absolute() {
        assert_eq!(
            parse_glob("src/**"),
            Ok(PathGlob::Relative("src/**".into()))
        );
        assert_eq!(parse_glob("./src"), Ok(PathGlob::Relative("src".into())));
        assert_eq!(
            parse_glob("//etc/**"),
            Ok(PathGlob::Absolute("/etc/**".into()))
        );
        assert_eq!(parse_glob("/etc"), Ok(PathGlob::Absolute("/etc".into())));
        assert_eq!(parse_glob("."), Ok(PathGlob::Relative("**".into())));
        assert!(parse_glob("~/.ssh/**")
            .unwrap_err()
            .contains("home directory"));
        assert!(parse_glob("../x").unwrap_err().contains(".."));
        assert!(parse_glob(" ").is_err());
    }

    #[test]
    fn path_globs_match_resolved_paths() {
        let mut builder = PathGlobsBuilder::default();
        for (owner, glob) in [
            "src/**",
            "**/*.rs",
            ".env",
            "/etc",
            "/tmp/*.log",
            "a/[bc]/{x,y}",
        ]
        .iter()
        .enumerate()
        {
            builder
                .add(&parse_glob(glob).unwrap(), owner as u32)
                .unwrap();
        }
        let globs = builder.build().unwrap();
        let ws = "/home/me/project";
        let owners = |path: &str, inside: bool| {
            let mut scratch = Vec::new();
            let mut owners = Vec::new();
            globs.walk(path, inside, ws, &mut scratch, |owner| owners.push(owner));
            owners.sort_unstable();
            owners.dedup();
            owners
        };
        assert_eq!(owners("/home/me/project/src/a/b.txt", true), [0]);
        assert_eq!(owners("/home/me/project/src/main.rs", true), [0, 1]);
        assert_eq!(owners("/home/me/project/lib.rs", true), [1]);
        assert_eq!(owners("/home/me/project/.env", true), [2]);
        assert_eq!(owners("/home/me/project/sub/.env", true), Vec::<u32>::new());
        assert_eq!(owners("/etc/passwd", false), [3]);
        assert_eq!(owners("/etcetera", false), Vec::<u32>::new());
        assert_eq!(owners("/tmp/x.log", false), [4]);
        assert_eq!(
            owners("/tmp/d/x.log", false),
            Vec::<u32>::new(),
            "`*` stays in one component"
        );
        assert_eq!(owners("/home/me/project/a/c/y", true), [5]);
        // Relative globs never see a path outside the workspace, whatever it looks like.
        assert_eq!(owners("/elsewhere/src/main.rs", false), Vec::<u32>::new());
        assert_eq!(
            owners("/home/me/project-two/src/x", true),
            Vec::<u32>::new()
        );
        assert_eq!(globs.first("/home/me/project/src/x.rs", true, ws), Some(0));
    }

    #[test]
    fn relative_to_needs_a_component_boundary() {
        assert_eq!(relative_to("/w/a/b", "/w/a"), Some("b"));
        assert_eq!(relative_to("/w/a", "/w/a/"), Some(""));
        assert_eq!(relative_to("/w/ab", "/w/a"), None);
        assert_eq!(relative_to("/x", "/"), Some("x"));
    }
}
