//! `qserve-host attach SESSION`: a terminal client on `qserve-client`.
//!
//! It follows a session's stream (agent text, tool calls, plans, policy
//! decisions) and turns each pending permission request into a card with its
//! options numbered: one key votes. A request another client resolves first
//! is marked so and dropped. It exits 0 when the session ends.
//!
//! Layers: [`render`] turns events into lines (pure, unit-tested),
//! [`keys`] reads single key presses from the terminal, this file wires the
//! stream, the keys and the votes together.

mod keys;
mod render;

use std::collections::VecDeque;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use qserve_client::{Client, PermissionRequest, Vote};

use crate::cli::AttachArgs;
use keys::Key;
use render::Renderer;

pub async fn run(args: AttachArgs, token: Option<String>) -> anyhow::Result<ExitCode> {
    let mut client = Client::new(&args.url).context("--url")?;
    if let Some(token) = token {
        client = client.with_token(token);
    }
    let mut events = client.events(&args.session, Some(0));
    let mut keys = keys::spawn_reader();
    let mut out = std::io::stdout();
    let mut renderer = Renderer::default();
    // Requests not yet resolved, oldest first; the first one has the card
    // the keys answer.
    let mut pending: VecDeque<PermissionRequest> = VecDeque::new();
    let _raw = keys::RawMode::enable();

    say(
        &mut out,
        &format!("attached to session {} at {}", args.session, args.url),
    );
    say(
        &mut out,
        "keys: 1-9 vote for an option, c cancels the request, q quits",
    );
    loop {
        tokio::select! {
            event = events.next() => {
                let event = match event {
                    None => return Ok(ExitCode::SUCCESS),
                    Some(Err(err)) if err.status() == Some(404) => {
                        say(&mut out, "the session is gone");
                        return Ok(ExitCode::SUCCESS);
                    }
                    Some(Err(err)) => {
                        say(&mut out, &format!("stream error: {err}"));
                        return Ok(ExitCode::FAILURE);
                    }
                    Some(Ok(event)) => event,
                };
                for line in renderer.render(&event) {
                    say(&mut out, &line);
                }
                if let Some(request) = event.permission_request() {
                    let first = pending.is_empty();
                    pending.push_back(request);
                    if first {
                        show_card(&mut out, &pending[0]);
                    }
                } else if event.kind == "permission_resolved" {
                    let id = event.data["requestId"].as_str().unwrap_or_default();
                    if let Some(at) = pending.iter().position(|r| r.request_id == id) {
                        let was_shown = at == 0;
                        pending.remove(at);
                        if was_shown {
                            if let Some(next) = pending.front() {
                                show_card(&mut out, next);
                            }
                        }
                    }
                }
                if event.ends_session() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            key = keys.recv() => {
                let Some(key) = key else {
                    // stdin closed: keep following, no more votes possible.
                    keys = keys::closed();
                    continue;
                };
                match key {
                    Key::Quit => return Ok(ExitCode::SUCCESS),
                    Key::Cancel | Key::Digit(_) => {
                        let Some(request) = pending.front() else {
                            say(&mut out, "(no pending permission request)");
                            continue;
                        };
                        let vote = match key {
                            Key::Digit(n) => match request.options.get(n.saturating_sub(1)) {
                                Some(option) => Vote::Selected(option.option_id.clone()),
                                None => {
                                    say(&mut out, &format!("(no option {n}; 1-{} or c)", request.options.len()));
                                    continue;
                                }
                            },
                            _ => Vote::Cancelled,
                        };
                        match client.vote(&request.request_id, &vote).await {
                            Ok(()) => say(&mut out, &format!("voted: {}", render::vote_label(request, &vote))),
                            Err(err) if err.status() == Some(404) => {
                                say(&mut out, "already resolved by another client")
                            }
                            Err(err) => say(&mut out, &format!("vote refused: {err}")),
                        }
                    }
                }
            }
        }
    }
}

fn show_card(out: &mut impl Write, request: &PermissionRequest) {
    for line in render::card(request) {
        say(out, &line);
    }
}

/// One line; `\r\n` because the terminal is in raw mode (no output
/// post-processing), and flushed so a reviewer sees it at once.
fn say(out: &mut impl Write, line: &str) {
    let _ = write!(out, "{line}\r\n");
    let _ = out.flush();
}
