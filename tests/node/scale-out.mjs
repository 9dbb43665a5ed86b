// The REAL `DaemonClient` of `@qwen-code/sdk` through nginx in front of two daemons (run by
// tests/tests/scale_out.rs, which starts the daemons, nginx, and reads the report printed here).
// The client is given the proxy's URL only: every request must reach the daemon that owns the
// session or the workspace, or the client sees a 404.
//
// Environment:
//   QSERVE_E2E_BASE_URL     the proxy
//   QSERVE_E2E_TOKEN        the daemons' token
//   QSERVE_E2E_WORKSPACES   a JSON array of empty absolute directories
//   QSERVE_E2E_NPM_DIR      where package.json/node_modules live
//
// Output: one JSON line `{ok, sessions: [{cwd, sessionId}], voted: [sessionId…], error?}`.
// Exit 0 when everything worked, 1 on a failure, 2 when the environment or the SDK is missing.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const STEP_TIMEOUT_MS = 20_000;
const SCRIPT_TIMEOUT_MS = 80_000;

function log(...parts) {
  process.stderr.write(`scale-out: ${parts.join(' ')}\n`);
}

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    log(`${name} is not set`);
    process.exit(2);
  }
  return value;
}

const baseUrl = requireEnv('QSERVE_E2E_BASE_URL');
const token = requireEnv('QSERVE_E2E_TOKEN');
const workspaces = JSON.parse(requireEnv('QSERVE_E2E_WORKSPACES'));
const npmDir = requireEnv('QSERVE_E2E_NPM_DIR');
delete process.env.QWEN_SERVER_TOKEN;

let sdk;
try {
  const require = createRequire(join(npmDir, 'package.json'));
  const manifestPath = require.resolve('@qwen-code/sdk/package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  const entry = manifest.exports?.['.']?.import ?? manifest.module;
  sdk = await import(pathToFileURL(join(dirname(manifestPath), entry)).href);
} catch (error) {
  log(`cannot load @qwen-code/sdk from ${npmDir} (run scripts/npm-deps.sh): ${error}`);
  process.exit(2);
}
const { DaemonClient } = sdk;

const report = { ok: false, sessions: [], voted: [] };
const watchdog = setTimeout(() => {
  report.error = `script over ${SCRIPT_TIMEOUT_MS} ms`;
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(1);
}, SCRIPT_TIMEOUT_MS);

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

async function within(what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function chunkText(event) {
  const update = event?.data?.update;
  return event?.type === 'session_update' && update?.sessionUpdate === 'agent_message_chunk'
    ? update.content?.text
    : undefined;
}

/** The first event of `stream` satisfying `predicate` (the stream is consumed up to it). */
async function next(stream, what, predicate) {
  return within(
    what,
    (async () => {
      for (;;) {
        const { value, done } = await stream.next();
        if (done) throw new Error(`stream ended waiting for ${what}`);
        if (predicate(value)) return value;
      }
    })(),
  );
}

const client = new DaemonClient({ baseUrl, token });

try {
  const health = await within('health()', client.health());
  expect(health.status === 'ok', `health: ${JSON.stringify(health)}`);

  for (const cwd of workspaces) {
    const session = await within(`create in ${cwd}`, client.createOrAttachSession({ workspaceCwd: cwd }));
    expect(session.attached === false, `first create attached: ${JSON.stringify(session)}`);
    report.sessions.push({ cwd, sessionId: session.sessionId });
    const again = await within(`attach in ${cwd}`, client.createOrAttachSession({ workspaceCwd: cwd }));
    expect(
      again.attached === true && again.sessionId === session.sessionId,
      `a second create for ${cwd} reached another daemon: ${JSON.stringify(again)} after ${session.sessionId}`,
    );
    const listed = await within(`list ${cwd}`, client.listWorkspaceSessions(cwd));
    expect(
      listed.some((s) => s.sessionId === session.sessionId),
      `listing ${cwd} did not reach its owner: ${JSON.stringify(listed)}`,
    );
  }

  // One session per node: a streamed turn with a permission vote, all through the proxy.
  const byNode = new Map();
  for (const s of report.sessions) {
    const node = s.sessionId.split('.')[0];
    if (!byNode.has(node)) byNode.set(node, s.sessionId);
  }
  for (const sessionId of byNode.values()) {
    const abort = new AbortController();
    const stream = client.subscribeEvents(sessionId, { lastEventId: 0, signal: abort.signal });
    const turn = client.prompt(sessionId, { prompt: [{ type: 'text', text: 'permission edit' }] });
    turn.catch(() => {});
    const request = await next(stream, 'permission_request', (e) => e.type === 'permission_request');
    const won = await within(
      'respondToPermission',
      client.respondToPermission(request.data.requestId, { outcome: { outcome: 'selected', optionId: 'proceed_once' } }),
    );
    expect(won === true, `the vote on ${request.data.requestId} did not win: ${won}`);
    await next(stream, 'the outcome chunk', (e) => chunkText(e) === 'outcome: selected proceed_once');
    const result = await within('the turn', turn);
    expect(result.stopReason === 'end_turn', `stopReason: ${JSON.stringify(result)}`);
    abort.abort();
    await stream.return?.();
    report.voted.push(sessionId);
  }
  report.ok = true;
} catch (error) {
  report.error = error?.stack ?? String(error);
  log(`FAILED: ${report.error}`);
}
clearTimeout(watchdog);
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exitCode = report.ok ? 0 : 1;
