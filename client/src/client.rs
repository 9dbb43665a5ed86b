//! One method per route of the HTTP API.

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::error::ClientError;
use crate::events::{EventStream, ReconnectPolicy};
use crate::types::*;

/// A handle on one daemon. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    /// `base_url` is the daemon's root, e.g. `http://127.0.0.1:4170`.
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        let base = Url::parse(base_url).map_err(|_| ClientError::InvalidUrl(base_url.into()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::InvalidUrl(base_url.into()));
        }
        Ok(Client {
            http: reqwest::Client::new(),
            base,
            token: None,
        })
    }

    /// Sends `Authorization: Bearer TOKEN` with every request.
    pub fn with_token(mut self, token: impl Into<String>) -> Client {
        self.token = Some(token.into());
        self
    }

    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The URL of `segments` under the base, each segment percent-encoded
    /// (so a workspace path becomes one `%2F`-separated segment).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("checked in new(): the base URL can be a base");
            path.pop_if_empty();
            for segment in segments {
                path.push(segment);
            }
        }
        url
    }

    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// `GET /health`: liveness.
    pub async fn health(&self) -> Result<Health, ClientError> {
        json_answer(self.request(Method::GET, self.url(&["health"]))).await
    }

    /// `GET /health?deep=1`: readiness; a degraded daemon is
    /// `Err(ClientError::Http { status: 503, .. })` with the figures in `body`.
    pub async fn deep_health(&self) -> Result<Health, ClientError> {
        let mut url = self.url(&["health"]);
        url.set_query(Some("deep=1"));
        json_answer(self.request(Method::GET, url)).await
    }

    /// `GET /capabilities`.
    pub async fn capabilities(&self) -> Result<Capabilities, ClientError> {
        json_answer(self.request(Method::GET, self.url(&["capabilities"]))).await
    }

    /// `GET /openapi.json`: the API's own description.
    pub async fn openapi(&self) -> Result<Value, ClientError> {
        json_answer(self.request(Method::GET, self.url(&["openapi.json"]))).await
    }

    /// `POST /session`: create a session, or attach to the workspace's live one.
    pub async fn create_session(
        &self,
        request: &CreateSession,
    ) -> Result<SessionCreated, ClientError> {
        json_answer(
            self.request(Method::POST, self.url(&["session"]))
                .json(request),
        )
        .await
    }

    /// `POST /session/:id/prompt` with content blocks; answers when the turn ends.
    pub async fn prompt(
        &self,
        session_id: &str,
        blocks: Vec<Value>,
    ) -> Result<PromptResponse, ClientError> {
        json_answer(
            self.request(Method::POST, self.url(&["session", session_id, "prompt"]))
                .json(&json!({ "prompt": blocks })),
        )
        .await
    }

    /// `POST /session/:id/prompt` with one text block.
    pub async fn prompt_text(
        &self,
        session_id: &str,
        text: &str,
    ) -> Result<PromptResponse, ClientError> {
        self.prompt(session_id, vec![json!({"type": "text", "text": text})])
            .await
    }

    /// `POST /session/:id/cancel`: cancels the running turn and pending permissions.
    pub async fn cancel(&self, session_id: &str) -> Result<(), ClientError> {
        empty_answer(self.request(Method::POST, self.url(&["session", session_id, "cancel"]))).await
    }

    /// `POST /session/:id/model`: the agent's answer (a JSON object, often `{}`).
    pub async fn set_model(&self, session_id: &str, model_id: &str) -> Result<Value, ClientError> {
        json_answer(
            self.request(Method::POST, self.url(&["session", session_id, "model"]))
                .json(&json!({ "modelId": model_id })),
        )
        .await
    }

    /// `GET /session/:id`: the session's workspace, agent and scope. A session
    /// that ended recently is a 404 with code `session_ended` and the reason.
    pub async fn session(&self, session_id: &str) -> Result<SessionInfo, ClientError> {
        json_answer(self.request(Method::GET, self.url(&["session", session_id]))).await
    }

    /// `DELETE /session/:id`: ends the session for every client.
    pub async fn delete_session(&self, session_id: &str) -> Result<(), ClientError> {
        empty_answer(self.request(Method::DELETE, self.url(&["session", session_id]))).await
    }

    /// `POST /permission/:requestId`: `Ok` means this vote won; a later vote
    /// is `Err` with status 404, an option not offered 400 `invalid_option_id`.
    pub async fn vote(&self, request_id: &str, vote: &Vote) -> Result<(), ClientError> {
        let _: Value = json_answer(
            self.request(Method::POST, self.url(&["permission", request_id]))
                .json(&vote.body()),
        )
        .await?;
        Ok(())
    }

    /// `GET /workspace/:cwd/sessions`: the workspace's live sessions.
    pub async fn workspace_sessions(&self, cwd: &str) -> Result<SessionList, ClientError> {
        json_answer(self.request(Method::GET, self.url(&["workspace", cwd, "sessions"]))).await
    }

    /// `PUT /admin/policy` (needs the daemon's `--admin-token`, given here):
    /// `body` is `{"component"?, "config"? | "configPath"?}`. Answers the new
    /// policy's identity.
    pub async fn reload_policy(
        &self,
        admin_token: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        json_answer(
            self.http
                .put(self.url(&["admin", "policy"]))
                .bearer_auth(admin_token)
                .json(body),
        )
        .await
    }

    /// `GET /session/:id/events`, resumed across disconnects. With
    /// `last_event_id: Some(n)` every retained event after `n` is replayed
    /// first (`Some(0)`: the whole ring); with `None`, live events only — and
    /// a disconnect before the first event can then lose events.
    pub fn events(&self, session_id: &str, last_event_id: Option<u64>) -> EventStream {
        self.events_with(session_id, last_event_id, ReconnectPolicy::default())
    }

    pub fn events_with(
        &self,
        session_id: &str,
        last_event_id: Option<u64>,
        policy: ReconnectPolicy,
    ) -> EventStream {
        EventStream::new(
            self.clone(),
            self.url(&["session", session_id, "events"]),
            last_event_id,
            policy,
        )
    }
}

/// A 2xx JSON body as `T`, or the error the daemon described.
async fn json_answer<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, ClientError> {
    let response = request.send().await?;
    let response = check(response).await?;
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|err| {
        ClientError::Decode(format!(
            "{err}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
        ))
    })
}

async fn empty_answer(request: RequestBuilder) -> Result<(), ClientError> {
    check(request.send().await?).await.map(drop)
}

/// Turns a non-2xx answer into [`ClientError::Http`] with the body's
/// `error` and `code`.
pub(crate) async fn check(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let bytes = response.bytes().await.unwrap_or_default();
    Err(http_error(status, &bytes))
}

fn http_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let message = body["error"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]);
            if text.is_empty() {
                status.to_string()
            } else {
                text.into_owned()
            }
        });
    ClientError::Http {
        status: status.as_u16(),
        code: body["code"].as_str().map(str::to_owned),
        message,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_path_is_one_encoded_segment() {
        let client = Client::new("http://127.0.0.1:4170").unwrap();
        let url = client.url(&["workspace", "/tmp/my ws", "sessions"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:4170/workspace/%2Ftmp%2Fmy%20ws/sessions"
        );
        let prefixed = Client::new("http://127.0.0.1:4170/qserve/").unwrap();
        assert_eq!(
            prefixed.url(&["health"]).as_str(),
            "http://127.0.0.1:4170/qserve/health"
        );
    }

    #[test]
    fn only_http_urls_are_accepted() {
        for bad in ["localhost:4170", "ftp://x", "not a url", "mailto:a@b"] {
            assert!(
                matches!(Client::new(bad), Err(ClientError::InvalidUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_error_body_gives_its_message_and_code() {
        let err = http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"error":"session limit reached (20 sessions)","code":"session_limit_exceeded"}"#,
        );
        assert_eq!(err.status(), Some(503));
        assert_eq!(err.code(), Some("session_limit_exceeded"));
        assert!(err.to_string().contains("session limit reached"));
        let plain = http_error(StatusCode::BAD_GATEWAY, b"upstream down");
        assert_eq!(plain.code(), None);
        assert!(plain.to_string().contains("upstream down"));
    }
}
