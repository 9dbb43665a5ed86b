#!/usr/bin/env bash
# Builds the example permission policies into WebAssembly components:
#
#   examples/policies/python  (componentize-py)  → target/example-policies/policy-python.wasm
#   examples/policies/js      (ComponentizeJS)   → target/example-policies/policy-js.wasm
#   examples/policies/rust    (the qserve SDK)   → target/example-policies/policy-rust.wasm
#                             (built by guest/build.sh --policy: the twin the other two match)
#
# then checks each: it must export qserve:policy/decide@0.2.0 and import nothing but
# qserve:policy/{host,types}@0.2.0 and WASI (read from the component with `jco wit`), and it
# must pass every case of examples/policies/cases.toml, run in wasmtime (wasmtime-py).
#
#   scripts/build-example-policies.sh              build what changed, check, run the cases
#   scripts/build-example-policies.sh --with-wasi  also build policy-{python,js}-wasi.wasm,
#                                                  the toolchains' WASI-importing variants
#   scripts/build-example-policies.sh --no-test    skip the case table (the import/export
#                                                  check still runs)
#   scripts/build-example-policies.sh --force      rebuild even when nothing changed
#
# Toolchains come from the package registries only, at pinned versions, and are installed
# when missing: PyPI's componentize-py and wasmtime into a venv under .qserve-tools/ (not
# committed), npm's @bytecodealliance/componentize-js and jco with `npm ci` from
# examples/policies/js/package-lock.json. A toolchain that cannot be had is an error, never a
# skip. Idempotent: a second run with nothing changed reinstalls and rebuilds nothing (each
# output has a stamp of everything it is built from) and takes seconds.
#
# Why the default components import no WASI at all: a policy needs none (its only way out is
# the contract's `host`), both toolchains can leave it out (componentize-py --stub-wasi,
# ComponentizeJS --disable all), and a component that imports nothing cannot use a hole in
# the host's WASI lockdown. The price: an uncaught exception traps (the daemon fails closed)
# instead of printing a traceback. --with-wasi builds the other kind for comparison.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1
WASMTIME_PY_VERSION=50.0.1
COMPONENTIZE_JS_VERSION=0.23.0 # and jco 1.35.0: both pinned in examples/policies/js/package-lock.json
MIN_PYTHON=3.11                # tomllib (run_cases.py)
MIN_NODE_MAJOR=20

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
examples="$repo/examples/policies"
wit="$repo/wit/policy"
world=policy
out="$repo/target/example-policies"
stamps="$out/.stamps"
venv="$repo/.qserve-tools/policy-py"
js_dir="$examples/js"

log() { printf '[example-policies] %s\n' "$*" >&2; }
die() {
    printf '[example-policies] error: %s\n' "$*" >&2
    exit 1
}

with_wasi=0
run_tests=1
force=0
for arg in "$@"; do
    case "$arg" in
    --with-wasi) with_wasi=1 ;;
    --no-test) run_tests=0 ;;
    --force) force=1 ;;
    -h | --help)
        sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$arg' (see --help)" ;;
    esac
done

script_started=$(date +%s)
elapsed() { echo "$(($(date +%s) - $1)) s"; }
oneline() { tr '\n' ' ' <<<"$1" | sed 's/ *$//'; } # a list, one item a line, on one line

mkdir -p "$out" "$stamps"
# One build at a time: two would race on the venv, node_modules and the outputs.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$out/.lock"
    flock 9
fi

# ── preflight ───────────────────────────────────────────────────────────────────────────
command -v python3 >/dev/null 2>&1 || die "python3 not found (Debian: apt-get install python3 python3-venv)"
python3 -c "import sys; sys.exit(0 if sys.version_info >= (${MIN_PYTHON/./, }) else 1)" ||
    die "python3 is $(python3 --version 2>&1), $MIN_PYTHON or newer is needed"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    die "node and npm not found (Debian: apt-get install nodejs npm; node $MIN_NODE_MAJOR or newer)"
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge "$MIN_NODE_MAJOR" ] || die "node is $(node --version), $MIN_NODE_MAJOR or newer is needed"

# ── Python toolchain: componentize-py and wasmtime-py in a venv ─────────────────────────
venv_versions() {
    "$venv/bin/python" -c '
import importlib.metadata as m
print(m.version("componentize-py"), m.version("wasmtime"))' 2>/dev/null || true
}
want_py="$COMPONENTIZE_PY_VERSION $WASMTIME_PY_VERSION"
if [ "$(venv_versions)" != "$want_py" ]; then
    started=$(date +%s)
    if [ ! -x "$venv/bin/python" ]; then
        log "creating the venv $venv"
        if ! python3 -m venv "$venv"; then
            # A fresh Debian machine has python3 without ensurepip; as root, install it.
            rm -rf "$venv"
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
                log "python3 -m venv failed: installing python3-venv with apt-get"
                apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv ||
                    die "apt-get could not install python3-venv"
                python3 -m venv "$venv" || die "python3 -m venv failed after installing python3-venv"
            else
                die "python3 -m venv failed (Debian: apt-get install python3-venv)"
            fi
        fi
    fi
    log "installing componentize-py==$COMPONENTIZE_PY_VERSION wasmtime==$WASMTIME_PY_VERSION from PyPI"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "componentize-py==$COMPONENTIZE_PY_VERSION" "wasmtime==$WASMTIME_PY_VERSION" ||
        die "pip could not install componentize-py==$COMPONENTIZE_PY_VERSION and wasmtime==$WASMTIME_PY_VERSION from PyPI"
    [ "$(venv_versions)" = "$want_py" ] ||
        die "after pip install the venv has '$(venv_versions)', expected '$want_py'"
    log "Python toolchain installed in $(elapsed "$started")"
fi
componentize_py="$venv/bin/componentize-py"

# ── JS toolchain: npm ci from the committed lockfile ────────────────────────────────────
lock_sum="$(sha256sum <"$js_dir/package-lock.json" | cut -d' ' -f1)"
js_stamp="$js_dir/node_modules/.qserve-package-lock.sha256"
if [ "$(cat "$js_stamp" 2>/dev/null)" != "$lock_sum" ] ||
    [ ! -x "$js_dir/node_modules/.bin/componentize-js" ] || [ ! -x "$js_dir/node_modules/.bin/jco" ]; then
    started=$(date +%s)
    log "installing the JS toolchain: npm ci in examples/policies/js (npm $(npm --version), node $(node --version))"
    # --ignore-scripts: no package in the lock needs an install script; none gets to run one.
    (cd "$js_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
        die "npm ci failed in $js_dir: a locked package could not be fetched from the npm registry"
    echo "$lock_sum" >"$js_stamp"
    log "JS toolchain installed in $(elapsed "$started")"
fi
componentize_js="$js_dir/node_modules/.bin/componentize-js"
jco="$js_dir/node_modules/.bin/jco"
got_js="$(node -p "require('$js_dir/node_modules/@bytecodealliance/componentize-js/package.json').version")"
[ "$got_js" = "$COMPONENTIZE_JS_VERSION" ] ||
    die "node_modules has componentize-js $got_js, expected $COMPONENTIZE_JS_VERSION (package-lock.json out of step?)"
jco_version="$("$jco" --version)"

# ── build ───────────────────────────────────────────────────────────────────────────────
# Prints the hash of everything an output is built from: the sources, the WIT, the tool
# versions and the build command.
inputs_hash() { # <source dir> <command words...>
    local dir="$1"
    shift
    {
        (cd "$repo" && find "${dir#"$repo"/}" wit/policy \
            -name node_modules -prune -o -name __pycache__ -prune -o -type f -print0 |
            LC_ALL=C sort -z | xargs -0 sha256sum)
        echo "componentize-py $COMPONENTIZE_PY_VERSION componentize-js $COMPONENTIZE_JS_VERSION jco $jco_version"
        echo "$lock_sum"
        printf '%s\n' "$@" "${py_cmd[@]}" "${js_cmd[@]}"
    } | sha256sum | cut -d' ' -f1
}

# build <output name> <source dir> <command...>: runs the command (which writes "$tmp_out")
# unless the output is up to date.
built=()
build() {
    local name="$1" dir="$2"
    shift 2
    local target="$out/$name.wasm" stamp="$stamps/$name.inputs" hash
    hash="$(inputs_hash "$dir" "$@")"
    if [ "$force" = 0 ] && [ -f "$target" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
        log "$name.wasm is up to date"
    else
        local started
        started=$(date +%s)
        log "building $name.wasm"
        tmp_out="$target.tmp"
        rm -f "$tmp_out" "$stamp"
        (cd "$dir" && "$@") || die "building $name.wasm failed (command: $*)"
        [ -s "$tmp_out" ] || die "building $name.wasm wrote no component"
        mv "$tmp_out" "$target"
        echo "$hash" >"$stamp"
        log "built $name.wasm in $(elapsed "$started")"
    fi
    built+=("$name")
}

# componentize-py finds the app module `app` on -p; the output path must be absolute
# because the command runs in the source directory.
py_cmd=("$componentize_py" -q -d "$wit" -w "$world" componentize -p . app)
js_all_features=(stdio random clocks http fetch-event)
js_cmd=("$componentize_js" --wit "$wit" --world-name "$world" policy.js)

tmp_out=""
build_py() { "${py_cmd[@]}" "$@" -o "$tmp_out"; }
build_js() { "${js_cmd[@]}" "$@" -o "$tmp_out"; }
build policy-python "$examples/python" build_py --stub-wasi
build policy-js "$examples/js" build_js --disable "${js_all_features[@]}"
if [ "$with_wasi" = 1 ]; then
    build policy-python-wasi "$examples/python" build_py
    # A policy host has no wasi:http: leave out what would import it, keep the rest.
    build policy-js-wasi "$examples/js" build_js --disable http fetch-event
fi

# ── the Rust twin: the same decisions on the SDK, built like any policy crate ───────────
# (guest/build.sh finds or installs the guest toolchain; cargo rebuilds only what changed.)
log "building policy-rust.wasm (guest/build.sh --policy examples/policies/rust)"
bash "$repo/guest/build.sh" --policy "$examples/rust" ||
    die "building policy-rust.wasm failed (rerun: bash guest/build.sh --policy examples/policies/rust)"
cp "$examples/rust/target/policy-example-rust.wasm" "$out/policy-rust.wasm.tmp"
mv "$out/policy-rust.wasm.tmp" "$out/policy-rust.wasm"
built+=(policy-rust)

# ── check the contract: exports and imports, read from the component itself ────────────
for name in "${built[@]}"; do
    target="$out/$name.wasm"
    wit_text="$("$jco" wit "$target")" || die "jco wit could not read $name.wasm"
    exports="$(sed -n 's/^  export \([^ :]*:[^ ;]*\);$/\1/p; s/^  export \([a-z0-9-]*\): .*/\1/p' <<<"$wit_text" | sort)"
    imports="$(sed -n 's/^  import \([^;]*\);$/\1/p' <<<"$wit_text" | sort)"
    grep -qx 'qserve:policy/decide@0.2.0' <<<"$exports" ||
        die "$name.wasm does not export qserve:policy/decide@0.2.0 (exports: $(oneline "$exports"))"
    foreign="$(grep -v -e '^qserve:policy/host@0\.2\.0$' -e '^qserve:policy/types@0\.2\.0$' -e '^wasi:' <<<"$imports" || true)"
    [ -z "$foreign" ] || die "$name.wasm imports outside the contract and WASI: $(oneline "$foreign")"
    wasi="$(grep '^wasi:' <<<"$imports" || true)"
    log "$name.wasm: $(stat -c %s "$target") bytes; exports $(oneline "$exports")"
    log "$name.wasm: imports $(grep -v '^wasi:' <<<"$imports" | tr '\n' ' ')+ $(grep -c . <<<"$wasi" || true) WASI interfaces${wasi:+: $(oneline "$wasi")}"
done

# ── run the case table in wasmtime ──────────────────────────────────────────────────────
if [ "$run_tests" = 1 ]; then
    for name in "${built[@]}"; do
        log "running examples/policies/cases.toml against $name.wasm"
        "$venv/bin/python" "$examples/run_cases.py" --cache-dir "$out/.wasmtime-cache" "$out/$name.wasm" ||
            die "$name.wasm failed the case table (rerun: $venv/bin/python examples/policies/run_cases.py -v $out/$name.wasm)"
    done
fi

log "done in $(elapsed "$script_started"): componentize-py $COMPONENTIZE_PY_VERSION, componentize-js $COMPONENTIZE_JS_VERSION, jco $jco_version, wasmtime-py $WASMTIME_PY_VERSION"
