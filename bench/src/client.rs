//! The API calls the workloads make, written once for both daemons: the flavor decides the
//! few differences (prompt status, how a turn's end is seen, the events URL).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::task::JoinHandle;

use crate::daemon::{Daemon, Flavor};
use crate::http::{self, json_quote, json_string_field, Response};
use crate::sse::{Event, EventStream};

/// Longest the benchmark waits for any one step before calling the run broken.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
    pub flavor: Flavor,
}

impl Client {
    pub fn of(daemon: &Daemon) -> Client {
        Client {
            addr: daemon.addr,
            flavor: daemon.flavor,
        }
    }

    /// A new session on `workspace`. Thread scope (asked per request, which both daemons
    /// honour) so every call makes a session of its own on the workspace's one agent.
    pub async fn create_session(self, workspace: &Path) -> Result<String> {
        let cwd = json_quote(&workspace.display().to_string());
        let body = format!(r#"{{"cwd":{cwd},"sessionScope":"thread"}}"#);
        let response = http::request(self.addr, "POST", "/session", Some(&body))
            .await?
            .expect(200, "POST /session")?;
        match json_string_field(&response.body, "sessionId") {
            Some(id) => Ok(id.to_owned()),
            None => bail!("POST /session: no sessionId in {}", response.text()),
        }
    }

    pub async fn subscribe(self, session_id: &str) -> Result<EventStream> {
        EventStream::open(self.addr, &self.flavor.events_path(session_id)).await
    }

    /// Sends a one-text-block prompt in the background (ours answers only when the turn
    /// ends, so the caller must keep reading events meanwhile).
    pub fn send_prompt(self, session_id: &str, text: &str) -> JoinHandle<Result<Response>> {
        let path = format!("/session/{session_id}/prompt");
        let body = format!(
            r#"{{"prompt":[{{"type":"text","text":{}}}]}}"#,
            json_quote(text)
        );
        tokio::spawn(async move { http::request(self.addr, "POST", &path, Some(&body)).await })
    }

    /// Waits for the end of a turn started with [`send_prompt`](Self::send_prompt): ours
    /// answers the POST 200 then; qwen serve answered 202 at once and publishes
    /// `turn_complete` on the stream.
    pub async fn finish_turn(
        self,
        prompt: JoinHandle<Result<Response>>,
        stream: Option<&mut EventStream>,
    ) -> Result<()> {
        let response = prompt.await.context("the prompt task")??;
        response.expect(self.flavor.prompt_status(), "POST /session/:id/prompt")?;
        if self.flavor.turn_ends_on_stream() {
            let Some(stream) = stream else {
                bail!("qwen serve's turn end can only be seen on an event stream");
            };
            stream.until(|event| *event == Event::TurnComplete).await?;
        }
        Ok(())
    }

    pub async fn vote(self, request_id: &str, option_id: &str) -> Result<()> {
        let body = format!(
            r#"{{"outcome":{{"outcome":"selected","optionId":{}}}}}"#,
            json_quote(option_id)
        );
        http::request(
            self.addr,
            "POST",
            &format!("/permission/{request_id}"),
            Some(&body),
        )
        .await?
        .expect(200, "POST /permission/:id")?;
        Ok(())
    }
}

/// Runs `future` under [`STEP_TIMEOUT`], naming `what` when it runs out.
pub async fn within<T>(
    what: &str,
    future: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(STEP_TIMEOUT, future).await {
        Ok(result) => result,
        Err(_) => bail!("{what}: no progress within {STEP_TIMEOUT:?}"),
    }
}
