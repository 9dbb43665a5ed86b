#!/usr/bin/env bash
# Builds every Wasm guest component of qserve.
#
#   guest/build.sh                    build all components into target/guests/
#   guest/build.sh --embed            … and refresh host/runtime/embedded/ (core.wasm,
#                                     policy-default.wasm, policy-readonly.wasm, SOURCES.sha256)
#   guest/build.sh --check-embedded   fail when host/runtime/embedded/ is stale
#                                     (no build; compares the source hash only)
#   guest/build.sh --policy DIR       build only the policy crate in DIR (a copy of
#                                     guest/templates/policy-starter, say) into
#                                     DIR/target/<package>.wasm
#
# Steps: (1) `cargo build` the cdylibs in guest/components for
# wasm32-unknown-unknown, (2) turn each core module into a component with
# guest/componentize (wit-component), which also checks the component's
# imports and exports against the WIT worlds. One test guest
# (policy-hostile-table) is hand-written WAT instead of a crate; step 2 reads
# it and embeds its world from wit/policy.
#
# Contracts: wit/policy (qserve:policy@0.2.0, public, for policies),
# wit/core (qserve:core@0.1.0, internal, for the core), and
# guest/legacy-wit (the old qserve:bridge@0.1.0, only for the test guest the
# host must refuse).
#
# Toolchain: rustup's wasm32-unknown-unknown target when installed (the
# ordinary developer path: `rustup target add wasm32-unknown-unknown`).
# Otherwise Debian's rustc-web (Rust 1.96, no prebuilt wasm std) building std
# from source with -Zbuild-std; see /work/shared/TOOLCHAIN.md.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
components_dir="$repo/guest/components"
guest_target_dir="$components_dir/target"
out_dir="$repo/target/guests"
embedded_dir="$repo/host/runtime/embedded"
wasm_target="wasm32-unknown-unknown"

# The guest sources the embedded components are built from. Their hash is
# recorded next to the embedded bytes so staleness is detectable without a
# Wasm toolchain. Any directory named `target` is skipped.
hashed_sources=(wit guest/legacy-wit guest/core-logic guest/policy-logic guest/components guest/rules-logic)
# The SDK the policies are exported through, and the cedar policy's logic.
hashed_sources+=(guest/sdk guest/cedar-logic)

# cargo package name (or `wat:PATH` under guest/components for a WAT module)
# → component name, and what each must import / export. Interface names are
# the fully qualified WIT names; imports may be a subset of the list (unused
# ones vanish), exports must match exactly. A policy imports `types` (type
# definitions only) along with `host`.
policy_host="qserve:policy/host@0.2.0,qserve:policy/types@0.2.0"
policy_exports="qserve:policy/decide@0.2.0"
core_host="qserve:core/host@0.1.0"
core_exports="qserve:core/lifecycle@0.1.0,qserve:core/sessions@0.1.0,qserve:core/events@0.1.0,qserve:core/permissions@0.1.0"
wasi_wait="wasi:clocks/monotonic-clock@0.2.12,wasi:io/poll@0.2.12"
wasi_snoop="wasi:cli/environment@0.2.12,wasi:cli/stdout@0.2.12,wasi:io/error@0.2.12,wasi:io/streams@0.2.12,wasi:filesystem/types@0.2.12,wasi:filesystem/preopens@0.2.12"
legacy_imports="qserve:bridge/host@0.1.0,qserve:bridge/policy-config@0.1.0"
legacy_exports="qserve:bridge/decide@0.1.0"
components=(
    "qserve-guest-core|core|$core_host|$core_exports"
    "qserve-guest-core-faulty|core-faulty|$core_host|$core_exports"
    "policy-cedar|policy-cedar|$policy_host|$policy_exports"
    "policy-default|policy-default|$policy_host|$policy_exports"
    "policy-readonly|policy-readonly|$policy_host|$policy_exports"
    "policy-rules|policy-rules|$policy_host|$policy_exports"
    # Test guests: never embedded; the host's tests load them from target/guests.
    "policy-hostile-loop|policy-hostile-loop|$policy_host|$policy_exports"
    "policy-hostile-trap|policy-hostile-trap|$policy_host|$policy_exports"
    "policy-hostile-memory|policy-hostile-memory|$policy_host|$policy_exports"
    "policy-hostile-bad-option|policy-hostile-bad-option|$policy_host|$policy_exports"
    "policy-hostile-imports|policy-hostile-imports|$policy_host,$wasi_snoop,qserve:test/phone-home@0.1.0|$policy_exports"
    "policy-hostile-sleep|policy-hostile-sleep|$policy_host,$wasi_wait|$policy_exports"
    "policy-hostile-poll|policy-hostile-poll|$policy_host,$wasi_wait|$policy_exports"
    "wat:policy-hostile-table/policy-hostile-table.wat|policy-hostile-table|$policy_host|$policy_exports"
    "policy-hostile-logflood|policy-hostile-logflood|$policy_host|$policy_exports"
    "policy-legacy-v0-1|policy-legacy-v0-1|$legacy_imports|$legacy_exports"
    "policy-slow|policy-slow|$policy_host|$policy_exports"
    "policy-select-first|policy-select-first|$policy_host|$policy_exports"
)
# Only these are compiled into the host binary.
embedded_components=(core policy-default policy-readonly policy-rules)
embedded_components+=(policy-cedar)
# The starter policy crate authors copy: built by every full build (into
# target/guests/ like the test guests) so that it keeps building.
starter_policy="guest/templates/policy-starter"

log() { printf '[guest/build] %s\n' "$*" >&2; }
die() {
    printf '[guest/build] error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# Prints "<sha256>  <path>" for every hashed source file, sorted by path
# (byte order), paths relative to the repository root.
source_manifest() {
    (
        cd "$repo"
        find "${hashed_sources[@]}" -type d -name target -prune -o -type f -print0 |
            LC_ALL=C sort -z |
            xargs -0 sha256sum
    )
}

# The hash recorded in SOURCES.sha256: sha256 of source_manifest's output.
sources_hash() {
    source_manifest | sha256sum | cut -d' ' -f1
}

check_embedded() {
    local recorded_file="$embedded_dir/SOURCES.sha256"
    [[ -f "$recorded_file" ]] ||
        die "$recorded_file is missing: run guest/build.sh --embed"
    local recorded current
    recorded="$(tr -d '[:space:]' <"$recorded_file")"
    current="$(sources_hash)"
    if [[ "$recorded" != "$current" ]]; then
        log "recorded source hash: $recorded"
        log "current source hash:  $current"
        if [[ -f "$embedded_dir/SOURCES.files" ]]; then
            log "changed since the embed (< recorded, > current):"
            diff <(cat "$embedded_dir/SOURCES.files") <(source_manifest) >&2 || true
        fi
        die "the embedded components in host/runtime/embedded/ are stale (the guest sources changed): run guest/build.sh --embed"
    fi
    for name in "${embedded_components[@]}"; do
        [[ -s "$embedded_dir/$name.wasm" ]] ||
            die "$embedded_dir/$name.wasm is missing: run guest/build.sh --embed"
    done
    log "embedded components are current (source hash $current)"
}

# Sets guest_cargo (command array) and guest_env (env assignments) for the
# Wasm build, preferring rustup's wasm32 target.
detect_toolchain() {
    guest_env=()
    build_std=()
    # Lists are read whole before matching: `grep -q` quitting early would
    # break the writer's pipe, and pipefail would turn a match into a miss.
    if command -v rustup >/dev/null 2>&1 &&
        grep -qx "$wasm_target" <<<"$(rustup target list --installed 2>/dev/null || true)"; then
        log "toolchain: rustup ($(rustc --version)) with the $wasm_target target"
        guest_cargo=(cargo)
        return
    fi

    log "toolchain: rustup has no $wasm_target target; using Debian's rustc-web with -Zbuild-std"
    local debian_ok=1
    [[ -x /usr/bin/cargo && -x /usr/bin/rustc && -d /usr/lib/rustlib/src/rust/library ]] || debian_ok=0
    if ((debian_ok)) && ! grep -qx "$wasm_target" <<<"$(/usr/bin/rustc --print target-list)"; then
        debian_ok=0
    fi
    if ((!debian_ok)); then
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "installing rustc-web cargo-web rust-web-src with apt-get"
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y rustc-web cargo-web rust-web-src
        else
            die "no Wasm toolchain: either run 'rustup target add $wasm_target', or (Debian, as root) 'apt-get install rustc-web cargo-web rust-web-src'"
        fi
    fi

    # Debian's rustc ships no wasm linker; rustup's toolchain does.
    local linker="" host_triple sysroot
    if command -v rustc >/dev/null 2>&1 && [[ "$(command -v rustc)" != /usr/bin/rustc ]]; then
        host_triple="$(rustc -vV | sed -n 's/^host: //p')"
        sysroot="$(rustc --print sysroot)"
        [[ -x "$sysroot/lib/rustlib/$host_triple/bin/rust-lld" ]] &&
            linker="$sysroot/lib/rustlib/$host_triple/bin/rust-lld"
    fi
    if [[ -z "$linker" ]]; then
        linker="$(command -v rust-lld || command -v wasm-ld || true)"
    fi
    [[ -n "$linker" ]] ||
        die "no Wasm linker: install rustup (its toolchain ships rust-lld) or a wasm-ld (apt-get install lld)"
    log "linker: $linker"

    guest_cargo=(/usr/bin/cargo)
    guest_env=(
        "PATH=/usr/bin:$PATH"
        "RUSTC=/usr/bin/rustc"
        "RUSTC_BOOTSTRAP=1"
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=$linker"
    )
    build_std=(-Zbuild-std=std,panic_abort)
}

# The guest cargo, with the toolchain's environment.
guest_cargo_run() {
    (
        cd "$components_dir"
        env -u RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS -u RUSTC_WRAPPER -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET \
            "${guest_env[@]}" "${guest_cargo[@]}" "$@"
    )
}

# A first build would otherwise create Cargo.lock mid-build, changing the
# hashed sources under the build's feet.
ensure_lockfile() {
    if [[ ! -f "$components_dir/Cargo.lock" ]]; then
        log "creating guest/components/Cargo.lock"
        guest_cargo_run generate-lockfile
    fi
}

# CARGO_ENCODED_RUSTFLAGS for the guests; extra flags may follow.
guest_rustflags() {
    local cargo_home="${CARGO_HOME:-$HOME/.cargo}"
    # Keep the checkout's and the registry's paths out of the output (panic
    # locations): the bytes then depend on the sources, not on where they are.
    local flags=(
        "--remap-path-prefix=$repo=/qserve"
        "--remap-path-prefix=$cargo_home=/cargo"
        "--remap-path-prefix=/usr/lib/rustlib/src/rust=/rustc/src"
        "$@"
    )
    (
        IFS=$'\x1f'
        echo "${flags[*]}"
    )
}

build_modules() {
    local encoded_flags
    encoded_flags="$(guest_rustflags)"
    log "building ${#components[@]} guest modules for $wasm_target (release; the first -Zbuild-std build takes minutes)"
    local started=$SECONDS
    CARGO_ENCODED_RUSTFLAGS="$encoded_flags" guest_cargo_run \
        build --release --target "$wasm_target" "${build_std[@]}" \
        --target-dir "$guest_target_dir" --locked --workspace
    log "guest modules built in $((SECONDS - started)) s"
}

# Builds the componentize tool (host toolchain) and sets `tool` to its path.
build_componentize_tool() {
    log "building the componentize tool (host toolchain)"
    (cd "$repo" && cargo build -p qserve-componentize)
    local host_target_dir="${CARGO_TARGET_DIR:-$repo/target}"
    [[ "$host_target_dir" == /* ]] || host_target_dir="$repo/$host_target_dir"
    tool="$host_target_dir/debug/qserve-componentize"
    [[ -x "$tool" ]] || die "componentize tool not found at $tool"
}

componentize_all() {
    local tool
    build_componentize_tool

    mkdir -p "$out_dir"
    local entry package name imports exports module surface world_args
    for entry in "${components[@]}"; do
        IFS='|' read -r package name imports exports <<<"$entry"
        if [[ "$package" == wat:* ]]; then
            module="$components_dir/${package#wat:}"
            world_args=(--wit "$repo/wit/policy" --world policy)
        else
            module="$guest_target_dir/$wasm_target/release/${package//-/_}.wasm"
            world_args=()
        fi
        [[ -f "$module" ]] || die "module $module was not built"
        surface="$("$tool" --allowed-imports "$imports" --exports "$exports" "${world_args[@]}" "$module" "$out_dir/$name.wasm")"
        log "$(printf '%-31s %7d bytes (module %d)  %s' "$name.wasm" \
            "$(stat -c %s "$out_dir/$name.wasm")" "$(stat -c %s "$module")" "$surface")"
    done
    log "components written to $out_dir"
}

# Builds one policy crate (its own workspace, a cdylib on the SDK) with the
# guest toolchain and makes it a component of the `policy` world, checked
# like the built-in policies: `build_policy_crate DIR OUT [--locked]`.
# Inside the checkout it shares the guests' target dir (std and the SDK are
# built once); elsewhere it uses DIR/target.
build_policy_crate() {
    local dir="$1" out="$2" locked=("${@:3}")
    [[ -f "$dir/Cargo.toml" ]] ||
        die "$dir/Cargo.toml not found: --policy takes the directory of a policy crate"
    dir="$(cd "$dir" && pwd)"
    local package
    package="$(sed -n '/^\[package\]/,/^\[/s/^name *= *"\([^"]*\)".*/\1/p' "$dir/Cargo.toml" | head -n1)"
    [[ -n "$package" ]] || die "no package name in $dir/Cargo.toml"
    [[ -n "$out" ]] || out="$dir/target/$package.wasm"
    local target_dir="$guest_target_dir" extra_flags=()
    if [[ "$dir" != "$repo"/* ]]; then
        target_dir="$dir/target"
        extra_flags=("--remap-path-prefix=$dir=/policy")
    fi
    if [[ ! -f "$dir/Cargo.lock" ]]; then
        # The versions the built-in policies are built and tested with.
        log "creating $dir/Cargo.lock from guest/components/Cargo.lock"
        cp "$components_dir/Cargo.lock" "$dir/Cargo.lock"
    fi
    log "building the policy crate $package ($dir) for $wasm_target"
    (
        cd "$dir"
        CARGO_ENCODED_RUSTFLAGS="$(guest_rustflags "${extra_flags[@]}")" \
            env -u RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS -u RUSTC_WRAPPER -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET \
            "${guest_env[@]}" "${guest_cargo[@]}" build --release --target "$wasm_target" "${build_std[@]}" \
            --target-dir "$target_dir" "${locked[@]}"
    )
    local module="$target_dir/$wasm_target/release/${package//-/_}.wasm"
    [[ -f "$module" ]] || die "$module was not built: is $package a cdylib (crate-type = [\"cdylib\"])?"
    local tool surface
    build_componentize_tool
    mkdir -p "$(dirname "$out")"
    surface="$("$tool" --allowed-imports "$policy_host" --exports "$policy_exports" "$module" "$out")"
    log "$(printf '%s: %d bytes (module %d)  %s' "$out" "$(stat -c %s "$out")" "$(stat -c %s "$module")" "$surface")"
}

embed() {
    mkdir -p "$embedded_dir"
    local name
    for name in "${embedded_components[@]}"; do
        cp "$out_dir/$name.wasm" "$embedded_dir/$name.wasm.tmp"
        mv "$embedded_dir/$name.wasm.tmp" "$embedded_dir/$name.wasm"
    done
    source_manifest >"$embedded_dir/SOURCES.files"
    sources_hash >"$embedded_dir/SOURCES.sha256"
    log "embedded ${embedded_components[*]} into host/runtime/embedded/ (source hash $(cat "$embedded_dir/SOURCES.sha256"))"
}

main() {
    local mode=build policy_dir=""
    while (($#)); do
        case "$1" in
        --embed) mode=embed ;;
        --check-embedded) mode=check ;;
        --policy)
            (($# >= 2)) || die "--policy needs the policy crate's directory"
            mode=policy
            policy_dir="$2"
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$1' (try --help)" ;;
        esac
        shift
    done

    if [[ "$mode" == check ]]; then
        check_embedded
        return
    fi
    detect_toolchain
    if [[ "$mode" == policy ]]; then
        build_policy_crate "$policy_dir" ""
        return
    fi
    ensure_lockfile
    local hash_before
    hash_before="$(sources_hash)"
    build_modules
    componentize_all
    build_policy_crate "$repo/$starter_policy" "$out_dir/policy-starter.wasm" --locked
    if [[ "$mode" == embed ]]; then
        # Recording a hash the bytes were not built from would defeat the check.
        [[ "$(sources_hash)" == "$hash_before" ]] ||
            die "the guest sources changed during the build: run guest/build.sh --embed again"
        embed
    fi
}

# `exit` on the same line: bash reads a script as it runs, so an edit to this
# file during a long build must not make it run the edited tail.
main "$@"; exit
