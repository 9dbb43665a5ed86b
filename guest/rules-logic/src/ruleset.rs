//! A compiled ruleset and its decisions.
//!
//! How a permission request is decided (README.md has the operator's
//! version):
//! 1. The call is cut into parts: the simple commands of its shell command
//!    (see [`crate::shell`]), else its locations, else the call as a whole.
//! 2. For each part, the rules that match it compete: the highest
//!    `priority` wins (0 when not set); among equal priorities deny beats
//!    ask beats allow; among equals the rule written first gives the reason.
//!    No rule matching gives the default: allow for a read or search inside
//!    the workspace, ask for everything else.
//! 3. An allow that does not cover a hazard of its command (substitution,
//!    redirection to a file, …) becomes ask.
//! 4. The mode overlays it (not for rules that name the mode in `modes`):
//!    `plan` denies edit, delete, move and execute; `auto-edit` allows an
//!    asked edit inside the workspace; `yolo` allows whatever was asked.
//! 5. The strictest part decides the call.

use std::collections::HashMap;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use qserve_policy_logic::{AccessDecision, Context, FileAccess, ResolvedPath, ToolCall, ToolKind};
use regex::{RegexSet, SetMatches};

use crate::matchers::{CommandTrie, DomainIndex, PathGlobs};
use crate::shell::{self, Hazard, Part};
use crate::tools::{self, CallTool, Selector, KIND_COUNT};

/// What a rule or the ruleset says about a tool call, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Decision {
    Allow,
    Ask,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Ask => "ask",
            Self::Deny => "deny",
        }
    }

    /// The three vocabularies: ours and Claude Code's (`allow`, `ask`,
    /// `deny`), Codex's (`prompt`, `forbidden`), Gemini CLI's (`ask_user`).
    pub(crate) fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "allow" => Self::Allow,
            "ask" | "ask_user" | "prompt" => Self::Ask,
            "deny" | "forbidden" => Self::Deny,
            _ => None?,
        })
    }
}

/// The approval mode overlaid on the rules (`mode = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Look, don't touch: edit, delete, move and execute are denied.
    Plan,
    /// The rules as written; what no rule matches is asked.
    #[default]
    Default,
    /// Edits whose every location is inside the workspace are allowed
    /// unless a rule denies them (an ask is lifted, as in yolo).
    AutoEdit,
    /// Everything not denied is allowed.
    Yolo,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Default => "default",
            Self::AutoEdit => "auto-edit",
            Self::Yolo => "yolo",
        }
    }

    /// Ours, and the spellings of Gemini CLI (`autoEdit`) and Claude Code
    /// (`acceptEdits`, `bypassPermissions`).
    pub(crate) fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "plan" => Self::Plan,
            "default" => Self::Default,
            "auto-edit" | "auto_edit" | "autoEdit" | "acceptEdits" => Self::AutoEdit,
            "yolo" | "bypassPermissions" => Self::Yolo,
            _ => None?,
        })
    }

    pub(crate) fn bit(self) -> u8 {
        match self {
            Self::Plan => 1,
            Self::Default => 2,
            Self::AutoEdit => 4,
            Self::Yolo => 8,
        }
    }
}

/// A decision on a permission request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// Shown to the clients and kept in the decision log.
    pub reason: String,
    /// For [`Decision::Ask`]: how long the clients have (None = the
    /// daemon's `--permission-timeout`).
    pub timeout_ms: Option<u64>,
}

/// One compiled rule. Its matcher lives in the ruleset's indices, which
/// refer back to it by position.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub decision: Decision,
    pub priority: i64,
    /// How the rule is named in reasons: `deny rule "Bash(git push:*)"`.
    pub label: String,
    /// The reason shown when it decides: its `reason`, else its label.
    pub reason: String,
    pub timeout_ms: Option<u64>,
    pub selector: Selector,
    /// Modes it is active in (bits of [`Mode::bit`]); `None` = every mode.
    pub modes: Option<u8>,
    /// Its `argsPattern`, by position in the ruleset's `RegexSet`.
    pub args: Option<usize>,
    /// Gemini's `allowRedirection`: an allow that covers redirections.
    pub allow_redirection: bool,
}

/// Tool-only rules (no command, path or domain), by what they select.
#[derive(Debug, Default)]
pub(crate) struct ToolIndex {
    any: Vec<u32>,
    by_kind: [Vec<u32>; KIND_COUNT],
    by_name: HashMap<String, Vec<u32>>,
    by_mcp_server: HashMap<String, Vec<u32>>,
    any_mcp: Vec<u32>,
}

impl ToolIndex {
    pub fn insert(&mut self, selector: &Selector, rule: u32) {
        if selector.any {
            self.any.push(rule);
        }
        for (bit, rules) in self.by_kind.iter_mut().enumerate() {
            if selector.kinds & (1 << bit) != 0 {
                rules.push(rule);
            }
        }
        for name in &selector.names {
            self.by_name.entry(name.clone()).or_default().push(rule);
        }
        for (server, _) in &selector.mcp {
            if server == "*" {
                self.any_mcp.push(rule);
            } else {
                self.by_mcp_server
                    .entry(server.clone())
                    .or_default()
                    .push(rule);
            }
        }
    }

    fn walk(&self, tool: &CallTool<'_>, mut visit: impl FnMut(u32)) {
        self.any.iter().copied().for_each(&mut visit);
        let bit = tool.kind_bit.trailing_zeros() as usize;
        if let Some(rules) = self.by_kind.get(bit) {
            rules.iter().copied().for_each(&mut visit);
        }
        if let Some(rules) = tool.name.and_then(|name| self.by_name.get(name)) {
            rules.iter().copied().for_each(&mut visit);
        }
        if let Some((server, _)) = tool.mcp {
            self.any_mcp.iter().copied().for_each(&mut visit);
            if let Some(rules) = self.by_mcp_server.get(server) {
                rules.iter().copied().for_each(&mut visit);
            }
        }
    }
}

/// What the agent may do through the daemon's file system methods when no
/// glob says otherwise (`[files] workspace = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkspaceAccess {
    #[default]
    ReadWrite,
    ReadOnly,
    None,
}

impl WorkspaceAccess {
    pub(crate) fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "read-write" => Self::ReadWrite,
            "read-only" => Self::ReadOnly,
            "none" => Self::None,
            _ => None?,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadWrite => "read-write",
            Self::ReadOnly => "read-only",
            Self::None => "none",
        }
    }
}

/// `[files]`: the agent's reads and writes through the daemon.
#[derive(Debug, Default)]
pub(crate) struct FileRules {
    pub workspace: WorkspaceAccess,
    pub read: PathGlobs,
    pub read_text: Vec<String>,
    pub write: PathGlobs,
    pub write_text: Vec<String>,
    pub deny: PathGlobs,
    pub deny_text: Vec<String>,
}

/// `[session]`: where sessions may be opened.
#[derive(Debug)]
pub(crate) struct SessionRules {
    pub roots_text: Vec<String>,
    pub roots: GlobSet,
    /// Which root each glob of `roots` came from.
    pub root_owner: Vec<usize>,
}

impl Default for SessionRules {
    fn default() -> Self {
        Self {
            roots_text: Vec::new(),
            roots: GlobSet::empty(),
            root_owner: Vec::new(),
        }
    }
}

impl SessionRules {
    /// Compiles `allowed_roots`: absolute globs where `*` is one path
    /// component; a workspace must be a root or beneath one.
    pub(crate) fn new(roots: Vec<String>) -> Result<Self, (usize, String)> {
        let mut builder = GlobSetBuilder::new();
        let mut root_owner = Vec::new();
        for (index, root) in roots.iter().enumerate() {
            if !root.starts_with('/') {
                return Err((
                    index,
                    format!("allowed root {root:?} must be an absolute path (globs allowed, e.g. \"/home/*/src\")"),
                ));
            }
            let trimmed = root.trim_end_matches('/');
            let patterns = if trimmed.is_empty() {
                vec!["/**".to_owned()]
            } else {
                vec![trimmed.to_owned(), format!("{trimmed}/**")]
            };
            for pattern in patterns {
                let glob = GlobBuilder::new(&pattern)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|error| (index, format!("allowed root {root:?}: {}", error.kind())))?;
                builder.add(glob);
                root_owner.push(index);
            }
        }
        let roots_set = builder
            .build()
            .map_err(|error| (0, format!("allowed roots: {error}")))?;
        Ok(Self {
            roots_text: roots,
            roots: roots_set,
            root_owner,
        })
    }
}

/// A checked, compiled rules config: what `RulesPolicy` decides with.
#[derive(Debug)]
pub struct Ruleset {
    pub(crate) mode: Mode,
    pub(crate) ask_timeout_ms: Option<u64>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) tools: ToolIndex,
    pub(crate) commands: CommandTrie,
    pub(crate) paths: PathGlobs,
    pub(crate) domains: DomainIndex,
    pub(crate) args: Option<RegexSet>,
    pub(crate) session: SessionRules,
    pub(crate) files: FileRules,
}

impl Default for Ruleset {
    /// The empty config's ruleset.
    fn default() -> Self {
        Self::parse("").expect("the empty config is valid")
    }
}

/// Why a part got its decision; turned into words only once, at the end.
#[derive(Debug, Clone, Copy)]
enum Why {
    Rule(u32),
    /// An allow rule that does not cover the command's hazard.
    Uncovered(u32, Hazard),
    Hazard(Hazard),
    ReadInside,
    NoRule,
    Plan,
    AutoEdit,
    Yolo,
}

#[derive(Debug, Clone, Copy)]
struct PartVerdict {
    decision: Decision,
    why: Why,
    timeout_ms: Option<u64>,
    /// Decided by a rule that names the current mode: no overlay.
    mode_specific: bool,
}

#[derive(Clone, Copy)]
enum PartRef<'a> {
    Command(&'a Part),
    Location(&'a ResolvedPath),
    Whole,
}

/// What every part of one call shares.
struct CallScope<'a> {
    ctx: &'a Context,
    kind: &'a ToolKind,
    tool: CallTool<'a>,
    host: Option<&'a str>,
    args: Option<&'a SetMatches>,
}

impl Ruleset {
    /// Parses, checks and compiles a config document (see README.md).
    pub fn parse(config: &str) -> Result<Self, crate::RulesError> {
        crate::compile::compile(config)
    }

    /// The mode the rules run in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// How many rules there are (every style counted).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides a permission request.
    pub fn evaluate(&self, ctx: &Context, call: &ToolCall) -> Outcome {
        self.evaluate_traced(ctx, call).0
    }

    /// Every rule's label (`deny rule "Bash(git push)"`), in config order:
    /// what `policy test --coverage` checks off.
    pub fn rule_labels(&self) -> Vec<String> {
        self.rules.iter().map(|rule| rule.label.clone()).collect()
    }

    /// [`Ruleset::evaluate`], plus the label of the rule that decided (none
    /// when a default or a mode decided).
    pub fn evaluate_traced(&self, ctx: &Context, call: &ToolCall) -> (Outcome, Option<String>) {
        let host = if self.domains.is_empty() {
            None
        } else {
            call.url.as_deref().and_then(crate::matchers::url_host)
        };
        let args = self.args.as_ref().map(|set| set.matches(&call.raw_input));
        let scope = CallScope {
            ctx,
            kind: &call.kind,
            tool: CallTool::new(&call.kind, call.tool_name.as_deref()),
            host: host.as_deref(),
            args: args.as_ref(),
        };
        let mut scratch = Vec::new();
        let mut worst: Option<PartVerdict> = None;
        let mut take = |verdict: Option<PartVerdict>| {
            if let Some(verdict) = verdict {
                if worst.is_none_or(|known| verdict.decision > known.decision) {
                    worst = Some(verdict);
                }
            }
        };
        match call.command.as_deref() {
            Some(command) if !command.trim().is_empty() => {
                for part in &shell::parse(command) {
                    take(self.part(&scope, PartRef::Command(part), &mut scratch));
                }
            }
            _ => {
                for location in &call.locations {
                    take(self.part(&scope, PartRef::Location(location), &mut scratch));
                }
            }
        }
        let verdict = match worst {
            Some(verdict) => verdict,
            None => self
                .part(&scope, PartRef::Whole, &mut scratch)
                .expect("a whole call always gets a verdict"),
        };
        let rule = match verdict.why {
            Why::Rule(rule) | Why::Uncovered(rule, _) => {
                Some(self.rules[rule as usize].label.clone())
            }
            _ => None,
        };
        let outcome = Outcome {
            decision: verdict.decision,
            reason: self.words(verdict.why),
            timeout_ms: match verdict.decision {
                Decision::Ask => verdict.timeout_ms.or(self.ask_timeout_ms),
                _ => None,
            },
        };
        (outcome, rule)
    }

    /// The best rule for one part, or the default, with the overlays.
    /// `None` for a command inside another that no deny or ask rule names.
    fn part(
        &self,
        scope: &CallScope<'_>,
        part: PartRef<'_>,
        scratch: &mut Vec<usize>,
    ) -> Option<PartVerdict> {
        let as_written = !matches!(part, PartRef::Command(command) if command.literal.is_none());
        let mut best: Option<u32> = None;
        let mut offer = |rule: u32, allow_ok: bool| {
            let candidate = &self.rules[rule as usize];
            if !allow_ok && candidate.decision == Decision::Allow {
                return;
            }
            if !candidate.selector.matches(&scope.tool) {
                return;
            }
            if let Some(index) = candidate.args {
                if !scope.args.is_some_and(|matches| matches.matched(index)) {
                    return;
                }
            }
            best = Some(match best {
                None => rule,
                Some(known) => {
                    let current = &self.rules[known as usize];
                    let better = (candidate.priority, candidate.decision)
                        > (current.priority, current.decision)
                        || ((candidate.priority, candidate.decision)
                            == (current.priority, current.decision)
                            && rule < known);
                    if better {
                        rule
                    } else {
                        known
                    }
                }
            });
        };
        self.tools.walk(&scope.tool, |rule| offer(rule, as_written));
        if let Some(host) = scope.host {
            self.domains.walk(host, |rule| offer(rule, as_written));
        }
        let mut hazard = None;
        match part {
            PartRef::Command(command) => {
                hazard = command.hazard;
                if let Some(words) = &command.literal {
                    self.commands.walk(words, |rule| offer(rule, true));
                }
                for words in &command.shadows {
                    self.commands.walk(words, |rule| offer(rule, false));
                }
            }
            PartRef::Location(location) => {
                self.paths.walk(
                    &location.resolved,
                    location.inside_workspace,
                    &scope.ctx.workspace,
                    scratch,
                    |rule| offer(rule, true),
                );
            }
            PartRef::Whole => {}
        }
        let mut verdict = match best {
            Some(index) => {
                let rule = &self.rules[index as usize];
                let mut verdict = PartVerdict {
                    decision: rule.decision,
                    why: Why::Rule(index),
                    timeout_ms: rule.timeout_ms,
                    mode_specific: rule.modes.is_some(),
                };
                if let Some(hazard) = hazard {
                    let covered = hazard == Hazard::Redirect && rule.allow_redirection;
                    if rule.decision == Decision::Allow && !covered {
                        verdict.decision = Decision::Ask;
                        verdict.why = Why::Uncovered(index, hazard);
                        verdict.timeout_ms = None;
                    }
                }
                verdict
            }
            None if !as_written => {
                // A command inside another: only its deny and ask rules
                // count, and a line too complex to follow is asked.
                return hazard.map(|hazard| PartVerdict {
                    decision: Decision::Ask,
                    why: Why::Hazard(hazard),
                    timeout_ms: None,
                    mode_specific: false,
                });
            }
            None => self.default_verdict(scope, part),
        };
        if !verdict.mode_specific {
            self.overlay(scope, part, &mut verdict);
        }
        Some(verdict)
    }

    fn default_verdict(&self, scope: &CallScope<'_>, part: PartRef<'_>) -> PartVerdict {
        let looks = matches!(scope.kind, ToolKind::Read | ToolKind::Search);
        let inside = matches!(part, PartRef::Location(location) if location.inside_workspace);
        let (decision, why) = if looks && inside {
            (Decision::Allow, Why::ReadInside)
        } else {
            (Decision::Ask, Why::NoRule)
        };
        PartVerdict {
            decision,
            why,
            timeout_ms: None,
            mode_specific: false,
        }
    }

    fn overlay(&self, scope: &CallScope<'_>, part: PartRef<'_>, verdict: &mut PartVerdict) {
        match self.mode {
            Mode::Default => {}
            Mode::Plan => {
                if matches!(
                    scope.kind,
                    ToolKind::Edit | ToolKind::Delete | ToolKind::Move | ToolKind::Execute
                ) {
                    verdict.decision = Decision::Deny;
                    verdict.why = Why::Plan;
                }
            }
            Mode::AutoEdit => {
                let inside =
                    matches!(part, PartRef::Location(location) if location.inside_workspace);
                if verdict.decision == Decision::Ask && *scope.kind == ToolKind::Edit && inside {
                    verdict.decision = Decision::Allow;
                    verdict.why = Why::AutoEdit;
                }
            }
            Mode::Yolo => {
                if verdict.decision == Decision::Ask {
                    verdict.decision = Decision::Allow;
                    verdict.why = Why::Yolo;
                }
            }
        }
    }

    fn words(&self, why: Why) -> String {
        match why {
            Why::Rule(rule) => self.rules[rule as usize].reason.clone(),
            Why::Uncovered(rule, hazard) => format!(
                "{} does not cover {}; asking",
                self.rules[rule as usize].label,
                hazard.describe()
            ),
            Why::Hazard(hazard) => format!("{}; asking", hazard.describe()),
            Why::ReadInside => "a read inside the workspace".into(),
            Why::NoRule => "no rule matched; asking the clients".into(),
            Why::Plan => "plan mode: no edits, deletions, moves or commands".into(),
            Why::AutoEdit => "auto-edit mode: an edit inside the workspace".into(),
            Why::Yolo => "yolo mode: no deny rule matched".into(),
        }
    }

    /// Decides a session create or attach by its workspace.
    pub fn session_access(&self, ctx: &Context) -> AccessDecision {
        let session = &self.session;
        if session.roots_text.is_empty() {
            return AccessDecision::allow("sessions are open in any workspace");
        }
        match session.roots.matches(ctx.workspace.as_str()).first() {
            Some(&index) => AccessDecision::allow(format!(
                "the workspace is under the allowed root {:?}",
                session.roots_text[session.root_owner[index]]
            )),
            None => AccessDecision::deny(format!(
                "the workspace {} is not under an allowed root ({})",
                ctx.workspace,
                session.roots_text.join(", ")
            )),
        }
    }

    /// Decides a read or write through the daemon.
    pub fn file_access(
        &self,
        ctx: &Context,
        access: FileAccess,
        path: &ResolvedPath,
    ) -> AccessDecision {
        let files = &self.files;
        let (resolved, inside, workspace) = (
            path.resolved.as_str(),
            path.inside_workspace,
            ctx.workspace.as_str(),
        );
        if let Some(index) = files.deny.first(resolved, inside, workspace) {
            return AccessDecision::deny(format!(
                "files.deny {:?}",
                files.deny_text[index as usize]
            ));
        }
        if access == FileAccess::Write && self.mode == Mode::Plan {
            return AccessDecision::deny("plan mode: no writes");
        }
        let workspace_grants = match access {
            FileAccess::Read => files.workspace != WorkspaceAccess::None,
            FileAccess::Write => files.workspace == WorkspaceAccess::ReadWrite,
        };
        if inside && workspace_grants {
            return AccessDecision::allow("inside the workspace");
        }
        if let Some(index) = files.write.first(resolved, inside, workspace) {
            return AccessDecision::allow(format!(
                "files.write {:?}",
                files.write_text[index as usize]
            ));
        }
        if access == FileAccess::Read {
            if let Some(index) = files.read.first(resolved, inside, workspace) {
                return AccessDecision::allow(format!(
                    "files.read {:?}",
                    files.read_text[index as usize]
                ));
            }
        }
        if inside {
            AccessDecision::deny(format!(
                "the workspace is {} for the agent (files.workspace)",
                files.workspace.as_str()
            ))
        } else {
            AccessDecision::deny(format!("outside the workspace {workspace}"))
        }
    }
}

/// The kinds selected by name in rules, for tests and examples.
pub(crate) fn kind_for_tool(name: &str) -> ToolKind {
    match tools::alias(name) {
        Some((bits, _)) => tools::first_kind(bits),
        None => ToolKind::Other(name.to_owned()),
    }
}
