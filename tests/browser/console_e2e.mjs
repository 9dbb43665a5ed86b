// Drives Debian's chromium (playwright-core, no browser download) against a
// running qserve-host, for tests/tests/web_console.rs. Input: one JSON
// argument; output: progress lines on stderr and one JSON result line on
// stdout. Any failure exits non-zero with the reason: a missing chromium or
// playwright-core is a failure, never a skip.
//
//   node console_e2e.mjs '{"mode":"console"|"cross-origin", "base":URL, "token":T, ...}'
import { createRequire } from "node:module";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const input = JSON.parse(process.argv[2] || "{}");
const CHROMIUM = input.chromium || "/usr/bin/chromium";
const WAIT = 60_000; // per step: CI machines are loaded

function fail(message) {
  console.error(`console_e2e: FAIL: ${message}`);
  process.exit(1);
}
const log = (message) => console.error(`console_e2e: ${message}`);

if (!existsSync(CHROMIUM)) {
  fail(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; scripts/system-deps.sh does it)`);
}
let chromium;
try {
  const require = createRequire(join(here, "..", "npm", "package.json"));
  ({ chromium } = require("playwright-core"));
} catch (error) {
  fail(`playwright-core is not installed in tests/npm (run scripts/npm-deps.sh): ${error.message}`);
}

const userDataDir = mkdtempSync(join(tmpdir(), "qserve-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1400, height: 860 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const requested = [];
context.on("request", (request) => requested.push(request.url()));
const consoleErrors = [];

async function newPage() {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  return page;
}

async function login(page) {
  await page.goto(input.base + "/");
  await page.locator("#login-form").waitFor({ state: "visible" });
  // A wrong token first: refused, no cookie.
  await page.fill("#token", "not-the-token");
  await page.click("#login-form button[type=submit]");
  await page.locator("#login-error", { hasText: "wrong token" }).waitFor();
  if ((await context.cookies()).some((c) => c.name === "qserve_session")) {
    fail("a wrong token got a session cookie");
  }
  await page.fill("#token", input.token);
  await page.click("#login-form button[type=submit]");
  await page.locator("#app").waitFor({ state: "visible" });
  const cookie = (await context.cookies()).find((c) => c.name === "qserve_session");
  if (!cookie) fail("no qserve_session cookie after logging in");
  const visibleToScript = await page.evaluate(() => document.cookie);
  return { cookie, visibleToScript };
}

async function consoleMode() {
  const page = await newPage();
  const { cookie, visibleToScript } = await login(page);
  log("logged in");

  // The active policy is shown.
  await page.locator("#policy-name").waitFor();
  const policy = {
    name: await page.textContent("#policy-name"),
    version: await page.textContent("#policy-version"),
    sha256: await page.getAttribute("#policy", "data-sha256"),
  };

  // A session through the form, then a prompt that asks for a permission.
  await page.fill("#cwd", input.workspace);
  await page.click("#new-session button[type=submit]");
  await page.locator("#session-status[data-state=live]").waitFor();
  const sessionId = await page.getAttribute("#session-title", "data-session-id");
  const listed = (cwd, id) =>
    page.locator(`.workspace[data-cwd="${cwd}"] .session-link[data-session-id="${id}"]`).waitFor();
  await listed(input.workspace, sessionId);
  // A session made elsewhere (by the test, with the bearer token) is listed too, under its workspace.
  await listed(input.otherWorkspace, input.otherSessionId);
  log(`session ${sessionId} open; both sessions listed under their workspaces`);
  await page.fill("#prompt", `edit ${input.fileName} ${input.fileContent}`);
  await page.click("#prompt-form button[type=submit]");

  const card = page.locator(".card[data-state=pending]");
  await card.waitFor();
  const requestId = await card.getAttribute("data-request-id");
  await page.locator(".tool[data-status=pending]").waitFor();
  await page.locator(".plan").first().waitFor();
  await page.locator(".decision[data-verdict=ask]").waitFor();
  log(`permission card ${requestId} shown with the tool call, the plan and the policy's ask`);

  // A second tab on the same session sees the same card.
  const second = await newPage();
  await second.goto(`${input.base}/#session=${encodeURIComponent(sessionId)}`);
  await second.locator(`.card[data-request-id="${requestId}"][data-state=pending]`).waitFor();
  log("the second tab shows the card");

  await page.click(`.card[data-request-id="${requestId}"] button[data-option-id=proceed_once]`);
  await page.locator(`.card[data-request-id="${requestId}"] .my-vote`, { hasText: "your vote won: Allow" }).waitFor();
  await page.locator(`.card[data-request-id="${requestId}"][data-state=resolved]`).waitFor();
  await second.locator(`.card[data-request-id="${requestId}"][data-state=resolved]`).waitFor();
  const secondOutcome = await second.textContent(`.card[data-request-id="${requestId}"] .outcome`);
  const secondButtonsDisabled = await second.$$eval(
    `.card[data-request-id="${requestId}"] button`,
    (buttons) => buttons.every((b) => b.disabled),
  );
  await page.locator(".tool[data-status=completed]").waitFor();
  await page.locator(".msg.agent", { hasText: "edit: completed" }).waitFor();
  await page.locator(".decision[data-kind=file_access][data-verdict=allow]").waitFor();
  await page.locator(".note.turn").waitFor();
  log("allowed: the tool call completed, the second tab saw the card resolve");

  await page.screenshot({ path: input.screenshot, fullPage: false });
  log(`screenshot at ${input.screenshot}`);

  // Logging out ends the session server-side.
  await page.click("#logout");
  await page.locator("#login-form").waitFor({ state: "visible" });
  const afterLogout = await page.evaluate(async () => (await fetch("/capabilities")).status);

  return {
    sessionId,
    requestId,
    policy,
    cookie,
    visibleToScript,
    secondOutcome,
    secondButtonsDisabled,
    afterLogout,
  };
}

// A page on another origin (another port of 127.0.0.1: the same *site*, so
// the browser does send the SameSite=Strict cookie) tries to read and drive
// the daemon while the user is logged in to the console.
async function crossOriginMode() {
  const page = await newPage();
  await login(page);
  const evilHtml = `<!doctype html><title>elsewhere</title><script>
    const daemon = ${JSON.stringify(input.base)};
    const sessionId = ${JSON.stringify(input.sessionId)};
    const requestId = ${JSON.stringify(input.requestId)};
    const results = {};
    async function attempt(name, run) {
      try { results[name] = { read: true, value: await run() }; }
      catch (e) { results[name] = { read: false, error: String(e) }; }
    }
    (async () => {
      await attempt("capabilities", async () => (await fetch(daemon + "/capabilities", { credentials: "include" })).text());
      await attempt("sessions", async () => (await fetch(daemon + "/workspace/" + encodeURIComponent(${JSON.stringify(input.workspace)}) + "/sessions", { credentials: "include" })).text());
      await attempt("events", async () => (await fetch(daemon + "/session/" + sessionId + "/events?lastEventId=0", { credentials: "include" })).text());
      await attempt("vote", async () => (await fetch(daemon + "/permission/" + requestId, { method: "POST", credentials: "include", headers: { "content-type": "application/json" }, body: JSON.stringify({ outcome: { outcome: "selected", optionId: "proceed_once" } }) })).text());
      // Requests a page can send without CORS: the answers are opaque, and the daemon must refuse them.
      await fetch(daemon + "/permission/" + requestId, { method: "POST", mode: "no-cors", credentials: "include", headers: { "content-type": "text/plain" }, body: JSON.stringify({ outcome: { outcome: "selected", optionId: "proceed_once" } }) }).catch(() => {});
      await fetch(daemon + "/session", { method: "POST", mode: "no-cors", credentials: "include", headers: { "content-type": "text/plain" }, body: JSON.stringify({ cwd: ${JSON.stringify(input.otherWorkspace)} }) }).catch(() => {});
      results.noCorsSent = true;
      await new Promise((resolve) => {
        const source = new EventSource(daemon + "/session/" + sessionId + "/events?lastEventId=0", { withCredentials: true });
        let messages = 0;
        for (const type of ["session_update", "permission_request", "policy_decision"]) source.addEventListener(type, () => messages++);
        source.onmessage = () => messages++;
        source.onerror = () => { results.eventSource = { messages, readyState: source.readyState }; source.close(); resolve(); };
      });
      window.__results = results;
    })();
  </script>`;
  const server = createServer((request, response) => {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    response.end(evilHtml);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const evilOrigin = `http://127.0.0.1:${server.address().port}`;
  const evil = await newPage();
  // What the daemon answered the page, as the browser received it (before CORS hid it).
  const answers = [];
  evil.on("response", (response) => {
    if (response.url().startsWith(input.base)) answers.push({ url: response.url(), status: response.status() });
  });
  await evil.goto(evilOrigin + "/");
  await evil.waitForFunction(() => window.__results !== undefined);
  const results = await evil.evaluate(() => window.__results);
  server.close();
  return { evilOrigin, results, answers };
}

let result;
let failure = null;
try {
  result = input.mode === "cross-origin" ? await crossOriginMode() : await consoleMode();
} catch (error) {
  failure = `${error.stack || error}`;
} finally {
  await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
if (failure) fail(failure);
result.requested = requested;
result.pageErrors = consoleErrors;
console.log(JSON.stringify(result));
