// An example qserve permission policy in JavaScript (qserve:policy@0.2.0).
//
// Built into a WebAssembly component with ComponentizeJS (StarlingMonkey);
// see examples/policies/README.md. The Python example (../python/app.py)
// makes the same decisions, and examples/policies/cases.toml checks both.
//
// Behaviour:
//   * reads, searches and thinking: answered at once with the offered
//     allow-once option;
//   * a shell command that starts with one of the configured `deny_commands`
//     prefixes: rejected;
//   * anything else: the clients are asked (the daemon's own timeout applies);
//   * sessions may always be created or attached to;
//   * a file access is allowed only inside the session's workspace.
//
// Config (`--policy-config`, JSON; empty means no denied commands):
//     {"deny_commands": ["rm ", "git push"]}
//
// A prefix match on a shell command is easy to evade (`true && rm -rf /`); it
// shows the mechanics, it is not a sandbox.
//
// How WIT maps to JS here (ComponentizeJS / jco conventions): the exported
// interface `decide` is the exported object `decide`, functions in camelCase;
// records are objects with camelCase fields; variants are {tag, val};
// enums are strings; option<T> is T or undefined; u64 is a BigInt;
// result<T, E> is "return T" or "throw E".

import { log } from 'qserve:policy/host@0.2.0';

const NAME = 'example-js';
const VERSION = '0.1.0';

// Set by init; every instance is initialised before its first decision.
let denyCommands = [];

/** Returns the denied prefixes, or throws a string saying what is wrong. */
function parseConfig(text) {
  if (text.trim() === '') {
    return [];
  }
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw `config is not valid JSON: ${e.message}`;
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw 'config must be a JSON object';
  }
  const unknown = Object.keys(doc).filter((k) => k !== 'deny_commands').sort();
  if (unknown.length > 0) {
    throw `unknown config key ${JSON.stringify(unknown[0])} (known: deny_commands)`;
  }
  const prefixes = doc.deny_commands ?? [];
  if (!Array.isArray(prefixes) || !prefixes.every((p) => typeof p === 'string')) {
    throw 'deny_commands must be a list of strings';
  }
  if (prefixes.some((p) => p.trim() === '')) {
    // An empty prefix would deny every command: almost surely a mistake.
    throw 'deny_commands entries must not be empty';
  }
  return prefixes;
}

const ASK = { tag: 'ask-clients', val: undefined };

export const decide = {
  init(config) {
    denyCommands = parseConfig(config);
    log('info', `${NAME} ${VERSION}: ${denyCommands.length} denied command prefixes`);
    return { name: NAME, version: VERSION };
  },

  onPermissionRequest(ctx, call, options) {
    const kind = call.kind.tag;
    if (kind === 'read' || kind === 'search' || kind === 'think') {
      const allowOnce = options.find((o) => o.kind.tag === 'allow-once');
      if (allowOnce !== undefined) {
        return { verdict: { tag: 'select', val: allowOnce.optionId }, reason: 'reads are allowed' };
      }
      return { verdict: ASK, reason: 'asking the clients: no allow-once option offered' };
    }
    if (kind === 'execute' && call.command !== undefined && call.command !== null) {
      // Leading blanks must not slip a denied command past the prefix test.
      const command = call.command.trimStart();
      const prefix = denyCommands.find((p) => command.startsWith(p));
      if (prefix !== undefined) {
        return {
          verdict: { tag: 'reject' },
          reason: `command starts with denied prefix ${JSON.stringify(prefix)}`,
        };
      }
    }
    return { verdict: ASK, reason: 'asking the clients' };
  },

  onSessionCreate(ctx) {
    return { allow: true, reason: 'sessions are allowed' };
  },

  onFileAccess(ctx, access, path) {
    if (path.insideWorkspace) {
      return { allow: true, reason: 'inside the workspace' };
    }
    return { allow: false, reason: 'outside the workspace' };
  },
};
