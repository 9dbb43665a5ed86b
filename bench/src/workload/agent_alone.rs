//! The fake agent's own speed, with no daemon: this client speaks ACP to it over pipes and
//! counts the burst's lines. A daemon cannot deliver one subscriber more than this.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::http::{json_quote, json_string_field};

/// Time from sending the burst prompt to its response line.
pub fn burst_time(
    fake_agent: &Path,
    workspace: &Path,
    chunks: usize,
    chunk_bytes: usize,
) -> Result<Duration> {
    let mut child = Command::new(fake_agent)
        .current_dir(workspace)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", fake_agent.display()))?;
    let result = drive(&mut child, workspace, chunks, chunk_bytes);
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn drive(
    child: &mut std::process::Child,
    workspace: &Path,
    chunks: usize,
    chunk_bytes: usize,
) -> Result<Duration> {
    let mut input = child.stdin.take().context("agent stdin")?;
    let mut output =
        BufReader::with_capacity(256 * 1024, child.stdout.take().context("agent stdout")?);
    let mut line = Vec::new();
    let mut call = |id: u32, method: &str, params: String| -> Result<()> {
        writeln!(
            input,
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#
        )?;
        Ok(input.flush()?)
    };
    let mut response_to = |id: u32, line: &mut Vec<u8>| -> Result<usize> {
        let wanted = format!("\"id\":{id},");
        let mut lines = 0;
        loop {
            line.clear();
            if output.read_until(b'\n', line)? == 0 {
                bail!("the agent closed stdout");
            }
            lines += 1;
            if memchr::memmem::find(line, b"\"result\"").is_some()
                && memchr::memmem::find(line, wanted.as_bytes()).is_some()
            {
                return Ok(lines);
            }
        }
    };

    call(
        1,
        "initialize",
        r#"{"protocolVersion":1,"clientCapabilities":{}}"#.into(),
    )?;
    response_to(1, &mut line)?;
    let cwd = json_quote(&workspace.display().to_string());
    call(
        2,
        "session/new",
        format!(r#"{{"cwd":{cwd},"mcpServers":[]}}"#),
    )?;
    response_to(2, &mut line)?;
    let session = json_quote(json_string_field(&line, "sessionId").context("no sessionId")?);
    let started = Instant::now();
    call(
        3,
        "session/prompt",
        format!(
            r#"{{"sessionId":{session},"prompt":[{{"type":"text","text":"chunks {chunks} {chunk_bytes}"}}]}}"#
        ),
    )?;
    let lines = response_to(3, &mut line)?;
    let elapsed = started.elapsed();
    if lines < chunks {
        bail!("the agent sent {lines} lines for a burst of {chunks}");
    }
    Ok(elapsed)
}
