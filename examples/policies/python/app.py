"""An example qserve permission policy in Python (qserve:policy@0.2.0).

Built into a WebAssembly component with componentize-py; see
examples/policies/README.md. The JavaScript example (../js/policy.js) makes
the same decisions, and examples/policies/cases.toml checks both.

Behaviour:
  * reads, searches and thinking: answered at once with the offered
    allow-once option;
  * a shell command that starts with one of the configured `deny_commands`
    prefixes: rejected;
  * anything else: the clients are asked (the daemon's own timeout applies);
  * sessions may always be created or attached to;
  * a file access is allowed only inside the session's workspace.

Config (`--policy-config`, JSON; empty means no denied commands):
    {"deny_commands": ["rm ", "git push"]}

A prefix match on a shell command is easy to evade (`true && rm -rf /`); it
shows the mechanics, it is not a sandbox.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    AccessDecision,
    OptionKind_AllowOnce,
    PermissionDecision,
    PolicyInfo,
    ToolKind_Execute,
    ToolKind_Read,
    ToolKind_Search,
    ToolKind_Think,
    Verdict_AskClients,
    Verdict_Reject,
    Verdict_Select,
)

NAME = "example-python"
VERSION = "0.1.0"

# Set by init; every instance is initialised before its first decision.
_deny_commands: list[str] = []


def _parse_config(text: str) -> list[str]:
    """Returns the denied prefixes, or raises ValueError saying what is wrong."""
    if text.strip() == "":
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"config is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError("config must be a JSON object")
    unknown = sorted(k for k in doc if k != "deny_commands")
    if unknown:
        raise ValueError(f"unknown config key {json.dumps(unknown[0])} (known: deny_commands)")
    prefixes = doc.get("deny_commands", [])
    if not isinstance(prefixes, list):
        raise ValueError("deny_commands must be a list of strings")
    for p in prefixes:
        if not isinstance(p, str):
            raise ValueError("deny_commands must be a list of strings")
        if p.strip() == "":
            # An empty prefix would deny every command: almost surely a mistake.
            raise ValueError("deny_commands entries must not be empty")
    return list(prefixes)


class Decide(exports.Decide):
    def init(self, config: str) -> PolicyInfo:
        global _deny_commands
        try:
            _deny_commands = _parse_config(config)
        except ValueError as e:
            raise Err(str(e))
        host.log(host.LogLevel.INFO, f"{NAME} {VERSION}: {len(_deny_commands)} denied command prefixes")
        return PolicyInfo(name=NAME, version=VERSION)

    def on_permission_request(self, ctx, call, options) -> PermissionDecision:
        if isinstance(call.kind, (ToolKind_Read, ToolKind_Search, ToolKind_Think)):
            for option in options:
                if isinstance(option.kind, OptionKind_AllowOnce):
                    return PermissionDecision(Verdict_Select(option.option_id), "reads are allowed")
            return PermissionDecision(Verdict_AskClients(None), "asking the clients: no allow-once option offered")
        if isinstance(call.kind, ToolKind_Execute) and call.command is not None:
            # Leading blanks must not slip a denied command past the prefix test.
            command = call.command.lstrip()
            for prefix in _deny_commands:
                if command.startswith(prefix):
                    return PermissionDecision(Verdict_Reject(), "command starts with denied prefix " + json.dumps(prefix, ensure_ascii=False))
        return PermissionDecision(Verdict_AskClients(None), "asking the clients")

    def on_session_create(self, ctx) -> AccessDecision:
        return AccessDecision(True, "sessions are allowed")

    def on_file_access(self, ctx, access, path) -> AccessDecision:
        if path.inside_workspace:
            return AccessDecision(True, "inside the workspace")
        return AccessDecision(False, "outside the workspace")
