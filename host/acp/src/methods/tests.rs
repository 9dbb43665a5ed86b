use super::*;

fn raw(value: Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).unwrap()
}

#[test]
fn initialize_params_advertise_fs_and_protocol_1() {
    let params = initialize_params();
    assert_eq!(params["protocolVersion"], 1);
    assert_eq!(params["clientCapabilities"]["fs"]["readTextFile"], true);
    assert_eq!(params["clientCapabilities"]["fs"]["writeTextFile"], true);
    assert_eq!(params["clientInfo"]["name"], "qserve");
}

#[test]
fn initialize_result_like_the_real_qwen() {
    let result = json!({
        "protocolVersion": 1,
        "agentCapabilities": {
            "loadSession": true,
            "promptCapabilities": {"image": true, "audio": true, "embeddedContext": true},
            "sessionCapabilities": {"list": {}, "resume": {}},
            "mcpCapabilities": {"http": true, "sse": true},
            "somethingNew": {"x": 1}
        },
        "authMethods": [{"id": "openai", "name": "OpenAI"}],
        "_meta": {"qwen-code/external-tool-guard-ready": "required-v1"}
    });
    let info = InitializeInfo::parse(&result).unwrap();
    assert_eq!(info.protocol_version, 1);
    assert!(info.supports_load_session());
    assert!(!info.supports_close());
    assert_eq!(
        info.meta("qwen-code/external-tool-guard-ready"),
        Some(&json!("required-v1"))
    );
}

#[test]
fn initialize_result_with_close_and_odd_capabilities() {
    let info = InitializeInfo::parse(&json!({
        "protocolVersion": 1,
        "agentCapabilities": {"loadSession": "yes please", "sessionCapabilities": {"close": {}}}
    }))
    .unwrap();
    assert!(info.supports_close());
    assert!(
        !info.supports_load_session(),
        "a malformed flag reads as unsupported"
    );
    assert!(info.meta.is_empty());
    assert!(
        InitializeInfo::parse(&json!({"agentCapabilities": {}})).is_err(),
        "protocolVersion is required"
    );
}

#[test]
fn new_session_result_with_models_and_config_options() {
    let info = NewSessionInfo::parse(&json!({
        "sessionId": "s-1",
        "models": {"currentModelId": "a", "availableModels": [{"modelId": "a", "name": "A"}, {"bad": 1}]},
        "modes": {"currentModeId": "default", "availableModes": []},
        "configOptions": [
            {"id": "mode", "name": "Mode", "category": "mode", "type": "select", "currentValue": "default"},
            {"noId": true},
            {"id": "model", "name": "Model", "category": "model", "type": "select", "currentValue": "a"}
        ]
    }))
    .unwrap();
    assert_eq!(info.session_id, "s-1");
    let models = info.models.as_ref().unwrap();
    assert_eq!(models.current_model_id.as_deref(), Some("a"));
    assert_eq!(
        models.available_models.len(),
        1,
        "the malformed entry is skipped"
    );
    assert_eq!(info.config_options.len(), 2);
    let model = info.model_config_option().unwrap();
    assert_eq!(
        (model.id.as_str(), model.current_value.as_ref()),
        ("model", Some(&json!("a")))
    );
}

#[test]
fn new_session_result_minimal() {
    let info = NewSessionInfo::parse(&json!({"sessionId": "x"})).unwrap();
    assert!(
        info.models.is_none()
            && info.config_options.is_empty()
            && info.model_config_option().is_none()
    );
    assert!(NewSessionInfo::parse(&json!({})).is_err());
}

#[test]
fn new_session_params_shape() {
    assert_eq!(
        new_session_params(Path::new("/w")),
        json!({"cwd": "/w", "mcpServers": []})
    );
}

#[test]
fn prompt_params_keep_body_fields_and_force_the_session_id() {
    let body = json!({"prompt": [{"type": "text", "text": "hi"}], "_meta": {"k": 1}, "sessionId": "client-sent"});
    let Value::Object(body) = body else {
        unreachable!()
    };
    let params = prompt_params("agent-s", body);
    assert_eq!(params["sessionId"], "agent-s");
    assert_eq!(params["_meta"]["k"], 1);
    assert_eq!(params["prompt"][0]["text"], "hi");
}

#[test]
fn prompt_result_keeps_unknown_stop_reasons() {
    let r = PromptResult::parse(&json!({"stopReason": "cancelled"})).unwrap();
    assert!(r.is_cancelled());
    let r = PromptResult::parse(&json!({"stopReason": "brand_new_reason", "_meta": {}})).unwrap();
    assert_eq!(r.stop_reason, "brand_new_reason");
    assert!(PromptResult::parse(&json!({})).is_err());
}

#[test]
fn permission_request_like_the_real_qwen_write() {
    let params = json!({
        "sessionId": "s-1",
        "toolCall": {
            "toolCallId": "call-1", "status": "pending", "title": "Writing to out.txt", "kind": "edit",
            "content": [{"type": "diff", "path": "/w/out.txt", "oldText": null, "newText": "hi"}],
            "locations": [{"path": "/w/out.txt"}, {"line": 3}],
            "rawInput": {"file_path": "/w/out.txt", "content": "hi"},
            "_meta": {"toolName": "write_file"}
        },
        "options": [
            {"optionId": "proceed_always", "name": "Always", "kind": "allow_always"},
            {"optionId": "proceed_once", "name": "Once", "kind": "allow_once"},
            {"optionId": "cancel", "name": "Cancel", "kind": "reject_once"},
            {"optionId": "future", "name": "Future", "kind": "some_new_kind"}
        ]
    });
    let req = PermissionRequest::parse(&raw(params.clone())).unwrap();
    assert_eq!(req.session_id, "s-1");
    assert_eq!(
        req.tool_call,
        ToolCallSummary {
            tool_call_id: "call-1".into(),
            title: "Writing to out.txt".into(),
            kind: "edit".into(),
            locations: vec!["/w/out.txt".into()],
            raw_input: Some(json!({"file_path": "/w/out.txt", "content": "hi"})),
            tool_name: Some("write_file".into()),
            command: None,
            url: None,
        }
    );
    assert_eq!(req.options.len(), 4, "unknown option kinds are kept");
    assert!(req.offers("proceed_once") && !req.offers("nope"));
    assert_eq!(req.reject_option().unwrap().option_id, "cancel");
    assert_eq!(req.tool_call_raw, params["toolCall"]);
}

#[test]
fn tool_name_command_and_url_are_extracted_for_each_agent() {
    let parse = |tool_call: serde_json::Value| {
        PermissionRequest::parse(&raw(json!({
            "sessionId": "s", "toolCall": tool_call, "options": []
        })))
        .unwrap()
        .tool_call
    };
    // claude-code-acp: `_meta.claudeCode.toolName`, a shell command.
    let claude = parse(json!({
        "toolCallId": "t", "kind": "execute", "title": "`git push`",
        "rawInput": {"command": "git push origin main", "description": "push"},
        "_meta": {"claudeCode": {"toolName": "Bash"}}
    }));
    assert_eq!(claude.tool_name.as_deref(), Some("Bash"));
    assert_eq!(claude.command.as_deref(), Some("git push origin main"));
    // An argv array is joined; a fetch gives its URL.
    let argv = parse(json!({"toolCallId": "t", "rawInput": {"command": ["ls", "-la"]}}));
    assert_eq!(argv.command.as_deref(), Some("ls -la"));
    assert_eq!(argv.tool_name, None);
    let fetch = parse(
        json!({"toolCallId": "t", "kind": "fetch", "rawInput": {"url": "https://example.org/x"}}),
    );
    assert_eq!(fetch.url.as_deref(), Some("https://example.org/x"));
    // Odd shapes give nothing rather than an error.
    let odd =
        parse(json!({"toolCallId": "t", "rawInput": {"command": 3}, "_meta": {"toolName": 7}}));
    assert_eq!((odd.command, odd.tool_name), (None, None));
}

#[test]
fn permission_request_with_a_sparse_tool_call() {
    let req = PermissionRequest::parse(&raw(json!({
        "sessionId": "s", "toolCall": {"toolCallId": "c"}, "options": [{"optionId": "ok", "kind": "allow_once"}]
    })))
    .unwrap();
    assert_eq!(req.tool_call.kind, "other");
    assert!(req.tool_call.locations.is_empty() && req.tool_call.raw_input.is_none());
    assert!(req.reject_option().is_none());
    assert!(PermissionRequest::parse(&raw(json!({"toolCall": {}, "options": []}))).is_err());
}

#[test]
fn permission_outcomes_round_trip() {
    let selected = PermissionOutcome::Selected("proceed_once".into());
    assert_eq!(
        selected.to_response(),
        json!({"outcome": {"outcome": "selected", "optionId": "proceed_once"}})
    );
    assert_eq!(
        PermissionOutcome::Cancelled.to_response(),
        json!({"outcome": {"outcome": "cancelled"}})
    );
    for outcome in [selected, PermissionOutcome::Cancelled] {
        assert_eq!(
            PermissionOutcome::parse(&outcome.to_response()).unwrap(),
            outcome
        );
    }
    assert!(
        PermissionOutcome::parse(&json!({"outcome": {"outcome": "selected", "optionId": ""}}))
            .is_err()
    );
    assert!(PermissionOutcome::parse(&json!({"outcome": "selected"})).is_err());
}

#[test]
fn read_params_validate_line_and_limit() {
    let ok = ReadTextFileParams::parse(&raw(
        json!({"sessionId": "s", "path": "/a", "line": 0, "limit": 5}),
    ))
    .unwrap();
    assert_eq!((ok.line, ok.limit), (Some(0), Some(5)));
    let bare = ReadTextFileParams::parse(&raw(json!({"sessionId": "s", "path": "/a"}))).unwrap();
    assert_eq!((bare.line, bare.limit), (None, None));
    for bad in [
        json!({"limit": 0}),
        json!({"limit": -3}),
        json!({"line": -1}),
        json!({"line": "x"}),
    ] {
        let mut params = json!({"sessionId": "s", "path": "/a"});
        params
            .as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let err = ReadTextFileParams::parse(&raw(params.clone())).unwrap_err();
        assert_eq!(err.code, RpcError::INVALID_PARAMS, "{params}");
    }
    assert!(
        ReadTextFileParams::parse(&raw(json!({"path": "/a"}))).is_err(),
        "sessionId is required"
    );
}

#[tokio::test]
async fn fs_params_execute_against_the_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.txt");
    let write = WriteTextFileParams::parse(&raw(
        json!({"sessionId": "s", "path": path, "content": "a\nb\nc"}),
    ))
    .unwrap();
    assert_eq!(write.clone().execute().await.unwrap(), json!({}));
    let read = ReadTextFileParams::parse(&raw(
        json!({"sessionId": "s", "path": path, "line": 2, "limit": 1}),
    ))
    .unwrap();
    assert_eq!(read.execute().await.unwrap(), json!({"content": "b"}));
    let missing = ReadTextFileParams::parse(&raw(
        json!({"sessionId": "s", "path": dir.path().join("nope")}),
    ))
    .unwrap();
    assert_eq!(
        missing.execute().await.unwrap_err().code,
        RpcError::RESOURCE_NOT_FOUND
    );
}

#[test]
fn small_param_builders() {
    assert_eq!(session_id_params("s"), json!({"sessionId": "s"}));
    assert_eq!(
        set_model_params("s", "m"),
        json!({"sessionId": "s", "modelId": "m"})
    );
    assert_eq!(
        set_config_option_params("s", "model", "m"),
        json!({"sessionId": "s", "configId": "model", "value": "m"})
    );
}

/// claude-code-acp (0.16.2) names the tool and its kind only in its `tool_call` updates; its
/// permission request has neither. The note taken from the update completes the request.
#[test]
fn claudes_permission_request_is_completed_from_its_tool_call_update() {
    let update = raw(json!({"sessionId": "s", "update": {
        "_meta": {"claudeCode": {"toolName": "mcp__acp__Write"}},
        "toolCallId": "toolu_1", "sessionUpdate": "tool_call", "rawInput": {"file_path": "/w/a"},
        "status": "pending", "title": "Write /w/a", "kind": "edit", "content": [], "locations": []
    }}));
    let note = ToolCallNote::from_update(&update).unwrap();
    assert_eq!(
        note,
        ToolCallNote {
            tool_call_id: "toolu_1".into(),
            kind: Some("edit".into()),
            tool_name: Some("mcp__acp__Write".into())
        }
    );
    let mut request = PermissionRequest::parse(&raw(json!({
        "sessionId": "s",
        "toolCall": {"toolCallId": "toolu_1", "rawInput": {"file_path": "/w/a"}, "title": "Write /w/a"},
        "options": [{"kind": "allow_once", "name": "Allow", "optionId": "allow"}]
    })))
    .unwrap();
    assert_eq!(
        (
            request.tool_call.kind.as_str(),
            request.tool_call.tool_name.as_deref()
        ),
        ("other", None)
    );
    request.tool_call.complete_from(&note);
    assert_eq!(request.tool_call.kind, "edit");
    assert_eq!(
        request.tool_call.tool_name.as_deref(),
        Some("mcp__acp__Write")
    );
    // What the agent sent itself wins; chunks and kind-less updates make no note.
    let mut qwen = request.tool_call.clone();
    qwen.kind = "execute".into();
    qwen.tool_name = Some("run_shell_command".into());
    qwen.complete_from(&note);
    assert_eq!(
        (qwen.kind.as_str(), qwen.tool_name.as_deref()),
        ("execute", Some("run_shell_command"))
    );
    let chunk = raw(
        json!({"sessionId": "s", "update": {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "tool_call"}}}),
    );
    assert_eq!(ToolCallNote::from_update(&chunk), None);
    let bare = raw(
        json!({"sessionId": "s", "update": {"sessionUpdate": "tool_call_update", "toolCallId": "t", "status": "completed"}}),
    );
    assert_eq!(ToolCallNote::from_update(&bare), None);
}

/// The options each real agent offers for a write (checked against gemini-cli 0.61.0 and
/// claude-code-acp 0.16.2): a plain reject finds each agent's own reject option by kind, and
/// the new-session modes are read so the daemon can put the session in its asking mode.
#[test]
fn every_real_agents_write_options_have_a_reject_by_kind() {
    let options = |list: serde_json::Value| {
        PermissionRequest::parse(&raw(json!({
            "sessionId": "s", "toolCall": {"toolCallId": "c", "kind": "edit"}, "options": list
        })))
        .unwrap()
    };
    let gemini = options(json!([
        {"optionId": "proceed_always", "name": "Allow All Edits", "kind": "allow_always"},
        {"optionId": "proceed_once", "name": "Allow", "kind": "allow_once"},
        {"optionId": "cancel", "name": "Reject", "kind": "reject_once"}
    ]));
    assert_eq!(gemini.reject_option().unwrap().option_id, "cancel");
    let claude = options(json!([
        {"optionId": "allow_always", "name": "Always Allow", "kind": "allow_always"},
        {"optionId": "allow", "name": "Allow", "kind": "allow_once"},
        {"optionId": "reject", "name": "Reject", "kind": "reject_once"}
    ]));
    assert_eq!(claude.reject_option().unwrap().option_id, "reject");

    let created = NewSessionInfo::parse(&json!({
        "sessionId": "s",
        "modes": {"currentModeId": "default", "availableModes": [
            {"id": "default", "name": "Default"}, {"id": "acceptEdits", "name": "Accept Edits"},
            {"id": "plan", "name": "Plan"}, {"name": "no id"}
        ]}
    }))
    .unwrap();
    let modes = created.modes.unwrap();
    assert_eq!(modes.current_mode_id.as_deref(), Some("default"));
    assert_eq!(modes.available, ["default", "acceptEdits", "plan"]);
    assert!(NewSessionInfo::parse(&json!({"sessionId": "s"}))
        .unwrap()
        .modes
        .is_none());
    assert_eq!(
        set_mode_params("s", "default"),
        json!({"sessionId": "s", "modeId": "default"})
    );
}
