#!/usr/bin/env bash
# Fuzzes the live HTTP API against its own OpenAPI document with schemathesis:
#
#   1. installs schemathesis (pinned, from PyPI) into .qserve-tools/schemathesis when missing;
#   2. starts the real qserve-host on 127.0.0.1, an ephemeral port, with the scripted fake
#      agent, a private workspace root and a component cache under target/;
#   3. runs `st run` against GET /openapi.json for a bounded time (--max-time, default 90 s):
#      no 5xx, every status, content type and body as the document says.
#
#   scripts/schemathesis.sh [--max-time SECONDS]
#
# Needs target/debug/qserve-host and target/debug/fake_agent (built when missing). A package
# that cannot be installed is an error, never a skip. Exits non-zero on any failure; the
# daemon is stopped however the script ends.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="$repo/.qserve-tools/schemathesis"
max_time=90

log() { printf '[schemathesis] %s\n' "$*" >&2; }
die() {
    printf '[schemathesis] error: %s\n' "$*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --max-time)
        max_time="${2:?--max-time needs a number of seconds}"
        shift 2
        ;;
    -h | --help)
        sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# ── schemathesis, pinned ────────────────────────────────────────────────────────────────
installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)"
if [ "$installed" != "$SCHEMATHESIS_VERSION" ]; then
    log "installing schemathesis==$SCHEMATHESIS_VERSION from PyPI into $venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" ||
        die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" ||
        die "pip could not install schemathesis==$SCHEMATHESIS_VERSION from PyPI"
fi

# ── the daemon under test ───────────────────────────────────────────────────────────────
host_bin="$repo/target/debug/qserve-host"
agent_bin="$repo/target/debug/fake-agent"
if [ ! -x "$host_bin" ] || [ ! -x "$agent_bin" ]; then
    log "building qserve-host and the fake agent"
    cargo build -q -p qserve-host -p qserve-tests --bins
fi

work="$(mktemp -d)"
daemon_pid=""
cleanup() {
    if [ -n "$daemon_pid" ]; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/ws"
# setsid: the daemon and its agents form their own group, so nothing outlives the script.
setsid "$host_bin" --hostname 127.0.0.1 --port 0 \
    --agent "$agent_bin" \
    --cache-dir "$repo/target/test-component-cache" \
    --max-sessions 8 --permission-timeout 2 \
    >"$work/daemon.out" 2>"$work/daemon.err" &
daemon_pid=$!

url=""
for _ in $(seq 600); do
    url="$(sed -n 's/.*listening on \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$work/daemon.out" "$work/daemon.err" | head -1)"
    [ -n "$url" ] && break
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/daemon.err" >&2; die "the daemon exited before listening"; }
    sleep 0.1
done
[ -n "$url" ] || { cat "$work/daemon.err" >&2; die "the daemon did not listen within 60 s"; }
log "daemon at $url (agent: fake_agent); fuzzing for up to ${max_time} s"

# The SSE route streams until the session ends: schemathesis gets its headers and status
# (the request timeout cuts the body), which is what the schema describes. One worker: with
# two, CPython 3.11 raised "AST constructor recursion depth mismatch" inside schemathesis'
# own threads (a tool error, not a finding about the API).
status=0
(cd "$work" && "$venv/bin/st" run "$url/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-time "$max_time" \
    --request-timeout 5 \
    --workers 1 \
    --suppress-health-check all) || status=$?

if [ "$status" -ne 0 ]; then
    log "daemon log tail:"
    tail -n 40 "$work/daemon.err" >&2 || true
    die "schemathesis found failures (exit $status)"
fi
grep -q 'panicked' "$work/daemon.err" && die "the daemon panicked during the run (see its log)"
log "no server errors, every response as the document says"
