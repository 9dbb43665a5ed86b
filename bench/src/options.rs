//! Command-line options. Hand-parsed: a handful of flags does not justify a parser crate in
//! the measuring client.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

pub const USAGE: &str = "\
qserve-bench: qserve-host and the real `qwen serve` side by side, same fake ACP agent

USAGE: qserve-bench [OPTIONS]

Each round measures, on each daemon in turn: start-up (fresh HOME, then a second start),
RSS idle and with N sessions, one burst of CHUNKS chunks to 1 and to K subscribers, the same
events paced as prompts of 200 chunks, and permission round trips.

  --rounds N          rounds; each runs qserve-host then qwen serve (A B A B …)  [3]
  --chunks N          agent_message_chunk updates per burst / paced run          [20000]
  --chunk-bytes N     text bytes per chunk                                        [200]
  --subscribers N     SSE subscribers of the fan-out burst                        [16]
  --round-trips N     permission round trips per round (after 10 warm-ups)       [200]
  --sessions N        sessions held open for the memory figure                   [20]
  --settle-ms N       wait before reading an RSS                                  [3000]
  --quick             1 round, 2000 chunks, 4 subscribers, 30 round trips, 1 s settle
                      (explicit flags after --quick still win)
  --only qserve|qwen  run one daemon only (no ratios)
  --qserve-host PATH  [target/release/qserve-host]
  --fake-agent PATH   [target/release/fake-agent]
  --qwen PATH         [tests/npm/node_modules/.bin/qwen]
  -h, --help
";

/// Which daemons a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Only {
    Both,
    Qserve,
    Qwen,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub rounds: usize,
    pub chunks: usize,
    pub chunk_bytes: usize,
    pub subscribers: usize,
    pub round_trips: usize,
    pub warmup_round_trips: usize,
    pub sessions: usize,
    pub settle_ms: u64,
    pub only: Only,
    pub qserve_host: PathBuf,
    pub fake_agent: PathBuf,
    pub qwen: PathBuf,
}

impl Options {
    fn defaults() -> Options {
        let root = repo_root();
        Options {
            rounds: 3,
            chunks: 20_000,
            chunk_bytes: 200,
            subscribers: 16,
            round_trips: 200,
            warmup_round_trips: 10,
            sessions: 20,
            settle_ms: 3000,
            only: Only::Both,
            qserve_host: root.join("target/release/qserve-host"),
            fake_agent: root.join("target/release/fake-agent"),
            qwen: root.join("tests/npm/node_modules/.bin/qwen"),
        }
    }

    fn make_quick(&mut self) {
        self.rounds = 1;
        self.chunks = 2000;
        self.subscribers = 4;
        self.round_trips = 30;
        self.warmup_round_trips = 3;
        self.settle_ms = 1000;
    }

    /// `None` when help was asked for.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>> {
        let mut options = Options::defaults();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "-h" | "--help" => return Ok(None),
                "--quick" => options.make_quick(),
                "--rounds" => options.rounds = positive(&flag, &value()?)?,
                "--chunks" => options.chunks = positive(&flag, &value()?)?,
                "--chunk-bytes" => options.chunk_bytes = positive(&flag, &value()?)?,
                "--subscribers" => options.subscribers = positive(&flag, &value()?)?,
                "--round-trips" => options.round_trips = positive(&flag, &value()?)?,
                "--sessions" => options.sessions = positive(&flag, &value()?)?,
                "--settle-ms" => options.settle_ms = positive(&flag, &value()?)? as u64,
                "--only" => {
                    options.only = match value()?.as_str() {
                        "qserve" => Only::Qserve,
                        "qwen" => Only::Qwen,
                        other => bail!("--only takes qserve or qwen, not {other:?}"),
                    }
                }
                "--qserve-host" => options.qserve_host = absolute(value()?)?,
                "--fake-agent" => options.fake_agent = absolute(value()?)?,
                "--qwen" => options.qwen = absolute(value()?)?,
                other => bail!("unknown argument {other:?}\n\n{USAGE}"),
            }
        }
        for (what, path, needed) in [
            (
                "--qserve-host",
                &options.qserve_host,
                options.only != Only::Qwen,
            ),
            ("--fake-agent", &options.fake_agent, true),
            ("--qwen", &options.qwen, options.only != Only::Qserve),
        ] {
            if needed && !path.exists() {
                bail!(
                    "{what} {} does not exist (scripts/bench.sh builds and installs everything)",
                    path.display()
                );
            }
        }
        Ok(Some(options))
    }
}

fn positive(flag: &str, value: &str) -> Result<usize> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{flag} takes a positive integer, not {value:?}"),
    }
}

/// Daemons run in other directories: every path handed to them must be absolute.
fn absolute(path: String) -> Result<PathBuf> {
    std::path::absolute(&path).with_context(|| format!("resolving {path}"))
}

/// The workspace root, fixed at build time: the default binaries live under it.
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ sits in the workspace root")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>> {
        let mut with_paths = vec!["--qserve-host", "/", "--fake-agent", "/", "--qwen", "/"];
        with_paths.extend_from_slice(args);
        Options::parse(with_paths.into_iter().map(String::from))
    }

    #[test]
    fn quick_shrinks_the_run_but_later_flags_still_win() {
        let options = parse(&["--quick", "--chunks", "500"]).unwrap().unwrap();
        assert_eq!(options.rounds, 1);
        assert_eq!(options.chunks, 500);
        assert_eq!(options.round_trips, 30);
    }

    #[test]
    fn bad_values_and_unknown_flags_are_refused() {
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--rounds"]).is_err());
        assert!(parse(&["--only", "both"]).is_err());
        assert!(parse(&["--fast"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
    }
}
