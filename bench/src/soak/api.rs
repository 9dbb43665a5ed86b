//! The few daemon routes the soak calls, each checked against the status it must answer.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::http::{self, json_quote, json_string_field, Response};

#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub admin_token: String,
}

impl Api {
    /// A new session (scope `thread`) in `cwd`; its id.
    pub async fn create(&self, cwd: &Path) -> Result<String> {
        let body = format!(
            r#"{{"cwd":{},"sessionScope":"thread"}}"#,
            json_quote(&cwd.display().to_string())
        );
        let response = http::request(self.addr, "POST", "/session", Some(&body))
            .await?
            .expect(200, "POST /session")?;
        json_string_field(&response.body, "sessionId")
            .map(str::to_owned)
            .with_context(|| format!("POST /session: no sessionId in {}", response.text()))
    }

    /// Sends one fake-agent command as a prompt; the response whatever its status.
    pub async fn prompt(&self, session: &str, command: &str) -> Result<Response> {
        let body = format!(
            r#"{{"prompt":[{{"type":"text","text":{}}}]}}"#,
            json_quote(command)
        );
        http::request(
            self.addr,
            "POST",
            &format!("/session/{session}/prompt"),
            Some(&body),
        )
        .await
    }

    /// A prompt that must end 200 with this stop reason.
    pub async fn prompt_expecting(&self, session: &str, command: &str, stop: &str) -> Result<()> {
        let response = self.prompt(session, command).await?;
        let what = format!("prompt {command:?}");
        let response = response.expect(200, &what)?;
        match json_string_field(&response.body, "stopReason") {
            Some(reason) if reason == stop => Ok(()),
            _ => bail!("{what}: expected stopReason {stop}: {}", response.text()),
        }
    }

    pub async fn cancel(&self, session: &str) -> Result<()> {
        http::request(
            self.addr,
            "POST",
            &format!("/session/{session}/cancel"),
            None,
        )
        .await?
        .expect(204, "POST /cancel")?;
        Ok(())
    }

    /// DELETE; the status (204, or 404 once the session ended on its own).
    pub async fn close(&self, session: &str) -> Result<u16> {
        Ok(
            http::request(self.addr, "DELETE", &format!("/session/{session}"), None)
                .await?
                .status,
        )
    }

    /// `PUT /admin/policy` to a builtin.
    pub async fn swap_policy(&self, component: &str) -> Result<()> {
        let body = format!(r#"{{"component":{}}}"#, json_quote(component));
        let auth = format!("Bearer {}", self.admin_token);
        http::request_with_headers(
            self.addr,
            "PUT",
            "/admin/policy",
            Some(&body),
            &[("Authorization", &auth)],
        )
        .await?
        .expect(200, &format!("PUT /admin/policy {component}"))?;
        Ok(())
    }

    /// Live sessions as `GET /health?deep=1` counts them.
    pub async fn live_sessions(&self) -> Result<u64> {
        let response = http::request(self.addr, "GET", "/health?deep=1", None).await?;
        let text = response.text();
        let start = text
            .find("\"sessions\":")
            .with_context(|| format!("/health?deep=1 without sessions: {text}"))?
            + "\"sessions\":".len();
        let digits: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        Ok(digits.parse()?)
    }
}
