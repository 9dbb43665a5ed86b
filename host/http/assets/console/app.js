// The qserve web console: sessions by workspace, a session's live stream,
// permission cards, the policy's decisions and the active policy.
import { api, follow, HttpError } from "./api.js";
import { el, Transcript, permissionCard, resolveCard, decisionItem } from "./render.js";

const $ = (id) => document.getElementById(id);

const state = {
  source: null,
  sessionId: null,
  cards: new Map(), // requestId → { card, options }
  transcript: null,
  refreshTimer: null,
};

function showPolicy(policy) {
  if (!policy) return;
  const node = $("policy");
  node.replaceChildren(
    "policy ",
    el("strong", { id: "policy-name", text: policy.name }),
    " ",
    el("span", { id: "policy-version", text: policy.version }),
    " ",
    el("code", { id: "policy-sha256", title: policy.sha256, text: `sha256 ${String(policy.sha256).slice(0, 12)}…` }),
  );
  node.dataset.sha256 = policy.sha256;
}

/// Every live session of the daemon, grouped by workspace.
async function refreshWorkspaces() {
  let sessions;
  try {
    sessions = (await api.sessions()).sessions || [];
  } catch (e) {
    if (e instanceof HttpError && e.status === 401) return showLogin();
    $("workspaces").replaceChildren(el("p", { class: "error", text: e.message }));
    return;
  }
  const byWorkspace = new Map();
  for (const s of sessions) {
    if (!byWorkspace.has(s.workspaceCwd)) byWorkspace.set(s.workspaceCwd, []);
    byWorkspace.get(s.workspaceCwd).push(s);
  }
  const sections = [...byWorkspace].map(([cwd, list]) =>
    el(
      "section",
      { class: "workspace", "data-cwd": cwd },
      el("h3", { text: cwd }),
      el(
        "ul",
        {},
        list.map((s) =>
          el(
            "li",
            {},
            el("a", {
              href: `#session=${encodeURIComponent(s.sessionId)}`,
              class: s.sessionId === state.sessionId ? "session-link open" : "session-link",
              "data-session-id": s.sessionId,
              text: `${s.sessionId.slice(0, 8)} · ${s.agent || "default"}`,
            }),
          ),
        ),
      ),
    ),
  );
  $("workspaces").replaceChildren(
    ...(sections.length ? sections : [el("p", { class: "empty", text: "no live sessions" })]),
  );
}

function closeStream() {
  if (state.source) state.source.close();
  state.source = null;
}

function openSession(sessionId) {
  if (state.sessionId === sessionId && state.source) return;
  closeStream();
  state.sessionId = sessionId;
  state.cards.clear();
  $("permissions").replaceChildren();
  $("decisions").replaceChildren();
  state.transcript.clear();
  $("session-title").textContent = `Session ${sessionId}`;
  $("session-title").dataset.sessionId = sessionId;
  $("prompt-form").hidden = false;
  setStatus("connecting");
  state.source = follow(sessionId, onEvent, setStatus);
  refreshWorkspaces();
}

function setStatus(text) {
  $("session-status").textContent = text;
  $("session-status").dataset.state = text;
}

async function vote(requestId, option, card, line) {
  line.textContent = `voting ${option.name}…`;
  try {
    await api.vote(requestId, option.optionId);
    line.textContent = `your vote won: ${option.name}`;
  } catch (e) {
    line.textContent =
      e instanceof HttpError && e.status === 404
        ? "another client answered first"
        : `vote failed: ${e.message}`;
  }
}

function onEvent(envelope) {
  const data = envelope.data || {};
  switch (envelope.type) {
    case "session_update":
      state.transcript.update(data.update || {});
      break;
    case "permission_request": {
      const card = permissionCard(data, (option, node, outcome) =>
        vote(data.requestId, option, node, outcome),
      );
      state.cards.set(data.requestId, { card, options: data.options });
      $("permissions").prepend(card);
      break;
    }
    case "permission_resolved": {
      const entry = state.cards.get(data.requestId);
      if (entry) resolveCard(entry.card, data.outcome, entry.options);
      break;
    }
    case "policy_decision":
      $("decisions").prepend(decisionItem(data));
      break;
    case "policy_changed":
      showPolicy(data.policy);
      state.transcript.note(`policy changed to ${data.policy && data.policy.name}`);
      break;
    case "turn_complete":
      state.transcript.note(`turn ended: ${data.stopReason || "?"}`, "turn");
      state.transcript.planNode = null;
      break;
    case "model_switched":
      state.transcript.note(`model: ${data.modelId}`);
      break;
    case "core_restarted":
      state.transcript.note("the daemon's core restarted; pending requests were cancelled", "warn");
      break;
    case "session_died":
      state.transcript.note(`session ended: ${data.reason || "?"}`, "warn");
      setStatus("ended");
      $("prompt-form").hidden = true;
      break;
    default:
      break;
  }
}

function showLogin() {
  closeStream();
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("token").focus();
}

async function start() {
  let caps;
  try {
    caps = await api.capabilities();
  } catch (e) {
    if (e instanceof HttpError && e.status === 401) return showLogin();
    document.body.append(el("p", { class: "error", text: `the daemon did not answer: ${e.message}` }));
    return;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  showPolicy(caps.policy);
  await refreshWorkspaces();
  clearInterval(state.refreshTimer);
  state.refreshTimer = setInterval(() => {
    refreshWorkspaces();
    api.capabilities().then((c) => showPolicy(c.policy), () => {});
  }, 3000);
  routeFromHash();
}

function routeFromHash() {
  const match = /^#session=(.+)$/.exec(location.hash);
  if (match) openSession(decodeURIComponent(match[1]));
}

function wire() {
  state.transcript = new Transcript($("transcript"));

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("token");
    $("login-error").textContent = "";
    try {
      await api.login(input.value);
      input.value = "";
      await start();
    } catch (e) {
      input.value = "";
      $("login-error").textContent =
        e instanceof HttpError && e.status === 401 ? "wrong token" : `login failed: ${e.message}`;
    }
  });

  $("logout").addEventListener("click", async () => {
    clearInterval(state.refreshTimer);
    try {
      await api.logout();
    } finally {
      showLogin();
    }
  });

  $("new-session").addEventListener("submit", async (event) => {
    event.preventDefault();
    const cwd = $("cwd").value.trim();
    $("new-session-error").textContent = "";
    try {
      const created = await api.createSession(cwd);
      location.hash = `session=${encodeURIComponent(created.sessionId)}`;
    } catch (e) {
      $("new-session-error").textContent = e.message;
    }
  });

  $("prompt-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("prompt").value;
    if (!text.trim() || !state.sessionId) return;
    $("prompt").value = "";
    state.transcript.text("user", text);
    api.prompt(state.sessionId, text).catch((e) => state.transcript.note(`prompt failed: ${e.message}`, "warn"));
  });

  window.addEventListener("hashchange", routeFromHash);
}

wire();
start();
