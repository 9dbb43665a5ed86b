// Drives a running qserve-host with the REAL `DaemonClient` of `@qwen-code/sdk` (installed by
// scripts/npm-deps.sh into tests/npm/node_modules): the client qserve must stay wire-compatible
// with. Run by tests/tests/daemon_client.rs, which starts the daemons (fake ACP agent) and reads
// the report this script prints.
//
// Environment:
//   QSERVE_E2E_BASE_URL        daemon without a token (loopback bind)
//   QSERVE_E2E_AUTH_BASE_URL   daemon started with a token
//   QSERVE_E2E_TOKEN           that daemon's token
//   QSERVE_E2E_WORKSPACE       an empty absolute directory to open sessions in
//   QSERVE_E2E_NPM_DIR         optional: where package.json/node_modules live (default ../npm)
//
// Output: one JSON object on stdout, `{ok, sdkVersion, checks: [{name, ok, ms, detail|error}]}`;
// progress and diagnostics go to stderr. Exit code 0 when every check passed, 1 when one failed,
// 2 when the environment or the SDK is missing. Each check is independent enough that a failure
// names the first thing the real client and the daemon disagree on.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** How long one step (a prompt, an awaited event) may take on a loaded 2-core machine. */
const STEP_TIMEOUT_MS = 20_000;
/** The whole script; the Rust side kills us a little later than this. */
const SCRIPT_TIMEOUT_MS = 50_000;

const BASE_FEATURES = [
  'health',
  'capabilities',
  'session_create',
  'session_prompt',
  'session_cancel',
  'session_events',
  'permission_vote',
  'session_list',
  'session_set_model',
];

function log(...parts) {
  process.stderr.write(`daemon-client-e2e: ${parts.join(' ')}\n`);
}

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    log(`${name} is not set`);
    process.exit(2);
  }
  return value;
}

/** Loads the package's ESM entry the way `import '@qwen-code/sdk'` would from tests/npm. */
async function loadSdk() {
  const npmDir =
    process.env.QSERVE_E2E_NPM_DIR ?? fileURLToPath(new URL('../npm/', import.meta.url));
  try {
    const require = createRequire(join(npmDir, 'package.json'));
    const manifestPath = require.resolve('@qwen-code/sdk/package.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    const entry = manifest.exports?.['.']?.import ?? manifest.module;
    const sdk = await import(pathToFileURL(join(dirname(manifestPath), entry)).href);
    return { sdk, version: manifest.version };
  } catch (error) {
    log(`cannot load @qwen-code/sdk from ${npmDir} (run scripts/npm-deps.sh): ${error}`);
    process.exit(2);
  }
}

const baseUrl = requireEnv('QSERVE_E2E_BASE_URL');
const authBaseUrl = requireEnv('QSERVE_E2E_AUTH_BASE_URL');
const token = requireEnv('QSERVE_E2E_TOKEN');
const workspace = requireEnv('QSERVE_E2E_WORKSPACE');
// Without `token` the client falls back to this variable: no check may depend on the shell.
delete process.env.QWEN_SERVER_TOKEN;

const { sdk, version: sdkVersion } = await loadSdk();
const { DaemonClient, DaemonHttpError } = sdk;
if (typeof DaemonClient !== 'function' || typeof DaemonHttpError !== 'function') {
  log(`@qwen-code/sdk ${sdkVersion} exports no DaemonClient/DaemonHttpError`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Small helpers

class CheckFailed extends Error {
  name = 'CheckFailed';
}

function expect(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

function expectEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  expect(a === e, `${what}: expected ${e}, got ${a}`);
}

/** Everything a failure report needs about an error, DaemonHttpError status and body included. */
function describe(error) {
  if (error instanceof DaemonHttpError) {
    return { kind: 'DaemonHttpError', status: error.status, body: error.body, message: error.message };
  }
  if (error instanceof Error) {
    return { kind: error.name, message: error.message, stack: error.stack?.split('\n').slice(0, 4) };
  }
  return { kind: typeof error, message: String(error) };
}

/** Runs `promise` or throws naming `what` after `ms`. */
async function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Awaits `promise` expecting a DaemonHttpError of `status`; returns it. */
async function expectHttpError(what, status, promise) {
  let outcome;
  try {
    outcome = await within(STEP_TIMEOUT_MS, what, promise);
  } catch (error) {
    if (error instanceof CheckFailed) throw error;
    expect(
      error instanceof DaemonHttpError,
      `${what}: expected DaemonHttpError ${status}, got ${JSON.stringify(describe(error))}`,
    );
    expect(
      error.status === status,
      `${what}: expected status ${status}, got ${error.status} ${JSON.stringify(error.body)}`,
    );
    return error;
  }
  throw new CheckFailed(`${what}: expected DaemonHttpError ${status}, got success ${JSON.stringify(outcome)}`);
}

function textPrompt(text) {
  return { prompt: [{ type: 'text', text }] };
}

function chunkText(event) {
  const update = event?.data?.update;
  return event?.type === 'session_update' && update?.sessionUpdate === 'agent_message_chunk'
    ? update.content?.text
    : undefined;
}

/** A `fetch` that adds headers to every request the client makes. */
function fetchAdding(extraHeaders) {
  return (input, init = {}) => {
    const headers = new Headers(init.headers);
    for (const [name, value] of Object.entries(extraHeaders)) headers.set(name, value);
    return globalThis.fetch(input, { ...init, headers });
  };
}

/**
 * A `fetch` over node:http that sends `host` as the Host header. The global fetch (undici)
 * always writes the URL's authority there, so the daemon's Host allowlist cannot be reached
 * with it; node:http sends what it is given.
 */
function fetchWithHost(host) {
  return (input, init = {}) =>
    new Promise((resolve, reject) => {
      const url = new URL(typeof input === 'string' ? input : input.url);
      const headers = Object.fromEntries(new Headers(init.headers).entries());
      headers.host = host;
      const request = http.request(
        url,
        { method: init.method ?? 'GET', headers, signal: init.signal },
        (response) => {
          const chunks = [];
          response.on('data', (chunk) => chunks.push(chunk));
          response.on('error', reject);
          response.on('end', () => {
            const responseHeaders = new Headers();
            for (const [name, value] of Object.entries(response.headers)) {
              responseHeaders.set(name, Array.isArray(value) ? value.join(', ') : String(value));
            }
            const status = response.statusCode ?? 0;
            const body = status === 204 || status === 304 ? null : Buffer.concat(chunks);
            resolve(new Response(body, { status, headers: responseHeaders }));
          });
        },
      );
      request.on('error', reject);
      if (init.body !== undefined && init.body !== null) request.write(init.body);
      request.end();
    });
}

/**
 * One `subscribeEvents` subscription, pumped in the background so that a check can wait for
 * "the first event that …" while other requests run.
 */
class EventTap {
  constructor(client, sessionId, options = {}) {
    this.abort = new AbortController();
    this.events = [];
    this.wakers = new Set();
    this.ended = false;
    this.failure = undefined;
    const stream = client.subscribeEvents(sessionId, { ...options, signal: this.abort.signal });
    this.pumped = (async () => {
      try {
        for await (const event of stream) {
          this.events.push(event);
          this.wake();
        }
      } catch (error) {
        if (!this.abort.signal.aborted) this.failure = error;
      } finally {
        this.ended = true;
        this.wake();
      }
    })();
  }

  wake() {
    for (const waker of this.wakers) waker();
  }

  /** The first event at index >= `from` that satisfies `predicate`. */
  async waitFor(what, predicate, from = 0) {
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    for (let index = from; ; ) {
      for (; index < this.events.length; index++) {
        if (predicate(this.events[index])) return this.events[index];
      }
      if (this.failure) {
        throw new CheckFailed(`stream failed waiting for ${what}: ${JSON.stringify(describe(this.failure))}`);
      }
      if (this.ended) throw new CheckFailed(`stream ended waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = this.events.map((e) => `${e.id}:${e.type}`).slice(-10);
        throw new CheckFailed(`no ${what} within ${STEP_TIMEOUT_MS} ms (last events: ${seen.join(' ')})`);
      }
      await new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.wakers.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.wakers.add(done);
      });
    }
  }

  async close() {
    this.abort.abort();
    await this.pumped;
  }
}

// ---------------------------------------------------------------------------------------------
// The checks

const report = { ok: false, sdkVersion, checks: [] };

async function check(name, body) {
  const started = Date.now();
  log(`${name} …`);
  try {
    const detail = await body();
    report.checks.push({ name, ok: true, ms: Date.now() - started, ...(detail ? { detail } : {}) });
  } catch (error) {
    log(`${name} FAILED: ${JSON.stringify(describe(error))}`);
    report.checks.push({ name, ok: false, ms: Date.now() - started, error: describe(error) });
  }
}

function finish(exitCode) {
  report.ok = report.checks.length > 0 && report.checks.every((c) => c.ok);
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exitCode = exitCode ?? (report.ok ? 0 : 1);
}

const watchdog = setTimeout(() => {
  report.checks.push({ name: 'watchdog', ok: false, error: { message: `script over ${SCRIPT_TIMEOUT_MS} ms` } });
  finish(1);
  process.exit(1);
}, SCRIPT_TIMEOUT_MS);

const client = new DaemonClient({ baseUrl });
const rival = new DaemonClient({ baseUrl });
const state = { taps: [] };

await check('capabilities', async () => {
  const health = await within(STEP_TIMEOUT_MS, 'health()', client.health());
  expectEqual(health.status, 'ok', 'health().status');
  const caps = await within(STEP_TIMEOUT_MS, 'capabilities()', client.capabilities());
  expectEqual(caps.v, 1, 'capabilities.v');
  expect(Array.isArray(caps.features), `features is not an array: ${JSON.stringify(caps)}`);
  const positions = BASE_FEATURES.map((tag) => caps.features.indexOf(tag));
  expect(!positions.includes(-1), `base tags missing: ${JSON.stringify(caps.features)}`);
  expect(
    positions.every((at, i) => i === 0 || at > positions[i - 1]),
    `base tags out of order: ${JSON.stringify(caps.features)}`,
  );
  expect(Array.isArray(caps.modelServices), `modelServices is not an array: ${JSON.stringify(caps)}`);
  return { features: caps.features, mode: caps.mode };
});

await check('create_session', async () => {
  const session = await within(
    STEP_TIMEOUT_MS,
    'createOrAttachSession',
    client.createOrAttachSession({ workspaceCwd: workspace }),
  );
  expect(typeof session.sessionId === 'string' && session.sessionId.length > 0, `sessionId: ${JSON.stringify(session)}`);
  expectEqual(session.attached, false, 'first createOrAttachSession attached');
  expect(typeof session.workspaceCwd === 'string' && session.workspaceCwd.startsWith('/'), `workspaceCwd: ${JSON.stringify(session)}`);
  state.session = session;
  return session;
});

await check('attach_session', async () => {
  const again = await within(
    STEP_TIMEOUT_MS,
    'createOrAttachSession again',
    rival.createOrAttachSession({ workspaceCwd: workspace }),
  );
  expectEqual(again.attached, true, 'second createOrAttachSession attached');
  expectEqual(again.sessionId, state.session?.sessionId, 'attached session id');
  return again;
});

await check('session_scope_thread', async () => {
  const thread = await within(
    STEP_TIMEOUT_MS,
    'createOrAttachSession(thread)',
    rival.createOrAttachSession({ workspaceCwd: workspace, sessionScope: 'thread' }),
  );
  expectEqual(thread.attached, false, 'a thread-scoped create attached');
  expect(thread.sessionId !== state.session?.sessionId, `thread scope reused ${thread.sessionId}`);
  await within(STEP_TIMEOUT_MS, 'closeSession(thread)', rival.closeSession(thread.sessionId));
  return thread;
});

const sessionId = () => {
  expect(state.session, 'no session (create_session failed)');
  return state.session.sessionId;
};

await check('subscribe_and_prompt', async () => {
  const tap = new EventTap(client, sessionId(), { lastEventId: 0 });
  state.taps.push(tap);
  state.firstTap = tap;
  const result = await within(STEP_TIMEOUT_MS, 'prompt(chunks 5)', client.prompt(sessionId(), textPrompt('chunks 5')));
  expectEqual(result.stopReason, 'end_turn', 'stopReason');
  const chunks = [];
  for (let i = 0; i < 5; i++) {
    chunks.push(await tap.waitFor(`chunk ${i}`, (e) => chunkText(e)?.startsWith(`chunk ${i} `)));
  }
  const ids = chunks.map((e) => e.id);
  expect(ids.every((id) => Number.isSafeInteger(id) && id >= 1), `ids are not numbers: ${JSON.stringify(ids)}`);
  expect(ids.every((id, i) => i === 0 || id === ids[i - 1] + 1), `ids not consecutive: ${JSON.stringify(ids)}`);
  expect(chunks.every((e) => e.v === 1), 'every envelope has v: 1');
  expect(
    tap.events.every((e, i) => i === 0 || e.id === undefined || e.id > tap.events[i - 1].id),
    `ids not increasing on the stream: ${tap.events.map((e) => e.id).join(',')}`,
  );
  state.chunkIds = ids;
  return { ids };
});

await check('reconnect_with_last_event_id', async () => {
  expect(state.chunkIds, 'no chunk ids (subscribe_and_prompt failed)');
  await state.firstTap.close();
  const cursor = state.chunkIds[2];
  const tap = new EventTap(client, sessionId(), { lastEventId: cursor });
  state.taps.push(tap);
  state.tap = tap;
  await tap.waitFor('chunk 4 (replayed)', (e) => chunkText(e)?.startsWith('chunk 4 '));
  const replayed = tap.events.filter((e) => e.id !== undefined).map((e) => e.id);
  expectEqual(replayed[0], cursor + 1, 'first id after the cursor');
  expect(replayed.every((id) => id > cursor), `ids at or before the cursor ${cursor} came back: ${replayed}`);
  const texts = tap.events.map(chunkText).filter(Boolean).map((t) => t.split(' ').slice(0, 2).join(' '));
  expectEqual(texts, ['chunk 3', 'chunk 4'], 'replayed chunks');
  const result = await within(STEP_TIMEOUT_MS, 'prompt(echo)', client.prompt(sessionId(), textPrompt('echo live-after-reconnect')));
  expectEqual(result.stopReason, 'end_turn', 'stopReason');
  const live = await tap.waitFor('the live chunk', (e) => chunkText(e) === 'live-after-reconnect');
  // The first turn ended with its turn_complete (the id after its last chunk);
  // the live chunk follows it with no gap.
  const turnEnd = tap.events.find((e) => e.type === 'turn_complete');
  expect(turnEnd, `no turn_complete replayed: ${tap.events.map((e) => e.type).join(',')}`);
  expectEqual(turnEnd.id, state.chunkIds[4] + 1, 'id of the replayed turn_complete');
  expectEqual(live.id, turnEnd.id + 1, 'id of the first live event after the replay');
  return { cursor, replayed, liveId: live.id };
});

await check('invalid_option_id_is_400', async () => {
  const tap = state.tap;
  expect(tap, 'no subscription (reconnect failed)');
  const from = tap.events.length;
  state.permissionTurn = client.prompt(sessionId(), textPrompt('permission edit'));
  state.permissionTurn.catch(() => {}); // awaited in the next check
  const request = await tap.waitFor('permission_request', (e) => e.type === 'permission_request', from);
  const data = request.data;
  expect(typeof data?.requestId === 'string', `requestId: ${JSON.stringify(data)}`);
  expectEqual(data.sessionId, sessionId(), 'permission_request sessionId');
  const offered = (data.options ?? []).map((o) => o.optionId);
  expectEqual(offered, ['proceed_once', 'proceed_always', 'cancel'], 'offered options');
  state.permission = data;
  const error = await expectHttpError(
    'respondToPermission(not offered)',
    400,
    client.respondToPermission(data.requestId, { outcome: { outcome: 'selected', optionId: 'not-offered' } }),
  );
  expectEqual(error.body?.code, 'invalid_option_id', 'error code');
  expect(typeof error.body?.error === 'string', `error body: ${JSON.stringify(error.body)}`);
  return { requestId: data.requestId, body: error.body };
});

await check('permission_vote_race', async () => {
  const request = state.permission;
  expect(request, 'no pending permission (invalid_option_id_is_400 failed)');
  const votes = [
    { client, optionId: 'proceed_once' },
    { client: rival, optionId: 'proceed_always' },
  ];
  const answers = await within(
    STEP_TIMEOUT_MS,
    'two respondToPermission',
    Promise.all(
      votes.map((v) =>
        v.client.respondToPermission(request.requestId, { outcome: { outcome: 'selected', optionId: v.optionId } }),
      ),
    ),
  );
  expect(answers.filter((won) => won === true).length === 1, `exactly one vote wins: ${JSON.stringify(answers)}`);
  expect(answers.filter((won) => won === false).length === 1, `exactly one vote loses: ${JSON.stringify(answers)}`);
  const winner = votes[answers.indexOf(true)].optionId;
  const result = await within(STEP_TIMEOUT_MS, 'the permission turn', state.permissionTurn);
  expectEqual(result.stopReason, 'end_turn', 'stopReason');
  const resolved = await state.tap.waitFor(
    'permission_resolved',
    (e) => e.type === 'permission_resolved' && e.data?.requestId === request.requestId,
  );
  expectEqual(resolved.data.outcome?.optionId, winner, 'resolved option');
  await state.tap.waitFor('the outcome chunk', (e) => chunkText(e) === `outcome: selected ${winner}`);
  const late = await within(
    STEP_TIMEOUT_MS,
    'a vote after the race',
    client.respondToPermission(request.requestId, { outcome: { outcome: 'cancelled' } }),
  );
  expectEqual(late, false, 'a vote on a resolved request');
  return { answers, winner };
});

await check('cancel', async () => {
  const tap = state.tap;
  expect(tap, 'no subscription');
  const from = tap.events.length;
  const turn = client.prompt(sessionId(), textPrompt('permission execute'));
  turn.catch(() => {});
  // The pending permission proves the turn is running when the cancel arrives.
  const request = await tap.waitFor('permission_request', (e) => e.type === 'permission_request', from);
  const cancelled = await within(STEP_TIMEOUT_MS, 'cancel()', rival.cancel(sessionId()));
  expectEqual(cancelled, undefined, 'cancel() result');
  const result = await within(STEP_TIMEOUT_MS, 'the cancelled turn', turn);
  expectEqual(result.stopReason, 'cancelled', 'stopReason');
  const vote = await within(
    STEP_TIMEOUT_MS,
    'a vote after the cancel',
    client.respondToPermission(request.data.requestId, { outcome: { outcome: 'selected', optionId: 'proceed_once' } }),
  );
  expectEqual(vote, false, 'the cancel resolved the pending permission');
  return { stopReason: result.stopReason };
});

await check('list_workspace_sessions', async () => {
  const sessions = await within(STEP_TIMEOUT_MS, 'listWorkspaceSessions', client.listWorkspaceSessions(workspace));
  expect(Array.isArray(sessions), `not an array: ${JSON.stringify(sessions)}`);
  const mine = sessions.filter((s) => s.sessionId === sessionId());
  expectEqual(mine.length, 1, 'our session in the list');
  expectEqual(mine[0].workspaceCwd, state.session.workspaceCwd, 'listed workspaceCwd');
  return { sessions };
});

await check('set_session_model', async () => {
  const from = state.tap?.events.length ?? 0;
  const result = await within(STEP_TIMEOUT_MS, 'setSessionModel', client.setSessionModel(sessionId(), 'fake-model-b'));
  expect(result !== null && typeof result === 'object' && !Array.isArray(result), `result: ${JSON.stringify(result)}`);
  const switched = await state.tap.waitFor('model_switched', (e) => e.type === 'model_switched', from);
  expectEqual(switched.data?.modelId, 'fake-model-b', 'model_switched modelId');
  return { result, event: switched.data };
});

await check('close_session', async () => {
  const closed = await within(STEP_TIMEOUT_MS, 'closeSession', client.closeSession(sessionId()));
  expectEqual(closed, undefined, 'closeSession() result');
  const sessions = await within(STEP_TIMEOUT_MS, 'listWorkspaceSessions', client.listWorkspaceSessions(workspace));
  expect(!sessions.some((s) => s.sessionId === sessionId()), `closed session still listed: ${JSON.stringify(sessions)}`);
  await expectHttpError('prompt on a closed session', 404, client.prompt(sessionId(), textPrompt('echo gone')));
  // The client treats 404 as "already gone": closing twice is not an error.
  await within(STEP_TIMEOUT_MS, 'closeSession again', client.closeSession(sessionId()));
  return { listedAfterClose: sessions.length };
});

for (const tap of state.taps) await tap.close();

// --- authentication and the browser guards ---------------------------------------------------

await check('wrong_token_is_401', async () => {
  const intruder = new DaemonClient({ baseUrl: authBaseUrl, token: `${token}-wrong` });
  const caps = await expectHttpError('capabilities() with a wrong token', 401, intruder.capabilities());
  await expectHttpError(
    'createOrAttachSession with a wrong token',
    401,
    intruder.createOrAttachSession({ workspaceCwd: workspace }),
  );
  // Before any routing: a wrong token must not learn whether a session exists.
  await expectHttpError(
    'subscribeEvents with a wrong token',
    401,
    intruder.subscribeEvents('no-such-session', { lastEventId: 0 }).next(),
  );
  const anonymous = new DaemonClient({ baseUrl: authBaseUrl });
  await expectHttpError('capabilities() without a token', 401, anonymous.capabilities());
  // On a loopback bind /health stays open, so probes need no secret.
  const health = await within(STEP_TIMEOUT_MS, 'health() without a token', anonymous.health());
  expectEqual(health.status, 'ok', 'health().status');
  return { body: caps.body };
});

await check('right_token_works', async () => {
  const owner = new DaemonClient({ baseUrl: authBaseUrl, token });
  const caps = await within(STEP_TIMEOUT_MS, 'capabilities()', owner.capabilities());
  expectEqual(caps.v, 1, 'capabilities.v');
  const session = await within(
    STEP_TIMEOUT_MS,
    'createOrAttachSession',
    owner.createOrAttachSession({ workspaceCwd: workspace }),
  );
  const tap = new EventTap(owner, session.sessionId, { lastEventId: 0 });
  try {
    const result = await within(STEP_TIMEOUT_MS, 'prompt', owner.prompt(session.sessionId, textPrompt('echo with-token')));
    expectEqual(result.stopReason, 'end_turn', 'stopReason');
    await tap.waitFor('the chunk', (e) => chunkText(e) === 'with-token');
  } finally {
    await tap.close();
  }
  await within(STEP_TIMEOUT_MS, 'closeSession', owner.closeSession(session.sessionId));
  return { sessionId: session.sessionId };
});

await check('origin_header_is_403', async () => {
  const browser = new DaemonClient({ baseUrl, fetch: fetchAdding({ Origin: 'http://evil.example' }) });
  const error = await expectHttpError('capabilities() with an Origin', 403, browser.capabilities());
  expect(typeof error.body?.error === 'string', `403 body is not the JSON error envelope: ${JSON.stringify(error.body)}`);
  const withToken = new DaemonClient({
    baseUrl: authBaseUrl,
    token,
    fetch: fetchAdding({ Origin: 'http://evil.example' }),
  });
  await expectHttpError('capabilities() with an Origin and the right token', 403, withToken.capabilities());
  return { body: error.body };
});

await check('foreign_host_is_403', async () => {
  const port = new URL(baseUrl).port;
  const rebinding = new DaemonClient({ baseUrl, fetch: fetchWithHost(`evil.example:${port}`) });
  const error = await expectHttpError('capabilities() with Host evil.example', 403, rebinding.capabilities());
  expect(typeof error.body?.error === 'string', `403 body is not the JSON error envelope: ${JSON.stringify(error.body)}`);
  // The same path with an allowed Host works, so the 403 is the Host check, not the fetch.
  const local = new DaemonClient({ baseUrl, fetch: fetchWithHost(`localhost:${port}`) });
  const caps = await within(STEP_TIMEOUT_MS, 'capabilities() with Host localhost', local.capabilities());
  expectEqual(caps.v, 1, 'capabilities.v');
  return { body: error.body };
});

clearTimeout(watchdog);
finish();
