//! The soak run's flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub const USAGE: &str = "\
qserve-soak: mixed load against a release qserve-host for a long time, sampling its RSS,
open fds and agents every 10 s; exits non-zero when an event was lost or repeated, a
request failed unexpectedly, or the daemon's fds grew.

  --qserve-host PATH   the daemon (release build)
  --fake-agent PATH    the fake ACP agent (tests/src/bin/fake_agent.rs)
  --minutes N          how long the load runs (default 30)
  --sample-secs N      sampling interval (default 10)
  --keep-agents        keep one idle session open in each well-behaved workspace, so their
                       agents are never stopped and restarted (only the crashing ones are)
  --scratch DIR        where workspaces and the daemon's log go (default: a temp dir)
  --help
";

pub struct Options {
    pub qserve_host: PathBuf,
    pub fake_agent: PathBuf,
    pub duration: Duration,
    pub sample_every: Duration,
    pub scratch: Option<PathBuf>,
    pub keep_agents: bool,
}

impl Options {
    /// `Ok(None)` for `--help`.
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>> {
        let mut qserve_host = None;
        let mut fake_agent = None;
        let mut minutes = 30.0f64;
        let mut sample_secs = 10u64;
        let mut scratch = None;
        let mut keep_agents = false;
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--qserve-host" => qserve_host = Some(PathBuf::from(value()?)),
                "--fake-agent" => fake_agent = Some(PathBuf::from(value()?)),
                "--minutes" => minutes = value()?.parse().context("--minutes")?,
                "--sample-secs" => sample_secs = value()?.parse().context("--sample-secs")?,
                "--scratch" => scratch = Some(PathBuf::from(value()?)),
                "--keep-agents" => keep_agents = true,
                "--help" | "-h" => return Ok(None),
                other => bail!("unknown flag {other:?}\n{USAGE}"),
            }
        }
        if minutes.is_nan() || minutes <= 0.0 {
            bail!("--minutes must be positive");
        }
        // Absolute: the daemon runs in the scratch directory and starts the agent from there.
        let absolute = |path: Option<PathBuf>, flag: &str| -> Result<PathBuf> {
            let path = path.with_context(|| format!("{flag} is required"))?;
            path.canonicalize()
                .with_context(|| format!("{flag} {}", path.display()))
        };
        Ok(Some(Options {
            qserve_host: absolute(qserve_host, "--qserve-host")?,
            fake_agent: absolute(fake_agent, "--fake-agent")?,
            duration: Duration::from_secs_f64(minutes * 60.0),
            sample_every: Duration::from_secs(sample_secs.max(1)),
            scratch,
            keep_agents,
        }))
    }
}
