// DOM builders. Everything an agent or a policy wrote goes in as text
// (textContent), never as markup: agent text cannot become script or fake UI.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function contentText(content) {
  if (!content) return "";
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map(contentText).join("");
  if (content.type === "text") return content.text || "";
  if (content.type === "content") return contentText(content.content);
  if (content.type === "diff") return `diff of ${content.path || "a file"}`;
  return `[${content.type || "content"}]`;
}

/// A session's transcript: agent and user text, tool calls with their
/// status, plans, turn ends. Consecutive chunks of one kind join one block.
export class Transcript {
  constructor(root) {
    this.root = root;
    this.tools = new Map();
    this.last = null;
  }

  clear() {
    this.root.replaceChildren();
    this.tools.clear();
    this.last = null;
    this.planNode = null;
  }

  scroll() {
    this.root.scrollTop = this.root.scrollHeight;
  }

  text(kind, text) {
    if (this.last && this.last.kind === kind) {
      this.last.body.textContent += text;
    } else {
      const body = el("div", { class: "body" }, text);
      const label = { agent: "agent", thought: "thinking", user: "you" }[kind] || kind;
      const block = el("div", { class: `msg ${kind}`, "data-kind": kind }, el("span", { class: "who", text: label }), body);
      this.root.append(block);
      this.last = { kind, body };
    }
    this.scroll();
  }

  tool(update) {
    const id = update.toolCallId || `tool-${this.tools.size}`;
    let card = this.tools.get(id);
    if (!card) {
      const status = el("span", { class: "tool-status" });
      const title = el("span", { class: "tool-title" });
      const kind = el("span", { class: "tool-kind" });
      const detail = el("div", { class: "tool-detail" });
      const node = el("div", { class: "tool", "data-tool-call-id": id }, kind, title, status, detail);
      card = { node, status, title, kind, detail };
      this.tools.set(id, card);
      this.root.append(node);
    }
    if (update.title) card.title.textContent = update.title;
    if (update.kind) card.kind.textContent = update.kind;
    if (update.status) {
      card.status.textContent = update.status;
      card.node.dataset.status = update.status;
    }
    const locations = (update.locations || []).map((l) => l.path).filter(Boolean);
    const output = contentText(update.content);
    const detail = [locations.join(", "), output].filter(Boolean).join(" — ");
    if (detail) card.detail.textContent = detail;
    this.last = null;
    this.scroll();
  }

  /// The agent sends the whole plan each time: one block, redrawn in place.
  plan(entries) {
    const list = el(
      "ol",
      {},
      (entries || []).map((entry) =>
        el("li", { "data-status": entry.status || "pending" }, el("span", { class: "plan-status", text: entry.status || "pending" }), " ", entry.content || ""),
      ),
    );
    const block = el("div", { class: "plan" }, el("span", { class: "who", text: "plan" }), list);
    if (this.planNode && this.planNode.isConnected) this.planNode.replaceWith(block);
    else this.root.append(block);
    this.planNode = block;
    this.last = null;
    this.scroll();
  }

  note(text, kind = "note") {
    this.root.append(el("div", { class: `note ${kind}`, text }));
    this.last = null;
    this.scroll();
  }

  update(update) {
    switch (update.sessionUpdate) {
      case "agent_message_chunk":
        return this.text("agent", contentText(update.content));
      case "agent_thought_chunk":
        return this.text("thought", contentText(update.content));
      case "user_message_chunk":
        return this.text("user", contentText(update.content));
      case "tool_call":
      case "tool_call_update":
        return this.tool(update);
      case "plan":
        return this.plan(update.entries);
      default:
        return undefined;
    }
  }
}

/// A pending permission request: what the agent wants, one button per offered option.
export function permissionCard(data, onVote) {
  const call = data.toolCall || {};
  const locations = (call.locations || []).map((l) => l.path).filter(Boolean).join(", ");
  // How the request ended (any client's vote, a timeout) and what became
  // of this tab's own vote are two lines: the two answers arrive in either order.
  const outcome = el("p", { class: "outcome", role: "status" });
  const myVote = el("p", { class: "my-vote" });
  const buttons = (data.options || []).map((option) =>
    el("button", {
      type: "button",
      class: `option ${option.kind || ""}`,
      "data-option-id": option.optionId,
      text: option.name || option.optionId,
      onclick: () => onVote(option, card, myVote),
    }),
  );
  const card = el(
    "article",
    { class: "card pending", "data-request-id": data.requestId, "data-state": "pending" },
    el("h3", {}, "Permission: ", call.title || call.kind || "tool call"),
    el("p", { class: "meta" }, `${call.kind || "other"}${locations ? ` · ${locations}` : ""}`),
    el("div", { class: "options" }, buttons),
    outcome,
    myVote,
  );
  return card;
}

/// Marks a card resolved (this tab's vote, another client's, a timeout).
export function resolveCard(card, outcome, options) {
  card.dataset.state = "resolved";
  card.classList.remove("pending");
  card.classList.add("resolved");
  for (const button of card.querySelectorAll("button")) button.disabled = true;
  let text = "resolved: cancelled";
  if (outcome && outcome.outcome === "selected") {
    const option = (options || []).find((o) => o.optionId === outcome.optionId);
    text = `resolved: ${option ? option.name : outcome.optionId}`;
    const chosen = card.querySelector(`button[data-option-id="${CSS.escape(outcome.optionId)}"]`);
    if (chosen) chosen.classList.add("chosen");
  }
  card.querySelector(".outcome").textContent = text;
}

/// One `policy_decision`: verdict, what it was about, the policy's reason.
export function decisionItem(data) {
  const call = data.toolCall || {};
  const path = data.path && typeof data.path === "object" ? data.path.resolved || data.path.requested : data.path;
  const about =
    data.kind === "file_access"
      ? `${data.access || "access"} ${path || ""}`
      : data.kind === "permission"
        ? call.title || call.toolName || call.kind || "tool call"
        : data.kind || "decision";
  const verdict = data.verdict || "?";
  const policy = data.policy ? `${data.policy.name} ${data.policy.version}` : "";
  return el(
    "li",
    { class: `decision verdict-${verdict}`, "data-verdict": verdict, "data-kind": data.kind || "" },
    el("span", { class: "verdict", text: verdict }),
    el("span", { class: "about", text: about }),
    el("span", { class: "reason", text: data.reason || "" }),
    el("span", { class: "by", text: policy }),
  );
}
