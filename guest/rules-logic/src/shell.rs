//! Splitting a shell command line into the simple commands rules judge.
//!
//! A rule names a command by its first words (`git status`), but the agent
//! sends a whole command line: `git status && git push`, `FOO=1 git push`,
//! `bash -c "git push"`, `echo $(git push)`. Each simple command is judged on
//! its own and the strictest answer wins, so an allow of `git status` never
//! lets `git push` ride along.
//!
//! Two views of each simple command:
//! - **literal**: the words as written (after shell quoting is undone, and
//!   minus pure syntax such as `if`, `{`, `!`). All rules see it; only this
//!   view can be *allowed*, so `FOO=1 git status`, `sudo git status` and
//!   `/tmp/git status` are not allowed by an allow of `git status`.
//! - **shadows**: the same command seen through what does not change the
//!   program that runs: environment assignments, wrappers (`env`, `sudo`,
//!   `nohup`, `timeout 5`, `xargs`, …), a directory before the program name,
//!   git's global options (`git -C dir push`), and `find -exec`. Commands
//!   that run *inside* the line (`$(…)`, backticks, `<(…)`, `sh -c '…'`,
//!   `eval …`) become parts of their own. Deny and ask rules see all of
//!   these; allow rules never do: seeing through can only make a decision
//!   stricter.
//!
//! Constructs that can make an allowed command do more than its words say
//! are recorded as a [`Hazard`]: command substitution, output redirection to
//! a file, ANSI-C quoting, anything that does not parse. An allow rule does
//! not cover a command with a hazard: it is asked instead.
//!
//! Splitting on operators is done here (a small scanner that knows quotes,
//! `$(…)`, backticks and here-documents), word splitting of each simple
//! command by `shlex`. When in doubt the scanner splits more, never less.

/// Why an allow rule does not cover a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hazard {
    /// `$(…)`, backticks or `<(…)`: more commands run than the words show.
    Substitution,
    /// Output redirected to a file (not `/dev/null` or another descriptor).
    Redirect,
    /// `$'…'` quoting, which the word splitter does not know.
    AnsiQuote,
    /// Unbalanced quotes or parentheses, a trailing backslash.
    Unparsed,
    /// Nested `sh -c` / substitutions deeper than we follow, or too many parts.
    TooComplex,
}

impl Hazard {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Substitution => "command substitution",
            Self::Redirect => "output redirection to a file",
            Self::AnsiQuote => "$'…' quoting",
            Self::Unparsed => "a command line that does not parse",
            Self::TooComplex => "a command line nested too deeply",
        }
    }
}

/// One simple command of a command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Part {
    /// The words as written; `None` for a command that runs inside another
    /// one (only deny and ask rules look at it).
    pub literal: Option<Vec<String>>,
    /// The command seen through wrappers and assignments (deny and ask only).
    pub shadows: Vec<Vec<String>>,
    pub hazard: Option<Hazard>,
}

/// Deeper `sh -c` / `$(…)` nesting than this is not followed (and asked).
const MAX_DEPTH: usize = 8;
/// More simple commands than this in one line are not judged one by one.
const MAX_PARTS: usize = 256;
/// `$(` nested deeper than this in one line does not parse (the scanner
/// recurses; a hostile line must not exhaust the stack).
const MAX_NESTING: usize = 32;

/// Splits `command` into its simple commands (see the module docs).
pub(crate) fn parse(command: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    parse_into(command, 0, true, &mut parts);
    parts
}

fn parse_into(command: &str, depth: usize, top: bool, parts: &mut Vec<Part>) {
    if depth > MAX_DEPTH || parts.len() >= MAX_PARTS {
        parts.push(Part {
            literal: None,
            shadows: Vec::new(),
            hazard: Some(Hazard::TooComplex),
        });
        return;
    }
    let scanned = Scanner::scan(command);
    let (segments, inner) = match scanned {
        Ok(scanned) => (scanned.segments, scanned.inner),
        Err(()) => {
            // Unparsable: judge the whole line by its whitespace words (deny
            // and ask still apply), never allow it.
            let words = split_whitespace(command);
            if let Some(part) = simple_command(words, Some(Hazard::Unparsed), top, parts, depth) {
                parts.push(part);
            }
            return;
        }
    };
    for segment in segments {
        if parts.len() >= MAX_PARTS {
            parts.push(Part {
                literal: None,
                shadows: Vec::new(),
                hazard: Some(Hazard::TooComplex),
            });
            return;
        }
        let text = &command[segment.start..segment.end];
        let (words, hazard) = match shlex::split(text) {
            Some(words) => (words, segment.hazard),
            None => (
                split_whitespace(text),
                segment.hazard.or(Some(Hazard::Unparsed)),
            ),
        };
        if let Some(part) = simple_command(words, hazard, top, parts, depth) {
            parts.push(part);
        }
    }
    for body in inner {
        parse_into(&body, depth + 1, false, parts);
    }
}

fn split_whitespace(text: &str) -> Vec<String> {
    text.split_ascii_whitespace().map(str::to_owned).collect()
}

/// Words that are shell syntax, not a program.
fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "{" | "}"
            | "!"
            | "if"
            | "then"
            | "else"
            | "elif"
            | "fi"
            | "do"
            | "done"
            | "while"
            | "until"
            | "esac"
            | "[["
            | "]]"
    )
}

/// Builds the part for one simple command; its inner scripts (`sh -c`,
/// `eval`) are parsed into `parts` first. `None` for a command with no words.
fn simple_command(
    mut words: Vec<String>,
    hazard: Option<Hazard>,
    top: bool,
    parts: &mut Vec<Part>,
    depth: usize,
) -> Option<Part> {
    let syntax = words.iter().take_while(|word| is_keyword(word)).count();
    words.drain(..syntax);
    // Loop headers run nothing themselves (their substitutions are parts of
    // their own); `case` arms are split at `)`.
    if words.is_empty() || matches!(words[0].as_str(), "for" | "case" | "select" | "in") {
        return None;
    }
    let peeled = peel(&words);
    for script in &peeled.scripts {
        parse_into(script, depth + 1, false, parts);
    }
    let mut shadows: Vec<Vec<String>> = Vec::new();
    for shadow in peeled.shadows {
        if shadow != words && !shadows.contains(&shadow) {
            shadows.push(shadow);
        }
    }
    if top {
        Some(Part {
            literal: Some(words),
            shadows,
            hazard,
        })
    } else {
        // Inside another command: its hazards are the outer command's.
        shadows.insert(0, words);
        Some(Part {
            literal: None,
            shadows,
            hazard: None,
        })
    }
}

/// What a command runs, seen through wrappers.
#[derive(Debug, Default)]
struct Peeled {
    shadows: Vec<Vec<String>>,
    scripts: Vec<String>,
}

/// `NAME=value`, a shell variable assignment.
fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            let mut chars = name.chars();
            matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
                && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        }
        None => false,
    }
}

fn basename(word: &str) -> &str {
    match word.rsplit_once('/') {
        Some((_, name)) if !name.is_empty() => name,
        _ => word,
    }
}

/// A program that runs the rest of its words as a command: its options that
/// take a value (as separate words), and how many words follow the options
/// before the command (`timeout 5 cmd`).
struct Wrapper {
    valued: &'static [&'static str],
    positional: usize,
}

fn wrapper(name: &str) -> Option<Wrapper> {
    let (valued, positional): (&'static [&'static str], usize) = match name {
        "env" => (&["-u", "--unset", "-C", "--chdir"], 0),
        "command" | "builtin" | "nohup" | "setsid" | "unbuffer" => (&[], 0),
        "exec" => (&["-a"], 0),
        "time" => (&["-f", "--format", "-o", "--output"], 0),
        "nice" => (&["-n", "--adjustment"], 0),
        "ionice" => (&["-c", "--class", "-n", "--classdata", "-p", "--pid"], 0),
        "stdbuf" => (&["-i", "-o", "-e", "--input", "--output", "--error"], 0),
        "sudo" => (
            &[
                "-u",
                "--user",
                "-g",
                "--group",
                "-h",
                "--host",
                "-p",
                "--prompt",
                "-C",
                "--close-from",
                "-D",
                "--chdir",
                "-r",
                "--role",
                "-t",
                "--type",
                "-U",
                "--other-user",
                "-T",
                "--command-timeout",
            ],
            0,
        ),
        "doas" => (&["-u", "-C"], 0),
        "timeout" => (&["-s", "--signal", "-k", "--kill-after"], 1),
        "xargs" => (
            &[
                "-n",
                "--max-args",
                "-I",
                "-L",
                "--max-lines",
                "-P",
                "--max-procs",
                "-d",
                "--delimiter",
                "-E",
                "-s",
                "--max-chars",
                "-a",
                "--arg-file",
            ],
            0,
        ),
        "watch" => (&["-n", "--interval", "-d"], 0),
        _ => return None,
    };
    Some(Wrapper { valued, positional })
}

const SHELLS: &[&str] = &["sh", "bash", "zsh", "dash", "ksh", "mksh", "fish"];

fn peel(words: &[String]) -> Peeled {
    let mut peeled = Peeled::default();
    let count = words.len();
    let mut i = 0;
    loop {
        while i < count && is_assignment(&words[i]) {
            i += 1;
        }
        if i >= count {
            return peeled;
        }
        let program = basename(&words[i]);
        if SHELLS.contains(&program) {
            // sh -c SCRIPT, sh -ec SCRIPT, bash -l -c SCRIPT
            let mut j = i + 1;
            while j < count && words[j].len() > 1 && words[j].starts_with(['-', '+']) {
                let option = &words[j];
                if !option.starts_with("--") && option[1..].contains('c') {
                    if let Some(script) = words.get(j + 1) {
                        peeled.scripts.push(script.clone());
                    }
                    break;
                }
                j += 1;
            }
            break;
        }
        if program == "eval" {
            peeled.scripts.push(words[i + 1..].join(" "));
            break;
        }
        let Some(wrapper) = wrapper(program) else {
            break;
        };
        let env = program == "env";
        i += 1;
        while i < count {
            let word = words[i].as_str();
            if word == "--" {
                i += 1;
                break;
            }
            if env && is_assignment(word) {
                i += 1;
                continue;
            }
            if env && matches!(word, "-S" | "--split-string") {
                if let Some(script) = words.get(i + 1) {
                    peeled.scripts.push(script.clone());
                }
                i += 2;
                continue;
            }
            if word.len() > 1 && word.starts_with('-') {
                i += if wrapper.valued.contains(&word) { 2 } else { 1 };
                continue;
            }
            break;
        }
        i = (i + wrapper.positional).min(count);
    }
    if i >= count {
        return peeled;
    }
    let mut program: Vec<String> = Vec::with_capacity(count - i);
    program.push(basename(&words[i]).to_owned());
    program.extend(words[i + 1..].iter().cloned());
    if program[0] == "git" {
        if let Some(git) = git_without_global_options(&program) {
            peeled.shadows.push(git);
        }
    }
    if program[0] == "find" {
        peeled.shadows.extend(find_exec(&program));
    }
    peeled.shadows.insert(0, program);
    peeled
}

/// `git -C dir -c k=v --no-pager push` → `git push`: a deny of `git push`
/// must not be dodged by a global option before the subcommand.
fn git_without_global_options(words: &[String]) -> Option<Vec<String>> {
    let mut i = 1;
    while i < words.len() && words[i].starts_with('-') {
        let valued = matches!(
            words[i].as_str(),
            "-C" | "-c"
                | "--git-dir"
                | "--work-tree"
                | "--namespace"
                | "--config-env"
                | "--super-prefix"
                | "--exec-path"
        );
        i += if valued { 2 } else { 1 };
    }
    if i == 1 || i >= words.len() {
        return None;
    }
    let mut git = vec!["git".to_owned()];
    git.extend(words[i..].iter().cloned());
    Some(git)
}

/// The commands `find … -exec CMD … ;` runs.
fn find_exec(words: &[String]) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut i = 1;
    while i < words.len() {
        if matches!(words[i].as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
            let start = i + 1;
            let mut end = start;
            while end < words.len() && !matches!(words[end].as_str(), ";" | "+") {
                end += 1;
            }
            if end > start {
                let mut command = vec![basename(&words[start]).to_owned()];
                command.extend(words[start + 1..end].iter().cloned());
                commands.push(command);
            }
            i = end;
        }
        i += 1;
    }
    commands
}

/// A simple command's byte range in the line, and its hazard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: usize,
    end: usize,
    hazard: Option<Hazard>,
}

struct Scanned {
    segments: Vec<Segment>,
    /// Bodies of `$(…)`, backticks and `<(…)` at the top level.
    inner: Vec<String>,
}

/// Finds the operators, substitutions and redirections of one command line.
struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    segments: Vec<Segment>,
    segment_start: usize,
    hazard: Option<Hazard>,
    inner: Vec<String>,
    /// How many `$(` the scanner is inside.
    nesting: usize,
}

type Scan<T> = Result<T, ()>;

impl<'a> Scanner<'a> {
    fn scan(text: &'a str) -> Scan<Scanned> {
        let mut scanner = Scanner {
            text,
            bytes: text.as_bytes(),
            segments: Vec::new(),
            segment_start: 0,
            hazard: None,
            inner: Vec::new(),
            nesting: 0,
        };
        let end = scanner.region(0, true)?;
        scanner.cut(end, end);
        Ok(Scanned {
            segments: scanner.segments,
            inner: scanner.inner,
        })
    }

    fn mark(&mut self, top: bool, hazard: Hazard) {
        if top && self.hazard.is_none() {
            self.hazard = Some(hazard);
        }
    }

    fn cut(&mut self, at: usize, next: usize) {
        if self.text[self.segment_start..at].trim().is_empty() {
            // Nothing to judge; a hazard found there (`> file` alone) still
            // belongs to the line.
            if self.hazard.is_some() {
                self.segments.push(Segment {
                    start: self.segment_start,
                    end: at,
                    hazard: self.hazard,
                });
            }
        } else {
            self.segments.push(Segment {
                start: self.segment_start,
                end: at,
                hazard: self.hazard,
            });
        }
        self.segment_start = next;
        self.hazard = None;
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.bytes.get(at).copied()
    }

    /// Scans from `at`: the top level to the end of the line; nested (inside
    /// `$(`) to its closing `)`, whose index it returns.
    fn region(&mut self, mut at: usize, top: bool) -> Scan<usize> {
        let mut depth = 0usize;
        let mut word_start = true;
        let mut heredocs: Vec<(String, bool, bool)> = Vec::new();
        while let Some(byte) = self.byte(at) {
            let next = self.byte(at + 1);
            let mut starts_word = false;
            match byte {
                b'\\' => {
                    if next.is_none() {
                        return Err(());
                    }
                    at += 2;
                }
                b'\'' => at = self.single(at + 1)?,
                b'"' => at = self.double(at + 1, top)?,
                b'`' => {
                    self.mark(top, Hazard::Substitution);
                    at = self.backtick(at + 1, top)?;
                }
                b'$' if next == Some(b'\'') => {
                    self.mark(top, Hazard::AnsiQuote);
                    at = self.ansi(at + 2)?;
                }
                b'$' if next == Some(b'(') => {
                    self.mark(top, Hazard::Substitution);
                    at = self.substitution(at + 2, top)?;
                }
                b'<' | b'>' if next == Some(b'(') => {
                    self.mark(top, Hazard::Substitution);
                    at = self.substitution(at + 2, top)?;
                }
                b'<' if next == Some(b'<') && self.byte(at + 2) != Some(b'<') => {
                    at = self.heredoc_start(at + 2, &mut heredocs)?;
                    starts_word = true;
                }
                b'>' => {
                    at = self.redirect(at + 1, top)?;
                    starts_word = true;
                }
                b'&' if next == Some(b'>') => {
                    at = self.redirect(at + 2, top)?;
                    starts_word = true;
                }
                b'#' if word_start => {
                    while self.byte(at).is_some_and(|byte| byte != b'\n') {
                        at += 1;
                    }
                    starts_word = true;
                }
                b'(' => {
                    if top {
                        self.cut(at, at + 1);
                    } else {
                        depth += 1;
                    }
                    at += 1;
                    starts_word = true;
                }
                b')' => {
                    if top {
                        self.cut(at, at + 1);
                    } else if depth == 0 {
                        return Ok(at);
                    } else {
                        depth -= 1;
                    }
                    at += 1;
                    starts_word = true;
                }
                b'\n' => {
                    let body_start = at + 1;
                    let after = self.heredoc_bodies(body_start, &mut heredocs, top)?;
                    if top {
                        self.cut(at, after);
                    }
                    at = after;
                    starts_word = true;
                }
                b';' | b'&' | b'|' => {
                    if top {
                        self.cut(at, at + 1);
                    }
                    at += 1;
                    starts_word = true;
                }
                b' ' | b'\t' => {
                    at += 1;
                    starts_word = true;
                }
                _ => at += 1,
            }
            word_start = starts_word;
        }
        if !heredocs.is_empty() || !top {
            // An unterminated here-document or `$(`.
            return Err(());
        }
        Ok(at.min(self.bytes.len()))
    }

    /// After `'`: to the closing quote.
    fn single(&self, from: usize) -> Scan<usize> {
        match self.bytes[from.min(self.bytes.len())..]
            .iter()
            .position(|&byte| byte == b'\'')
        {
            Some(offset) => Ok(from + offset + 1),
            None => Err(()),
        }
    }

    /// After `$'`: to the closing quote, backslash escapes honoured.
    fn ansi(&self, mut at: usize) -> Scan<usize> {
        while let Some(byte) = self.byte(at) {
            match byte {
                b'\\' => at += 2,
                b'\'' => return Ok(at + 1),
                _ => at += 1,
            }
        }
        Err(())
    }

    /// After `"`: to the closing quote; `$(…)` and backticks still run.
    fn double(&mut self, mut at: usize, top: bool) -> Scan<usize> {
        while let Some(byte) = self.byte(at) {
            match byte {
                b'\\' => at += 2,
                b'"' => return Ok(at + 1),
                b'$' if self.byte(at + 1) == Some(b'(') => {
                    self.mark(top, Hazard::Substitution);
                    at = self.substitution(at + 2, top)?;
                }
                b'`' => {
                    self.mark(top, Hazard::Substitution);
                    at = self.backtick(at + 1, top)?;
                }
                _ => at += 1,
            }
        }
        Err(())
    }

    /// After `$(`: to after the closing `)`, keeping the body when on top.
    fn substitution(&mut self, from: usize, top: bool) -> Scan<usize> {
        if self.nesting >= MAX_NESTING {
            return Err(());
        }
        self.nesting += 1;
        let end = self.region(from, false);
        self.nesting -= 1;
        let end = end?;
        if top {
            self.inner.push(self.text[from..end].to_owned());
        }
        Ok(end + 1)
    }

    /// After a backtick: to after the closing one, keeping the body (with
    /// its backslash escapes undone) when on top.
    fn backtick(&mut self, from: usize, top: bool) -> Scan<usize> {
        let mut body = String::new();
        let mut at = from;
        let mut run = from;
        while let Some(byte) = self.byte(at) {
            match byte {
                b'\\' => {
                    body.push_str(&self.text[run..at]);
                    run = at + 1;
                    at += 2;
                }
                b'`' => {
                    if top {
                        body.push_str(&self.text[run..at]);
                        self.inner.push(body);
                    }
                    return Ok(at + 1);
                }
                _ => at += 1,
            }
        }
        Err(())
    }

    /// After `>` or `&>`: checks where the output goes.
    fn redirect(&mut self, mut at: usize, top: bool) -> Scan<usize> {
        if matches!(self.byte(at), Some(b'>' | b'|')) {
            at += 1;
        }
        while matches!(self.byte(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        if self.byte(at) == Some(b'&') {
            let digits = at + 1;
            let mut end = digits;
            while self
                .byte(end)
                .is_some_and(|byte| byte.is_ascii_digit() || byte == b'-')
            {
                end += 1;
            }
            if end > digits {
                return Ok(end);
            }
            at += 1;
        }
        let start = at;
        while let Some(byte) = self.byte(at) {
            match byte {
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>' => break,
                b'\'' => {
                    self.mark(top, Hazard::Redirect);
                    at = self.single(at + 1)?;
                }
                b'"' => {
                    self.mark(top, Hazard::Redirect);
                    at = self.double(at + 1, top)?;
                }
                b'\\' => {
                    if self.byte(at + 1).is_none() {
                        return Err(());
                    }
                    self.mark(top, Hazard::Redirect);
                    at += 2;
                }
                b'$' | b'`' => {
                    // The target is computed: let the main loop see the
                    // substitution, and do not trust the target.
                    self.mark(top, Hazard::Redirect);
                    return Ok(at);
                }
                _ => at += 1,
            }
        }
        let target = &self.text[start..at.min(self.text.len())];
        if target.is_empty() {
            return Err(());
        }
        if !matches!(target, "/dev/null" | "/dev/stdout" | "/dev/stderr") {
            self.mark(top, Hazard::Redirect);
        }
        Ok(at)
    }

    /// After `<<`: reads the delimiter word; its body starts after the next
    /// newline.
    fn heredoc_start(
        &mut self,
        mut at: usize,
        heredocs: &mut Vec<(String, bool, bool)>,
    ) -> Scan<usize> {
        let strip_tabs = self.byte(at) == Some(b'-');
        if strip_tabs {
            at += 1;
        }
        while matches!(self.byte(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        let mut delimiter = String::new();
        let mut quoted = false;
        while let Some(byte) = self.byte(at) {
            match byte {
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>' => break,
                b'\'' => {
                    quoted = true;
                    let end = self.single(at + 1)?;
                    delimiter.push_str(&self.text[at + 1..end - 1]);
                    at = end;
                }
                b'"' => {
                    quoted = true;
                    let close = self.bytes[at + 1..]
                        .iter()
                        .position(|&byte| byte == b'"')
                        .ok_or(())?;
                    delimiter.push_str(&self.text[at + 1..at + 1 + close]);
                    at += close + 2;
                }
                b'\\' => {
                    quoted = true;
                    at += 1;
                }
                _ => {
                    let len = self.text[at..].chars().next().map_or(1, char::len_utf8);
                    delimiter.push_str(&self.text[at..at + len]);
                    at += len;
                }
            }
        }
        if delimiter.is_empty() {
            return Err(());
        }
        heredocs.push((delimiter, quoted, strip_tabs));
        Ok(at)
    }

    /// At the start of a line: skips the bodies of pending here-documents.
    /// An unquoted delimiter lets `$(…)` and backticks in the body run.
    fn heredoc_bodies(
        &mut self,
        mut at: usize,
        heredocs: &mut Vec<(String, bool, bool)>,
        top: bool,
    ) -> Scan<usize> {
        for (delimiter, quoted, strip_tabs) in heredocs.drain(..) {
            loop {
                if at >= self.text.len() {
                    return Err(());
                }
                let end = self.text[at..]
                    .find('\n')
                    .map_or(self.text.len(), |n| at + n);
                let line = &self.text[at..end];
                let line = if strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                let next = (end + 1).min(self.text.len());
                if line == delimiter {
                    at = next;
                    break;
                }
                if !quoted && (line.contains("$(") || line.contains('`')) {
                    self.mark(top, Hazard::Substitution);
                }
                at = next;
                if end >= self.text.len() {
                    return Err(());
                }
            }
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    /// The literal words of each top-level part, joined by spaces.
    fn literals(command: &str) -> Vec<String> {
        parse(command)
            .into_iter()
            .filter_map(|part| part.literal.map(|words| words.join(" ")))
            .collect()
    }

    /// Every word list a deny rule would see.
    fn seen(command: &str) -> Vec<String> {
        let mut seen = Vec::new();
        for part in parse(command) {
            if let Some(words) = part.literal {
                seen.push(words.join(" "));
            }
            for shadow in part.shadows {
                seen.push(shadow.join(" "));
            }
        }
        seen
    }

    fn hazards(command: &str) -> Vec<Option<Hazard>> {
        parse(command)
            .into_iter()
            .filter(|part| part.literal.is_some())
            .map(|part| part.hazard)
            .collect()
    }

    #[test]
    fn operators_split_simple_commands() {
        assert_eq!(
            literals("git status && git push"),
            ["git status", "git push"]
        );
        assert_eq!(literals("a; b;c"), ["a", "b", "c"]);
        assert_eq!(literals("a | b |& c"), ["a", "b", "c"]);
        assert_eq!(literals("a || b & c"), ["a", "b", "c"]);
        assert_eq!(literals("a\nb"), ["a", "b"]);
        assert_eq!(
            literals("(cd x && make) ; { git push; }"),
            ["cd x", "make", "git push"]
        );
        assert_eq!(literals("git status&&git push"), ["git status", "git push"]);
    }

    #[test]
    fn quotes_keep_operators_and_spaces_inside_words() {
        assert_eq!(literals("echo 'a && b' \"c; d\""), ["echo a && b c; d"]);
        assert_eq!(
            parse("git commit -m 'x; git push'")[0].literal,
            Some(
                words("git commit -m")
                    .into_iter()
                    .chain(["x; git push".to_owned()])
                    .collect()
            )
        );
        assert_eq!(literals(r"echo a\;git push"), ["echo a;git push"]);
        assert_eq!(literals(r#"g""it push"#), ["git push"]);
        assert_eq!(literals("git status # && git push"), ["git status"]);
    }

    #[test]
    fn syntax_words_are_not_programs() {
        assert_eq!(
            literals("if git status; then git push; fi"),
            ["git status", "git push"]
        );
        assert_eq!(literals("for f in a b; do rm $f; done"), ["rm $f"]);
        assert_eq!(literals("! git diff --quiet"), ["git diff --quiet"]);
        assert_eq!(literals(""), Vec::<String>::new());
        assert_eq!(literals("  ;; "), Vec::<String>::new());
    }

    #[test]
    fn assignments_and_wrappers_are_seen_through_for_deny_only() {
        let part = &parse("FOO=1 git push")[0];
        assert_eq!(part.literal, Some(words("FOO=1 git push")));
        assert_eq!(part.shadows, vec![words("git push")]);
        for (command, program) in [
            ("env A=1 B=2 git push", "git push"),
            ("sudo -u root git push", "git push"),
            ("nohup nice -n 5 git push", "git push"),
            ("timeout -s KILL 10 git push origin", "git push origin"),
            ("/usr/bin/git push", "git push"),
            ("xargs -n 1 rm -rf", "rm -rf"),
            ("git -C /tmp/x -c a=b --no-pager push", "git push"),
            ("find . -name x -exec rm -rf {} ;", "rm -rf {}"),
            ("command git push", "git push"),
        ] {
            assert!(
                seen(command).contains(&program.to_owned()),
                "{command}: {:?}",
                seen(command)
            );
        }
        assert!(parse("git status")[0].shadows.is_empty());
    }

    #[test]
    fn inner_scripts_are_their_own_parts_never_allowed() {
        for (command, inner) in [
            ("bash -c 'git status && git push'", "git push"),
            ("sh -ec \"git push\"", "git push"),
            ("eval git push", "git push"),
            ("env -S 'git push'", "git push"),
            ("echo $(git push)", "git push"),
            ("echo \"$(git push)\"", "git push"),
            ("echo `git push`", "git push"),
            ("diff <(git push) x", "git push"),
            ("echo $(echo $(git push))", "git push"),
        ] {
            let parts = parse(command);
            assert!(
                parts
                    .iter()
                    .any(|part| part.literal.is_none() && part.shadows.contains(&words(inner))),
                "{command}: {parts:?}"
            );
        }
    }

    #[test]
    fn hazards_are_recorded_on_their_command() {
        assert_eq!(hazards("echo $(id)"), [Some(Hazard::Substitution)]);
        assert_eq!(
            hazards("echo `id` ; ls"),
            [Some(Hazard::Substitution), None]
        );
        assert_eq!(hazards("echo hi > out.txt"), [Some(Hazard::Redirect)]);
        assert_eq!(hazards("echo hi >> ~/.bashrc"), [Some(Hazard::Redirect)]);
        assert_eq!(hazards("echo hi &> log"), [Some(Hazard::Redirect)]);
        assert_eq!(hazards("npm test 2>&1 | tee"), [None, None]);
        assert_eq!(hazards("make > /dev/null 2>&1"), [None]);
        assert_eq!(hazards("echo $'a\\'b'"), [Some(Hazard::AnsiQuote)]);
        assert_eq!(hazards("echo 'unbalanced"), [Some(Hazard::Unparsed)]);
        assert_eq!(hazards("echo $(unclosed"), [Some(Hazard::Unparsed)]);
        assert_eq!(hazards("echo 'a' \"$HOME\" x"), [None]);
    }

    #[test]
    fn an_unparsable_line_is_still_judged_by_its_words() {
        let parts = parse("git push 'oops");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].hazard, Some(Hazard::Unparsed));
        assert_eq!(
            parts[0].literal.as_deref().map(|w| w[..2].join(" ")),
            Some("git push".into())
        );
    }

    #[test]
    fn here_documents_are_data() {
        let command = "git commit -F - <<'EOF'\nIt's done; git push\nEOF\ngit status";
        assert_eq!(literals(command), ["git commit -F - <<EOF", "git status"]);
        assert_eq!(hazards(command), [None, None]);
        let command = "cat <<EOF\n$(git push)\nEOF";
        assert_eq!(hazards(command), [Some(Hazard::Substitution)]);
        let command = "git commit -m \"$(cat <<'EOF'\nfix (a) it's\nEOF\n)\"";
        let parts = parse(command);
        assert_eq!(
            parts[0].literal.as_ref().unwrap()[..2],
            words("git commit")[..]
        );
        assert_eq!(parts[0].hazard, Some(Hazard::Substitution));
        assert!(
            parts[1..].iter().all(|part| part.literal.is_none()),
            "{parts:?}"
        );
        assert_eq!(hazards("cat <<EOF\nnever ends"), [Some(Hazard::Unparsed)]);
    }

    #[test]
    fn deeply_nested_substitutions_do_not_parse() {
        let command = format!("echo {}x{}", "$(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(hazards(&command), [Some(Hazard::Unparsed)]);
        let command = format!("echo {}git push{}", "$(".repeat(6), ")".repeat(6));
        assert!(parse(&command)
            .iter()
            .any(|part| part.shadows.contains(&words("git push"))));
        let command = format!("echo {}git push{}", "$(".repeat(20), ")".repeat(20));
        let parts = parse(&command);
        assert!(
            parts
                .iter()
                .any(|part| part.hazard == Some(Hazard::TooComplex)),
            "{parts:?}"
        );
    }

    /// Random lines over the characters the scanner cares about (and some
    /// multi-byte ones) never panic, and every part has words.
    #[test]
    fn any_line_is_split_without_panicking() {
        let alphabet: Vec<char> = "ab =;&|()<>$'\"`\\#\n\t{}!-écho€🦀*~/.0123456789"
            .chars()
            .collect();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut line = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let length = (state % 40) as usize;
            for _ in 0..length {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                line.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            for part in parse(&line) {
                if let Some(words) = &part.literal {
                    assert!(!words.is_empty(), "{line:?}");
                }
            }
        }
    }

    #[test]
    fn deep_nesting_is_cut_off_and_flagged() {
        let mut command = "git push".to_owned();
        for _ in 0..12 {
            command = format!("sh -c {}", shlex::try_quote(&command).unwrap());
        }
        let parts = parse(&command);
        assert!(
            parts
                .iter()
                .any(|part| part.hazard == Some(Hazard::TooComplex)),
            "{parts:?}"
        );
        let many = vec!["true"; 1000].join(";");
        let parts = parse(&many);
        assert!(parts.len() <= MAX_PARTS + 1);
        assert_eq!(parts.last().unwrap().hazard, Some(Hazard::TooComplex));
    }
}
