#!/usr/bin/env python3
"""Runs examples/policies/cases.toml against a policy component, in wasmtime.

A stand-in for `qserve policy test` until the daemon speaks qserve:policy@0.2.0:
it loads the component with wasmtime-py (the `wasmtime` package from PyPI,
pinned by scripts/build-example-policies.sh), checks its imports and exports
against the contract, then makes every decision in the case table and compares.

    python3 examples/policies/run_cases.py COMPONENT.wasm [--cases FILE] [--verbose]
                                           [--cache-dir DIR]

The host it plays is as locked down as the daemon's: the `host` functions of
the contract, and (only for components that import WASI) a WASI context that
grants nothing: no arguments, no environment, no preopened directories, no
stdin; stdout and stderr are discarded (stderr is shown with --verbose). Each
instance gets the daemon's default memory cap, and each call a fuel cap, so a
policy stuck in a loop fails its case instead of hanging the run.

Exit status: 0 when every case passes, 1 when one fails, 2 for a usage or load
error. The last line is "N passed, N failed".
"""

import argparse
import hashlib
import os
import sys
import time
import tomllib
import uuid

try:
    import wasmtime
    from wasmtime.component import Component, Linker, Record, Variant
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("run_cases: the `wasmtime` Python package is missing "
             "(scripts/build-example-policies.sh installs it into .qserve-tools/policy-py)")

DECIDE = "qserve:policy/decide@0.2.0"
HOST = "qserve:policy/host@0.2.0"
TYPES = "qserve:policy/types@0.2.0"
FUEL_PER_CALL = 2_000_000_000  # generous: a CPython start of a call is not cheap
MEMORY_CAP = 64 << 20  # the daemon's default --policy memory cap

CASE_KEYS = {
    "permission": {"call", "options", "expect", "option", "timeout_ms"},
    "file": {"access", "path", "expect"},
    "session": {"expect"},
    "init": {"expect"},
}
COMMON_KEYS = {"name", "kind", "config", "context", "reason"}
EXPECTS = {
    "permission": {"select", "reject", "ask"},
    "file": {"allow", "deny"},
    "session": {"allow", "deny"},
    "init": {"ok", "error"},
}


class CaseError(Exception):
    """The case table itself is malformed."""


def record(**fields):
    """A component record; field names are given in snake_case, WIT uses kebab-case."""
    r = Record()
    for name, value in fields.items():
        setattr(r, name.replace("_", "-"), value)
    return r


def field(rec, name):
    return getattr(rec, name.replace("_", "-"))


def variant_of(text, plain_cases):
    """"read" -> Variant("read"); "other:x" -> Variant("other", "x")."""
    if text.startswith("other:"):
        return Variant("other", text[len("other:"):])
    if text not in plain_cases:
        raise CaseError(f"unknown kind {text!r} (one of {sorted(plain_cases)} or other:<text>)")
    return Variant(text)


TOOL_KINDS = {"read", "edit", "delete", "move", "search", "execute", "think", "fetch", "switch-mode"}
OPTION_KINDS = {"allow-once", "allow-always", "reject-once", "reject-always"}


def resolved_path(spec):
    unknown = set(spec) - {"requested", "resolved", "inside_workspace", "exists"}
    if unknown:
        raise CaseError(f"unknown path keys {sorted(unknown)}")
    return record(
        requested=spec.get("requested", spec["resolved"]),
        resolved=spec["resolved"],
        inside_workspace=bool(spec["inside_workspace"]),
        exists=bool(spec.get("exists", True)),
    )


def context(defaults, overrides):
    c = dict(defaults)
    c.update(overrides or {})
    unknown = set(c) - {"session_id", "workspace", "scope", "phase", "agent"}
    if unknown:
        raise CaseError(f"unknown context keys {sorted(unknown)}")
    agent = c["agent"]
    return record(
        session_id=c["session_id"],
        workspace=c["workspace"],
        agent=record(name=agent["name"], command=agent["command"], mode=agent.get("mode")),
        scope=c["scope"],
        phase=c["phase"],
    )


def options_of(specs):
    return [record(option_id=o["id"], name=o.get("name", o["id"]), kind=variant_of(o["kind"], OPTION_KINDS))
            for o in specs]


def tool_call(spec):
    unknown = set(spec) - {"kind", "title", "command", "url", "tool_name", "tool_call_id", "raw_input", "locations"}
    if unknown:
        raise CaseError(f"unknown call keys {sorted(unknown)}")
    return record(
        tool_call_id=spec.get("tool_call_id", "call-1"),
        kind=variant_of(spec["kind"], TOOL_KINDS),
        tool_name=spec.get("tool_name"),
        title=spec.get("title", ""),
        command=spec.get("command"),
        url=spec.get("url"),
        locations=[resolved_path(p) for p in spec.get("locations", [])],
        raw_input=spec.get("raw_input", "null"),
    )


def load_component(engine, path, cache_dir):
    """Compiles the component, or loads its compiled form from cache_dir.

    Compiling an 18 MB CPython component takes tens of seconds; the cache,
    keyed by the component's sha256 and the wasmtime version, makes a second
    run take about one. Returns (component, came_from_cache).
    """
    with open(path, "rb") as f:
        wasm = f.read()
    if cache_dir is None:
        return Component(engine, wasm), False
    key = hashlib.sha256(wasm + wasmtime_version().encode()).hexdigest()
    # One entry per component file name: a rebuilt component replaces its old entry.
    stem = os.path.basename(path)
    cached = os.path.join(cache_dir, f"{stem}.{key}.cwasm")
    if os.path.exists(cached):
        try:
            return Component.deserialize_file(engine, cached), True
        except wasmtime.WasmtimeError:
            pass  # another wasmtime build or engine config: compile afresh
    component = Component(engine, wasm)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{cached}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(component.serialize())
    os.replace(tmp, cached)
    for entry in os.listdir(cache_dir):
        if entry.startswith(stem + ".") and entry.endswith(".cwasm") and entry != os.path.basename(cached):
            os.remove(os.path.join(cache_dir, entry))
    return component, False


def wasmtime_version():
    try:
        from importlib.metadata import version
        return version("wasmtime")
    except Exception:  # noqa: BLE001 - a missing version only weakens the cache key
        return "unknown"


class Host:
    """Loads the component once; makes initialised instances, one per config."""

    def __init__(self, path, verbose, cache_dir=None):
        self.verbose = verbose
        config = wasmtime.Config()
        config.consume_fuel = True
        self.engine = wasmtime.Engine(config)
        started = time.monotonic()
        self.component, self.cached = load_component(self.engine, path, cache_dir)
        self.compile_s = time.monotonic() - started
        ty = self.component.type
        self.imports = sorted(ty.imports(self.engine))
        self.exports = sorted(ty.exports(self.engine))
        self.wasi_imports = [i for i in self.imports if i.startswith("wasi:")]
        self.linker = Linker(self.engine)
        if self.wasi_imports:
            self.linker.add_wasip2()
        self.logs = []
        with self.linker.root() as root:
            with root.add_instance(HOST) as host:
                host.add_func("log", self._log)
                host.add_func("monotonic-now-ms", lambda store: time.monotonic_ns() // 1_000_000)
                host.add_func("wall-clock-ms", lambda store: time.time_ns() // 1_000_000)
                host.add_func("random-id", lambda store: str(uuid.uuid4()))
            # `qserve:policy/types@0.2.0` holds only types: wasmtime needs no definition for it.
        self.instances = {}
        self.slowest_ms = 0.0
        self.slowest_call = ""
        self.slowest_instantiate_ms = 0.0

    def _log(self, store, level, message):
        self.logs.append((level, message))
        if self.verbose:
            print(f"    policy log [{level}] {message}", file=sys.stderr)

    def contract_problems(self):
        problems = []
        if DECIDE not in self.exports:
            problems.append(f"does not export {DECIDE} (exports: {', '.join(self.exports)})")
        foreign = [i for i in self.imports if i not in (HOST, TYPES) and not i.startswith("wasi:")]
        if foreign:
            problems.append(f"imports outside the contract and WASI: {', '.join(foreign)}")
        if HOST not in self.imports:
            # Not an error for the daemon (a policy may not log), worth knowing here.
            print(f"note: the component does not import {HOST}", file=sys.stderr)
        return problems

    def fresh(self):
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=MEMORY_CAP)
        if self.wasi_imports:
            wasi = wasmtime.WasiConfig()  # nothing granted
            if self.verbose:
                wasi.inherit_stderr()
            store.set_wasi(wasi)
        store.set_fuel(FUEL_PER_CALL)  # instantiation runs code too
        started = time.monotonic()
        instance = self.linker.instantiate(store, self.component)
        self.slowest_instantiate_ms = max(self.slowest_instantiate_ms, (time.monotonic() - started) * 1000)
        decide = instance.get_export_index(store, DECIDE)
        if decide is None:
            raise RuntimeError(f"no export {DECIDE}")
        funcs = {}
        for name in ("init", "on-permission-request", "on-session-create", "on-file-access"):
            idx = instance.get_export_index(store, name, decide)
            funcs[name] = instance.get_func(store, idx) if idx is not None else None
            if funcs[name] is None:
                raise RuntimeError(f"{DECIDE} has no function {name}")
            funcs[name].export_name = name  # for the timing report
        return store, funcs

    def call(self, store, func, *args):
        store.set_fuel(FUEL_PER_CALL)
        started = time.monotonic()
        result = func(store, *args)
        func.post_return(store)
        took_ms = (time.monotonic() - started) * 1000
        if took_ms > self.slowest_ms:
            self.slowest_ms, self.slowest_call = took_ms, func.export_name
        return result

    def init(self, config):
        """(store, funcs, init_result): init_result is a Record (ok) or a str (err)."""
        store, funcs = self.fresh()
        return store, funcs, self.call(store, funcs["init"], config)

    def initialised(self, config):
        if config not in self.instances:
            store, funcs, result = self.init(config)
            if isinstance(result, str):
                raise CaseError(f"init refused the config {config!r}: {result}")
            self.instances[config] = (store, funcs)
        return self.instances[config]


def run_case(host, table, case):
    kind = case.get("kind")
    if kind not in CASE_KEYS:
        raise CaseError(f"kind must be one of {sorted(CASE_KEYS)}, not {kind!r}")
    unknown = set(case) - COMMON_KEYS - CASE_KEYS[kind]
    if unknown:
        raise CaseError(f"unknown keys {sorted(unknown)}")
    expect = case.get("expect")
    if expect not in EXPECTS[kind]:
        raise CaseError(f"expect must be one of {sorted(EXPECTS[kind])}, not {expect!r}")
    config = case.get("config", table.get("config", ""))
    want_reason = case.get("reason")

    if kind == "init":
        _, _, result = host.init(config)
        if isinstance(result, str):
            got, reason = "error", result
        else:
            got, reason = "ok", f"{field(result, 'name')} {field(result, 'version')}"
        detail = reason
    else:
        store, funcs = host.initialised(config)
        ctx = context(table["context"], case.get("context"))
        if kind == "permission":
            option_specs = case.get("options", table.get("options", []))
            options = options_of(option_specs)
            decision = host.call(store, funcs["on-permission-request"], ctx, tool_call(case["call"]), options)
            verdict, reason = decision.verdict, decision.reason
            got = {"select": "select", "reject": "reject", "ask-clients": "ask"}[verdict.tag]
            detail = f"{verdict.tag}({verdict.payload!r}): {reason}"
            if got == "select" and verdict.payload not in [o["id"] for o in option_specs]:
                # The daemon treats this as a fault: the permission is cancelled.
                return False, f"selected {verdict.payload!r}, which was not offered"
            if got == expect == "select" and "option" in case and verdict.payload != case["option"]:
                return False, f"selected {verdict.payload!r}, expected {case['option']!r} ({reason})"
            if got == expect == "ask" and verdict.payload != case.get("timeout_ms"):
                return False, f"ask-clients({verdict.payload!r}), expected ask-clients({case.get('timeout_ms')!r})"
        elif kind == "session":
            decision = host.call(store, funcs["on-session-create"], ctx)
            got, reason = ("allow" if decision.allow else "deny"), decision.reason
            detail = f"{got}: {reason}"
        else:
            decision = host.call(store, funcs["on-file-access"], ctx, case["access"], resolved_path(case["path"]))
            got, reason = ("allow" if decision.allow else "deny"), decision.reason
            detail = f"{got}: {reason}"
    if got != expect:
        return False, f"got {detail}, expected {expect}"
    if want_reason is not None and want_reason not in reason:
        return False, f"reason {reason!r} does not contain {want_reason!r}"
    return True, detail


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("component")
    parser.add_argument("--cases", default=os.path.join(here, "cases.toml"))
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument("--cache-dir", help="keep compiled components here (default: none)")
    args = parser.parse_args()

    with open(args.cases, "rb") as f:
        table = tomllib.load(f)
    if table.get("version") != 1:
        sys.exit(f"run_cases: {args.cases}: version must be 1")
    try:
        host = Host(args.component, args.verbose, args.cache_dir)
    except (wasmtime.WasmtimeError, OSError) as e:
        print(f"run_cases: cannot load {args.component}: {e}", file=sys.stderr)
        return 2
    name = os.path.basename(args.component)
    how = "loaded from the cache" if host.cached else "compiled"
    print(f"{name}: {how} in {host.compile_s:.1f} s; exports {', '.join(host.exports)}")
    print(f"{name}: imports {', '.join(host.imports)}")
    problems = host.contract_problems()
    if problems:
        for p in problems:
            print(f"{name}: {p}", file=sys.stderr)
        return 2

    passed = failed = 0
    started = time.monotonic()
    for case in table.get("case", []):
        label = case.get("name", "<unnamed>")
        try:
            ok, detail = run_case(host, table, case)
        except CaseError as e:
            ok, detail = False, f"bad case: {e}"
        except wasmtime.WasmtimeError as e:
            ok, detail = False, f"fault: {str(e).splitlines()[0]}"
            host.instances.clear()  # a trapped instance is not used again
        if ok:
            passed += 1
            print(f"  ok    {label}" + (f"  [{detail}]" if args.verbose else ""))
        else:
            failed += 1
            print(f"  FAIL  {label}: {detail}")
    print(f"{name}: {len(host.logs)} host log lines; cases took {time.monotonic() - started:.2f} s; "
          f"slowest instantiation {host.slowest_instantiate_ms:.1f} ms, slowest call {host.slowest_ms:.1f} ms ({host.slowest_call}) "
          f"(memory cap {MEMORY_CAP >> 20} MiB)")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
