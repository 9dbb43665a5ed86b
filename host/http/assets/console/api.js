// The daemon's HTTP API as the console uses it. Same origin only: the
// session cookie goes along by itself (credentials: "same-origin"); the
// token is sent once, to POST /login, in the body.

export class HttpError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    json = null;
  }
  if (!response.ok) throw new HttpError(response.status, json);
  return json;
}

export const api = {
  login: (token) => call("POST", "/login", { token }),
  logout: () => call("POST", "/logout"),
  capabilities: () => call("GET", "/capabilities"),
  createSession: (cwd) => call("POST", "/session", { cwd }),
  sessions: () => call("GET", "/sessions"),
  prompt: (sessionId, text) =>
    call("POST", `/session/${encodeURIComponent(sessionId)}/prompt`, {
      prompt: [{ type: "text", text }],
    }),
  vote: (requestId, optionId) =>
    call("POST", `/permission/${encodeURIComponent(requestId)}`, {
      outcome: { outcome: "selected", optionId },
    }),
};

/// The event types of a session's stream (docs/protocol.md, Events).
export const EVENT_TYPES = [
  "session_update",
  "permission_request",
  "permission_resolved",
  "policy_decision",
  "policy_changed",
  "model_switched",
  "model_switch_failed",
  "core_restarted",
  "turn_complete",
  "session_died",
  "client_evicted",
  "stream_error",
];

/// Follows a session's stream from its first retained event. The browser
/// resumes by itself after a drop (it sends Last-Event-ID, which wins over
/// the query). `onEvent(envelope)` gets every parsed envelope.
export function follow(sessionId, onEvent, onState) {
  const source = new EventSource(
    `/session/${encodeURIComponent(sessionId)}/events?lastEventId=0`,
  );
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (message) => {
      let envelope;
      try {
        envelope = JSON.parse(message.data);
      } catch (_) {
        return;
      }
      onEvent(envelope);
      if (type === "session_died") source.close();
    });
  }
  source.onopen = () => onState("live");
  source.onerror = () =>
    onState(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  return source;
}
