//! The Cedar request for each decision: principal, action, resource and the
//! entities they name, built from the policy inputs as the schema
//! (`qserve.cedarschema`) and the README describe.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Context as CedarContext, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request,
    RestrictedExpression, Schema,
};
use qserve_policy_logic::types::{
    Context, FileAccess, Phase, ResolvedPath, SessionScope, ToolCall, ToolKind,
};

use crate::facts;

/// A request and the entities it is evaluated against.
pub struct Query {
    pub request: Request,
    pub entities: Entities,
    /// The action's name, for reasons ("no policy permits execute").
    pub action: String,
}

/// Why a request could not be built. Only reachable through a mismatch
/// between this module and the embedded schema: a bug, which the caller
/// turns into a refusal.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the Cedar request: {0}")]
pub struct QueryError(String);

fn err(error: impl std::fmt::Display) -> QueryError {
    QueryError(error.to_string())
}

/// The entity type names, parsed once per policy.
pub struct Types {
    session: EntityTypeName,
    workspace: EntityTypeName,
    tool_call: EntityTypeName,
    file: EntityTypeName,
    action: EntityTypeName,
}

impl Types {
    pub fn new() -> Self {
        let name = |name: &str| {
            // These are constants: a failure is caught by every test.
            EntityTypeName::from_str(name).unwrap_or_else(|e| panic!("entity type {name}: {e}"))
        };
        Self {
            session: name("Qserve::Session"),
            workspace: name("Qserve::Workspace"),
            tool_call: name("Qserve::ToolCall"),
            file: name("Qserve::File"),
            action: name("Qserve::Action"),
        }
    }

    fn uid(&self, ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }
}

/// The Cedar action for a tool kind: its ACP name, `other` for kinds this
/// contract does not know (their name is in `resource.kind`).
pub fn tool_action(kind: &ToolKind) -> &'static str {
    match kind {
        ToolKind::Read => "read",
        ToolKind::Edit => "edit",
        ToolKind::Delete => "delete",
        ToolKind::Move => "move",
        ToolKind::Search => "search",
        ToolKind::Execute => "execute",
        ToolKind::Think => "think",
        ToolKind::Fetch => "fetch",
        ToolKind::SwitchMode => "switch_mode",
        ToolKind::Other(_) => "other",
    }
}

fn string(value: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(value.to_owned())
}

fn strings<'a>(values: impl IntoIterator<Item = &'a String>) -> RestrictedExpression {
    RestrictedExpression::new_set(values.into_iter().map(|value| string(value)))
}

fn attrs<const N: usize>(
    pairs: [(&str, RestrictedExpression); N],
) -> HashMap<String, RestrictedExpression> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// The session (principal) and its workspace, both as entities.
fn session(types: &Types, ctx: &Context) -> Result<(EntityUid, [Entity; 2]), QueryError> {
    let workspace_uid = types.uid(&types.workspace, &ctx.workspace);
    let workspace = Entity::new(
        workspace_uid.clone(),
        attrs([("path", string(&ctx.workspace))]),
        HashSet::new(),
    )
    .map_err(err)?;
    let uid = types.uid(&types.session, &ctx.session_id);
    let scope = match ctx.scope {
        SessionScope::Single => "single",
        SessionScope::Thread => "thread",
    };
    let session = Entity::new(
        uid.clone(),
        attrs([
            ("agent", string(&ctx.agent.name)),
            ("agentCommand", string(&ctx.agent.command)),
            (
                "agentMode",
                string(ctx.agent.mode.as_deref().unwrap_or_default()),
            ),
            ("workspace", string(&ctx.workspace)),
            ("scope", string(scope)),
        ]),
        HashSet::from([workspace_uid]),
    )
    .map_err(err)?;
    Ok((uid, [session, workspace]))
}

fn query(
    types: &Types,
    schema: &Schema,
    principal: EntityUid,
    action: &str,
    resource: EntityUid,
    entities: Vec<Entity>,
) -> Result<Query, QueryError> {
    let request = Request::new(
        principal,
        types.uid(&types.action, action),
        resource,
        CedarContext::empty(),
        Some(schema),
    )
    .map_err(err)?;
    // With the schema, the store also gets the action entities (and so the
    // action groups `tool`, `file`, `session`), and every attribute is
    // checked against its declared type.
    let entities = Entities::from_entities(entities, Some(schema)).map_err(err)?;
    Ok(Query {
        request,
        entities,
        action: action.to_owned(),
    })
}

/// A permission request: `Qserve::Action::"<kind>"` on a `Qserve::ToolCall`.
pub fn permission(
    types: &Types,
    schema: &Schema,
    ctx: &Context,
    call: &ToolCall,
) -> Result<Query, QueryError> {
    let (principal, [session, workspace]) = session(types, ctx)?;
    let command = call.command.as_deref().unwrap_or_default();
    let command_facts = facts::command(command);
    let url = call.url.as_deref().unwrap_or_default();
    let tool_name = call.tool_name.as_deref().unwrap_or_default();
    let (mcp_server, mcp_tool) = facts::mcp(tool_name);
    let paths: Vec<&String> = call.locations.iter().map(|path| &path.resolved).collect();
    let resource = types.uid(&types.tool_call, &call.tool_call_id);
    let tool_call = Entity::new(
        resource.clone(),
        attrs([
            ("kind", string(call.kind.name())),
            ("toolName", string(tool_name)),
            ("title", string(&call.title)),
            ("command", string(command)),
            ("commandTokens", strings(&command_facts.tokens)),
            ("commandPrefixes", strings(&command_facts.prefixes)),
            (
                "commandParsed",
                RestrictedExpression::new_bool(command_facts.parsed),
            ),
            (
                "commandHasShellSyntax",
                RestrictedExpression::new_bool(command_facts.shell_syntax),
            ),
            ("paths", strings(paths)),
            (
                "allInsideWorkspace",
                RestrictedExpression::new_bool(
                    call.locations.iter().all(|path| path.inside_workspace),
                ),
            ),
            ("url", string(url)),
            ("domain", string(&facts::domain(url))),
            ("mcpServer", string(&mcp_server)),
            ("mcpTool", string(&mcp_tool)),
        ]),
        HashSet::new(),
    )
    .map_err(err)?;
    query(
        types,
        schema,
        principal,
        tool_action(&call.kind),
        resource,
        vec![session, workspace, tool_call],
    )
}

/// A client creates (`session_create`) or attaches to (`session_attach`)
/// a session in a `Qserve::Workspace`.
pub fn session_open(types: &Types, schema: &Schema, ctx: &Context) -> Result<Query, QueryError> {
    let (principal, [session, workspace]) = session(types, ctx)?;
    let action = match ctx.phase {
        Phase::Create => "session_create",
        // `running` is not asked here; reading it as an attach asks about
        // the live session, the closer match.
        Phase::Attach | Phase::Running => "session_attach",
    };
    let resource = workspace.uid();
    query(
        types,
        schema,
        principal,
        action,
        resource,
        vec![session, workspace],
    )
}

/// The agent reads (`file_read`) or writes (`file_write`) a `Qserve::File`.
pub fn file(
    types: &Types,
    schema: &Schema,
    ctx: &Context,
    access: FileAccess,
    path: &ResolvedPath,
) -> Result<Query, QueryError> {
    let (principal, [session, workspace]) = session(types, ctx)?;
    let resource = types.uid(&types.file, &path.resolved);
    let parents = if path.inside_workspace {
        HashSet::from([workspace.uid()])
    } else {
        HashSet::new()
    };
    let file = Entity::new(
        resource.clone(),
        attrs([
            ("path", string(&path.resolved)),
            (
                "insideWorkspace",
                RestrictedExpression::new_bool(path.inside_workspace),
            ),
            ("exists", RestrictedExpression::new_bool(path.exists)),
        ]),
        parents,
    )
    .map_err(err)?;
    let action = match access {
        FileAccess::Read => "file_read",
        FileAccess::Write => "file_write",
    };
    query(
        types,
        schema,
        principal,
        action,
        resource,
        vec![session, workspace, file],
    )
}
