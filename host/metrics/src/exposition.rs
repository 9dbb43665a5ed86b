//! Reading exposition text back, the way a scraper does: every sample line
//! parsed into a name, its labels and its value. The tests of the crates
//! that expose metrics assert on these samples (never on substrings), so a
//! malformed line fails them.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("line {line}: {message}: `{text}`")]
    Line {
        line: usize,
        message: &'static str,
        text: String,
    },
    #[error("the text does not end with `# EOF`")]
    NoEof,
}

impl Scrape {
    /// Parse OpenMetrics text (comments and `# EOF` skipped, every other
    /// line a sample). `# EOF` must be the last line.
    pub fn parse(text: &str) -> Result<Scrape, ParseError> {
        let mut samples = Vec::new();
        let mut eof = false;
        for (index, line) in text.lines().enumerate() {
            let fail = |message| ParseError::Line {
                line: index + 1,
                message,
                text: line.to_owned(),
            };
            if eof {
                return Err(fail("text after `# EOF`"));
            }
            if line == "# EOF" {
                eof = true;
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            samples.push(parse_sample(line).map_err(fail)?);
        }
        if !eof {
            return Err(ParseError::NoEof);
        }
        Ok(Scrape { samples })
    }

    /// The value of the one sample named `name` with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }

    /// The sum over samples named `name` carrying at least these labels
    /// (0 when there is none: a counter not yet created is zero).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Samples named `name` carrying at least these labels.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid_name {
        return Err("bad metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    // A timestamp may follow the value.
    let value = rest.split(' ').next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().map_err(|_| "bad value")?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Labels up to the closing `}`; returns what follows it.
fn parse_labels<'a>(
    mut text: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, &'static str> {
    loop {
        if let Some(after) = text.strip_prefix('}') {
            return Ok(after);
        }
        let eq = text.find('=').ok_or("label without `=`")?;
        let key = &text[..eq];
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err("bad label name");
        }
        let mut chars = text[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("label value not quoted");
        }
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break eq + 1 + i + 1,
                (_, '\\') => match chars.next().ok_or("unterminated escape")?.1 {
                    'n' => value.push('\n'),
                    '"' => value.push('"'),
                    '\\' => value.push('\\'),
                    _ => return Err("bad escape"),
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err("duplicate label");
        }
        text = &text[end..];
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        } else if !text.starts_with('}') {
            return Err("labels not separated by `,`");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_labels_and_escapes_are_read_back() {
        let text = "# HELP x_total Things.\n# TYPE x counter\n\
                    x_total{a=\"1\",b=\"q\\\"uo\\\\te\\n\"} 3\n\
                    y 2.5\nz_bucket{le=\"+Inf\"} 7 1700000000\n# EOF\n";
        let scrape = Scrape::parse(text).unwrap();
        assert_eq!(
            scrape.value("x_total", &[("a", "1"), ("b", "q\"uo\\te\n")]),
            Some(3.0)
        );
        assert_eq!(scrape.value("y", &[]), Some(2.5));
        assert_eq!(scrape.sum("z_bucket", &[("le", "+Inf")]), 7.0);
        assert_eq!(scrape.sum("x_total", &[("a", "2")]), 0.0);
    }

    #[test]
    fn malformed_text_is_refused() {
        for bad in [
            "x 1\n",
            "x{a=1} 1\n# EOF\n",
            "x{a=\"1\" 1\n# EOF\n",
            "x{a=\"1\"} one\n# EOF\n",
            "x 1\n# EOF\ny 2\n",
            "x{a=\"1\"b=\"2\"} 1\n# EOF\n",
        ] {
            assert!(Scrape::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_daemons_own_text_parses() {
        crate::get().agent_exited("stopped");
        let scrape = Scrape::parse(&crate::get().encode()).unwrap();
        assert!(scrape.value("qserve_agent_exits_total", &[("cause", "stopped")]) >= Some(1.0));
    }
}
