//! From the TOML document to a [`Ruleset`]: every value checked, every
//! matcher built, every inline example run. Whatever is wrong refuses the
//! whole config with the line and what to write instead.

use qserve_policy_logic::{
    AgentInfo, Context, FileAccess, Phase, ResolvedPath, SessionScope, ToolCall,
};
use regex::RegexSet;
use toml::Spanned;

use crate::config::{
    CommandExample, Lines, ListEntry, PatternWord, RawConfig, RawExample, RawPrefixRule, RawRule,
};
use crate::matchers::{
    parse_domain, parse_glob, relative_to, CommandPattern, CommandTrie, DomainIndex, PathGlob,
    PathGlobsBuilder,
};
use crate::ruleset::{
    kind_for_tool, Decision, FileRules, Mode, Rule, Ruleset, SessionRules, ToolIndex,
    WorkspaceAccess,
};
use crate::tools::{self, Family, Selector};
use crate::RulesError;

/// What a rule matches besides the tool.
#[derive(Debug, Clone)]
enum Target {
    /// The tool alone.
    Tool,
    /// Any of these command prefixes.
    Commands(Vec<CommandPattern>),
    Path(PathGlob),
    Domain(String, bool),
}

struct Compiler<'a> {
    lines: &'a Lines,
    mode: Mode,
    rules: Vec<Rule>,
    targets: Vec<Target>,
    /// Each `argsPattern` and the line of its rule.
    args_patterns: Vec<(String, usize)>,
}

fn invalid(line: usize, context: impl Into<String>, problem: impl Into<String>) -> RulesError {
    RulesError::Invalid {
        line,
        context: context.into(),
        problem: problem.into(),
    }
}

pub(crate) fn compile(text: &str) -> Result<Ruleset, RulesError> {
    let lines = Lines::new(text);
    let raw: RawConfig = toml::from_str(text).map_err(|error| syntax(text, &lines, &error))?;
    let line = |start: usize| lines.line(start);

    let mode = match &raw.mode {
        None => Mode::Default,
        Some(mode) => Mode::parse(mode.get_ref()).ok_or_else(|| {
            invalid(
                line(mode.span().start),
                "mode",
                format!(
                    "{:?} is not a mode (plan, default, auto-edit, yolo)",
                    mode.get_ref()
                ),
            )
        })?,
    };
    let mut compiler = Compiler {
        lines: &lines,
        mode,
        rules: Vec::new(),
        targets: Vec::new(),
        args_patterns: Vec::new(),
    };
    for (decision, list) in [
        (Decision::Allow, &raw.allow),
        (Decision::Ask, &raw.ask),
        (Decision::Deny, &raw.deny),
    ] {
        for entry in list {
            compiler.list_entry(decision, entry)?;
        }
    }
    for rule in &raw.prefix_rule {
        compiler.prefix_rule(rule)?;
    }
    for (index, rule) in raw.rule.iter().enumerate() {
        compiler.gemini_rule(index + 1, rule)?;
    }

    let session = SessionRules::new(
        raw.session
            .allowed_roots
            .iter()
            .map(|root| root.get_ref().clone())
            .collect(),
    )
    .map_err(|(index, problem)| {
        invalid(
            line(raw.session.allowed_roots[index].span().start),
            "[session] allowed_roots",
            problem,
        )
    })?;
    let files = file_rules(&lines, &raw)?;
    let mut ruleset = compiler.finish(session, files, raw.ask_timeout_ms)?;
    ruleset.mode = mode;
    for (index, example) in raw.example.iter().enumerate() {
        check_example(&lines, &ruleset, index + 1, example)?;
    }
    Ok(ruleset)
}

/// A TOML error on one line (the host shows a refusal as one line): where,
/// and toml's own words (for an unknown key, the keys it knows).
fn syntax(text: &str, lines: &Lines, error: &toml::de::Error) -> RulesError {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let line = lines.line(span.start);
            let line_start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |newline| newline + 1);
            let column = text[line_start..span.start.min(text.len())].chars().count() + 1;
            RulesError::Syntax(format!("line {line}, column {column}: {message}"))
        }
        None => RulesError::Syntax(message),
    }
}

fn file_rules(lines: &Lines, raw: &RawConfig) -> Result<FileRules, RulesError> {
    let files = &raw.files;
    let workspace = match &files.workspace {
        None => WorkspaceAccess::ReadWrite,
        Some(word) => WorkspaceAccess::parse(word.get_ref()).ok_or_else(|| {
            invalid(
                lines.line(word.span().start),
                "[files] workspace",
                format!(
                    "{:?} is not an access (read-write, read-only, none)",
                    word.get_ref()
                ),
            )
        })?,
    };
    let build = |key: &str, globs: &[Spanned<String>]| {
        let mut builder = PathGlobsBuilder::default();
        let mut texts = Vec::new();
        for (index, glob) in globs.iter().enumerate() {
            let at = lines.line(glob.span().start);
            let context = format!("[files] {key} {:?}", glob.get_ref());
            let parsed =
                parse_glob(glob.get_ref()).map_err(|problem| invalid(at, &context, problem))?;
            builder
                .add(&parsed, index as u32)
                .map_err(|problem| invalid(at, &context, problem))?;
            texts.push(glob.get_ref().clone());
        }
        let globs = builder
            .build()
            .map_err(|problem| invalid(1, format!("[files] {key}"), problem))?;
        Ok::<_, RulesError>((globs, texts))
    };
    let (read, read_text) = build("read", &files.read)?;
    let (write, write_text) = build("write", &files.write)?;
    let (deny, deny_text) = build("deny", &files.deny)?;
    Ok(FileRules {
        workspace,
        read,
        read_text,
        write,
        write_text,
        deny,
        deny_text,
    })
}

/// `modes = [...]` as a bit set.
fn parse_modes(modes: &Option<Vec<String>>) -> Result<Option<u8>, String> {
    let Some(modes) = modes else {
        return Ok(None);
    };
    if modes.is_empty() {
        // Gemini CLI: an empty list means every mode.
        return Ok(None);
    }
    let mut bits = 0;
    for mode in modes {
        bits |= Mode::parse(mode)
            .ok_or_else(|| {
                format!("{mode:?} in modes is not a mode (plan, default, auto-edit, yolo)")
            })?
            .bit();
    }
    Ok(Some(bits))
}

fn parse_decision(word: Option<&str>, allowed: &str) -> Result<Decision, String> {
    let word = word.ok_or_else(|| format!("decision is required ({allowed})"))?;
    Decision::parse(word).ok_or_else(|| format!("decision = {word:?}: expected {allowed}"))
}

fn check_timeout(decision: Decision, timeout_ms: Option<u64>) -> Result<(), String> {
    match (decision, timeout_ms) {
        (Decision::Ask, _) | (_, None) => Ok(()),
        (other, Some(_)) => Err(format!(
            "timeout_ms only applies to ask rules, this one is {}",
            other.as_str()
        )),
    }
}

/// The tool of a `Tool(argument)` rule and what the argument matches.
fn parse_tool_rule(text: &str) -> Result<(Selector, Target), String> {
    let text = text.trim();
    let (name, argument) = match text.find('(') {
        Some(open) => {
            let Some(inner) = text[open + 1..].strip_suffix(')') else {
                return Err("a `(` without its closing `)` at the end".into());
            };
            (text[..open].trim(), Some(inner.trim()))
        }
        None if text.contains(')') => return Err("a `)` without its `(`".into()),
        None => (text, None),
    };
    let (selector, family) = Selector::for_name(name)?;
    let Some(argument) = argument else {
        return Ok((selector, Target::Tool));
    };
    if argument.is_empty() {
        return Err(format!(
            "{name}() is empty: write {name} alone for every use of the tool"
        ));
    }
    let target = match family {
        Family::Command => {
            let pattern = CommandPattern::parse(argument)?;
            if pattern.is_empty() {
                Target::Tool
            } else {
                Target::Commands(vec![pattern])
            }
        }
        Family::Path => Target::Path(parse_glob(argument)?),
        Family::Domain => match argument.strip_prefix("domain:") {
            Some(domain) => {
                let (domain, subdomains_only) = parse_domain(domain.trim())?;
                Target::Domain(domain, subdomains_only)
            }
            None => {
                return Err(format!(
                    "{name}({argument}): write {name}(domain:example.com), or {name} alone for every URL"
                ))
            }
        },
        Family::Plain => {
            return Err(format!(
                "{name} takes no argument in parentheses (only command, file and fetch tools do)"
            ))
        }
    };
    Ok((selector, target))
}

fn quote_words(words: &[PatternWord]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|word| match word {
            PatternWord::One(word) => format!("{word:?}"),
            PatternWord::Alternatives(words) => format!("{words:?}"),
        })
        .collect();
    format!("[{}]", quoted.join(", "))
}

impl Compiler<'_> {
    fn line(&self, offset: usize) -> usize {
        self.lines.line(offset)
    }

    fn push(&mut self, rule: Rule, target: Target) {
        self.rules.push(rule);
        self.targets.push(target);
    }

    fn list_entry(
        &mut self,
        decision: Decision,
        entry: &Spanned<ListEntry>,
    ) -> Result<(), RulesError> {
        let line = self.line(entry.span().start);
        let list = entry.get_ref();
        let context = format!("{} entry {:?}", decision.as_str(), list.rule);
        let (selector, target) =
            parse_tool_rule(&list.rule).map_err(|problem| invalid(line, &context, problem))?;
        check_timeout(decision, list.timeout_ms)
            .map_err(|problem| invalid(line, &context, problem))?;
        let label = format!("{} rule {:?}", decision.as_str(), list.rule.trim());
        self.push(
            Rule {
                decision,
                priority: 0,
                reason: list.reason.clone().unwrap_or_else(|| label.clone()),
                label,
                timeout_ms: list.timeout_ms,
                selector,
                modes: None,
                args: None,
                allow_redirection: false,
            },
            target,
        );
        Ok(())
    }

    fn prefix_rule(&mut self, spanned: &Spanned<RawPrefixRule>) -> Result<(), RulesError> {
        let line = self.line(spanned.span().start);
        let raw = spanned.get_ref();
        let shown = quote_words(&raw.pattern);
        let context = format!("[[prefix_rule]] pattern = {shown}");
        let fail = |problem: String| invalid(line, &context, problem);
        let decision =
            parse_decision(raw.decision.as_deref(), "allow, prompt or forbidden").map_err(fail)?;
        check_timeout(decision, raw.timeout_ms).map_err(fail)?;
        let words = raw
            .pattern
            .iter()
            .map(|word| match word {
                PatternWord::One(word) => vec![word.clone()],
                PatternWord::Alternatives(words) => words.clone(),
            })
            .collect();
        let pattern = CommandPattern::from_words(words).map_err(fail)?;
        if pattern.is_empty() {
            return Err(fail(
                "the pattern is empty (write [[rule]] toolName = \"run_shell_command\" for every command)"
                    .into(),
            ));
        }
        for (expected, examples) in [(true, &raw.matches), (false, &raw.not_match)] {
            for example in examples {
                let (shown_example, words) = match example {
                    CommandExample::Line(line) => (
                        line.clone(),
                        shlex::split(line).ok_or_else(|| {
                            fail(format!("example {line:?} has unbalanced quotes"))
                        })?,
                    ),
                    CommandExample::Words(words) => (format!("{words:?}"), words.clone()),
                };
                if pattern.matches(&words) != expected {
                    return Err(fail(if expected {
                        format!("its match example {shown_example:?} does not match the pattern")
                    } else {
                        format!("its not_match example {shown_example:?} matches the pattern")
                    }));
                }
            }
        }
        let modes = parse_modes(&raw.modes).map_err(fail)?;
        let label = format!("{} prefix_rule {shown}", decision.as_str());
        self.push(
            Rule {
                decision,
                priority: raw.priority.unwrap_or(0),
                reason: raw.reason.clone().unwrap_or_else(|| label.clone()),
                label,
                timeout_ms: raw.timeout_ms,
                selector: command_selector(),
                modes,
                args: None,
                allow_redirection: false,
            },
            Target::Commands(vec![pattern]),
        );
        Ok(())
    }

    fn gemini_rule(&mut self, number: usize, spanned: &Spanned<RawRule>) -> Result<(), RulesError> {
        let line = self.line(spanned.span().start);
        let raw = spanned.get_ref();
        let context = format!("[[rule]] #{number}");
        let fail = |problem: String| invalid(line, &context, problem);
        let decision =
            parse_decision(raw.decision.as_deref(), "allow, ask_user or deny").map_err(fail)?;
        check_timeout(decision, raw.timeout_ms).map_err(fail)?;
        let tool_names = raw.tool_name.clone().map(|names| names.into_vec());
        let mut summary = Vec::new();

        let selector = if let Some(server) = &raw.mcp_server {
            if server.is_empty() {
                return Err(fail("mcpServer is empty".into()));
            }
            let tools: Vec<Option<String>> = match (&raw.mcp_tool, &tool_names) {
                (Some(_), Some(_)) => {
                    return Err(fail(
                        "give the MCP tool as mcpTool or toolName, not both".into(),
                    ))
                }
                (Some(tool), None) => vec![Some(tool.clone())],
                (None, Some(names)) => names
                    .iter()
                    .map(|name| (name != "*").then(|| name.clone()))
                    .collect(),
                (None, None) => vec![None],
            };
            summary.push(format!("mcpServer {server:?}"));
            if let Some(tool) = raw
                .mcp_tool
                .as_ref()
                .or(tool_names.as_ref().and_then(|n| n.first()))
            {
                summary.push(format!("tool {tool:?}"));
            }
            Selector {
                mcp: tools
                    .into_iter()
                    .map(|tool| (server.clone(), tool))
                    .collect(),
                ..Selector::default()
            }
        } else if raw.mcp_tool.is_some() {
            return Err(fail("mcpTool needs mcpServer".into()));
        } else if let Some(names) = &tool_names {
            if names.is_empty() {
                return Err(fail("toolName is an empty list".into()));
            }
            let mut merged = Selector::default();
            for name in names {
                let (selector, family) = Selector::for_name(name).map_err(&fail)?;
                if raw.command_prefix.is_some() && family != Family::Command && !selector.any {
                    return Err(fail(format!(
                        "commandPrefix needs a shell tool, and toolName {name:?} is not one"
                    )));
                }
                merged.any |= selector.any;
                merged.kinds |= selector.kinds;
                merged.names.extend(selector.names);
                merged.mcp.extend(selector.mcp);
            }
            summary.push(format!("toolName {}", names.join("|")));
            if raw.command_prefix.is_some() && merged.any {
                // `toolName = "*"` with a command prefix: shell tools only.
                merged = command_selector();
            }
            merged
        } else if raw.command_prefix.is_some() {
            command_selector()
        } else {
            Selector {
                any: true,
                ..Selector::default()
            }
        };

        let target = match &raw.command_prefix {
            None => Target::Tool,
            Some(prefixes) => {
                let prefixes = prefixes.clone().into_vec();
                if prefixes.is_empty() {
                    return Err(fail("commandPrefix is an empty list".into()));
                }
                let mut patterns = Vec::new();
                for prefix in &prefixes {
                    let pattern = CommandPattern::parse(prefix)
                        .map_err(|problem| fail(format!("commandPrefix {prefix:?}: {problem}")))?;
                    patterns.push(pattern);
                }
                summary.push(format!("commandPrefix {}", prefixes.join("|")));
                if patterns.iter().any(CommandPattern::is_empty) {
                    Target::Tool
                } else {
                    Target::Commands(patterns)
                }
            }
        };
        let args = match &raw.args_pattern {
            None => None,
            Some(pattern) => {
                // Only parsed here (cheap); compiled once, with the others,
                // into one RegexSet in `finish`.
                regex_syntax::Parser::new()
                    .parse(pattern)
                    .map_err(|error| fail(format!("argsPattern is not a valid regex: {error}")))?;
                summary.push(format!("argsPattern {pattern:?}"));
                self.args_patterns.push((pattern.clone(), line));
                Some(self.args_patterns.len() - 1)
            }
        };
        let modes = parse_modes(&raw.modes).map_err(fail)?;
        let label = if summary.is_empty() {
            format!("{} [[rule]] #{number}", decision.as_str())
        } else {
            format!(
                "{} [[rule]] #{number} ({})",
                decision.as_str(),
                summary.join(", ")
            )
        };
        self.push(
            Rule {
                decision,
                priority: raw.priority.unwrap_or(0),
                reason: raw.reason.clone().unwrap_or_else(|| label.clone()),
                label,
                timeout_ms: raw.timeout_ms,
                selector,
                modes,
                args,
                allow_redirection: raw.allow_redirection.unwrap_or(false),
            },
            target,
        );
        Ok(())
    }

    /// Builds the indices. Rules that are not active in the configured mode
    /// are checked but left out.
    fn finish(
        self,
        session: SessionRules,
        files: FileRules,
        ask_timeout_ms: Option<u64>,
    ) -> Result<Ruleset, RulesError> {
        let mut tools = ToolIndex::default();
        let mut commands = CommandTrie::default();
        let mut paths = PathGlobsBuilder::default();
        let mut domains = DomainIndex::default();
        for (index, (rule, target)) in self.rules.iter().zip(&self.targets).enumerate() {
            if rule.modes.is_some_and(|modes| modes & self.mode.bit() == 0) {
                continue;
            }
            let id = index as u32;
            match target {
                Target::Tool => tools.insert(&rule.selector, id),
                Target::Commands(patterns) => {
                    for pattern in patterns {
                        commands.insert(pattern, id);
                    }
                }
                Target::Path(glob) => paths
                    .add(glob, id)
                    .map_err(|problem| invalid(1, rule.label.clone(), problem))?,
                Target::Domain(domain, subdomains_only) => {
                    domains.insert(domain.clone(), *subdomains_only, id)
                }
            }
        }
        let args = if self.args_patterns.is_empty() {
            None
        } else {
            let patterns = self.args_patterns.iter().map(|(pattern, _)| pattern);
            Some(RegexSet::new(patterns).map_err(|error| {
                // Name the culprit: compile them one by one (error path only).
                let culprit = self.args_patterns.iter().find_map(|(pattern, line)| {
                    regex::Regex::new(pattern)
                        .err()
                        .map(|error| (pattern, *line, error))
                });
                match culprit {
                    Some((pattern, line, error)) => invalid(
                        line,
                        format!("argsPattern {pattern:?}"),
                        format!("not a usable regex: {error}"),
                    ),
                    None => invalid(
                        self.args_patterns[0].1,
                        "argsPattern",
                        format!("the patterns do not compile together: {error}"),
                    ),
                }
            })?)
        };
        Ok(Ruleset {
            mode: self.mode,
            ask_timeout_ms,
            rules: self.rules,
            tools,
            commands,
            paths: paths
                .build()
                .map_err(|problem| invalid(1, "path rules", problem))?,
            domains,
            args,
            session,
            files,
        })
    }
}

/// The shell tools, whatever the agent calls them.
fn command_selector() -> Selector {
    Selector {
        kinds: tools::EXECUTE,
        names: vec!["Bash".into(), "run_shell_command".into(), "shell".into()],
        ..Selector::default()
    }
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs one `[[example]]` against the compiled rules.
fn check_example(
    lines: &Lines,
    ruleset: &Ruleset,
    number: usize,
    spanned: &Spanned<RawExample>,
) -> Result<(), RulesError> {
    let line = lines.line(spanned.span().start);
    let raw = spanned.get_ref();
    let name = match &raw.name {
        Some(name) => format!("{name:?}"),
        None => format!("#{number}"),
    };
    let context = format!("[[example]] {name}");
    let fail = |problem: String| invalid(line, &context, problem);
    let expected = match raw.expect.as_str() {
        "allow" => Decision::Allow,
        "ask" => Decision::Ask,
        "deny" => Decision::Deny,
        other => {
            return Err(fail(format!(
                "expect = {other:?}: expected allow, ask or deny"
            )))
        }
    };
    let workspace = raw.workspace.clone().unwrap_or_else(|| "/workspace".into());
    if !workspace.starts_with('/') {
        return Err(fail(format!("workspace {workspace:?} must be absolute")));
    }
    let mut locations = Vec::new();
    for path in &raw.paths {
        if path.split('/').any(|part| part == "..") {
            return Err(fail(format!("path {path:?}: write it without `..`")));
        }
        let resolved = if path.starts_with('/') {
            path.clone()
        } else {
            format!(
                "{}/{}",
                workspace.trim_end_matches('/'),
                path.trim_start_matches("./")
            )
        };
        locations.push(ResolvedPath {
            requested: path.clone(),
            inside_workspace: relative_to(&resolved, &workspace).is_some(),
            resolved,
            exists: true,
        });
    }
    let ctx = Context {
        session_id: "example".into(),
        workspace: workspace.clone(),
        agent: AgentInfo {
            name: "example".into(),
            command: "example".into(),
            mode: None,
        },
        scope: SessionScope::Single,
        phase: Phase::Running,
    };

    let (got, reason) = if let Some(access) = &raw.access {
        let access = match access.as_str() {
            "read" => FileAccess::Read,
            "write" => FileAccess::Write,
            other => return Err(fail(format!("access = {other:?}: expected read or write"))),
        };
        if locations.len() != 1 {
            return Err(fail(
                "a file access example takes exactly one path in paths".into(),
            ));
        }
        if raw.tool.is_some() || raw.kind.is_some() || raw.command.is_some() || raw.url.is_some() {
            return Err(fail(
                "a file access example takes only access and paths (no tool, kind, command, url)"
                    .into(),
            ));
        }
        if expected == Decision::Ask {
            return Err(fail(
                "a file access is allowed or denied, never asked".into(),
            ));
        }
        let decision = ruleset.file_access(&ctx, access, &locations[0]);
        let got = if decision.allow {
            Decision::Allow
        } else {
            Decision::Deny
        };
        (got, decision.reason)
    } else {
        let kind = match (&raw.kind, &raw.tool) {
            (Some(kind), _) => tools::kind_from_name(kind).ok_or_else(|| {
                fail(format!(
                    "kind = {kind:?}: expected read, edit, delete, move, search, execute, think, fetch or switch_mode"
                ))
            })?,
            (None, Some(tool)) => kind_for_tool(tool),
            (None, None) => {
                return Err(fail(
                    "say which tool: tool = \"Bash\" (a tool name) or kind = \"execute\"".into(),
                ))
            }
        };
        let raw_input = match (&raw.raw_input, &raw.command) {
            (Some(input), _) => input.clone(),
            (None, Some(command)) => format!("{{\"command\":{}}}", json_string(command)),
            (None, None) => "null".into(),
        };
        let call = ToolCall {
            tool_call_id: format!("example-{number}"),
            kind,
            tool_name: raw.tool.clone(),
            title: name.clone(),
            command: raw.command.clone(),
            url: raw.url.clone(),
            locations,
            raw_input,
        };
        let outcome = ruleset.evaluate(&ctx, &call);
        (outcome.decision, outcome.reason)
    };
    if got != expected {
        return Err(RulesError::Example {
            line,
            name,
            expected: expected.as_str(),
            got: got.as_str(),
            reason,
        });
    }
    Ok(())
}
