//! Cedar's error messages as the operator reads them: Cedar's own text, the
//! line and column it points at, and its help.

use std::fmt::Display;

use cedar_policy::{ParseErrors, PolicyId};
use miette::Diagnostic;

/// One diagnostic: `message (line L, column C)`, then `help: …` when Cedar
/// has some.
pub fn render<D: Diagnostic + Display + ?Sized>(diagnostic: &D, text: &str) -> String {
    let mut rendered = diagnostic.to_string();
    let offset = diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    if let Some(offset) = offset {
        let (line, column) = line_column(text, offset);
        rendered.push_str(&format!(" (line {line}, column {column})"));
    }
    if let Some(help) = diagnostic.help() {
        rendered.push_str(&format!("\n    help: {help}"));
    }
    rendered
}

/// Every diagnostic, one `  - ` item each.
pub fn list<'a, D: Diagnostic + Display + 'a>(
    diagnostics: impl IntoIterator<Item = &'a D>,
    text: &str,
) -> String {
    diagnostics
        .into_iter()
        .map(|diagnostic| format!("  - {}", render(diagnostic, text)))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn parse_errors(errors: &ParseErrors, text: &str) -> String {
    list(errors.iter(), text)
}

/// A policy's id for a message; Cedar's generated ids (`policy3`) also get
/// the position, since the file does not show them.
pub fn describe(id: &PolicyId) -> String {
    let id = id.to_string();
    match id
        .strip_prefix("policy")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) => format!("{id} (policy number {} in the file)", n + 1),
        None => id,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |line| line.chars().count())
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (2, 2));
        assert_eq!(line_column(text, 8), (3, 1));
        assert_eq!(line_column(text, 999), (3, 2), "clamped to the end");
    }

    #[test]
    fn generated_ids_also_give_the_position() {
        assert_eq!(
            describe(&PolicyId::new("policy2")),
            "policy2 (policy number 3 in the file)"
        );
        assert_eq!(describe(&PolicyId::new("allow-reads")), "allow-reads");
    }
}
