//! How sessions and agents end: closed by a client, killed by the agent's
//! death, or stopped by daemon shutdown. Every path ends the same way for
//! subscribers — pending permissions resolve `cancelled`, a terminal
//! `session_died` frame, then the stream closes — and no agent process
//! outlives the daemon.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use qserve_acp::ExitInfo;
use qserve_runtime::Recovery;
use serde_json::json;

use super::agent::AgentHost;
use super::permissions::cancel_in_hub;
use super::sessions::SessionEnd;
use super::Inner;

/// Hard bound on stopping every agent at shutdown.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

impl Inner {
    pub(super) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// End a session for every client: cancel its pending permissions, publish
    /// `session_died`, forget it. Idempotent.
    pub(super) async fn end_session(&self, session_id: &str, end: SessionEnd) {
        if self.sessions.lock().unwrap().remove(session_id).is_some() {
            self.tombstones
                .lock()
                .unwrap()
                .insert(session_id, &end.data);
        }
        let sid = session_id.to_owned();
        let data = end.data.to_string();
        let cancelled = self
            .hub
            .call(move |hub| {
                let resolutions = cancel_in_hub(hub, &sid);
                let _ = hub.publish(&sid, "session_died", &data, None);
                hub.remove_session(&sid);
                resolutions
            })
            .await
            .unwrap_or_default();
        self.answer_cancelled(cancelled);
    }

    /// End a session only if `still_ending` holds, checked on the hub thread
    /// in the same job that removes the session from the core. A close that
    /// was decided on an earlier snapshot (the last detach, an idle sweep)
    /// can so never take a session that a client attached to or subscribed
    /// to meanwhile: such an attach either lands before this job (and
    /// `still_ending` sees it) or after it (and gets a fresh session).
    /// Returns whether the session ended.
    pub(super) async fn end_session_if(
        &self,
        session_id: &str,
        end: SessionEnd,
        still_ending: impl FnOnce(&mut super::Hub) -> bool + Send + 'static,
    ) -> bool {
        let sid = session_id.to_owned();
        let data = end.data.to_string();
        let ended = self
            .hub
            .call(move |hub| {
                if !still_ending(hub) {
                    return None;
                }
                let resolutions = cancel_in_hub(hub, &sid);
                let _ = hub.publish(&sid, "session_died", &data, None);
                hub.remove_session(&sid);
                Some(resolutions)
            })
            .await;
        let cancelled = match ended {
            Ok(None) => return false,
            Ok(Some(cancelled)) => cancelled,
            // The hub is gone (shutdown): nothing can attach any more.
            Err(_) => Vec::new(),
        };
        if self.sessions.lock().unwrap().remove(session_id).is_some() {
            self.tombstones
                .lock()
                .unwrap()
                .insert(session_id, &end.data);
        }
        self.answer_cancelled(cancelled);
        true
    }

    /// The agent's process is gone: each of its sessions dies with the exit
    /// code or signal; the next create for the workspace spawns afresh.
    pub(super) async fn on_agent_exit(&self, host: &Arc<AgentHost>, reason: &str, exit: ExitInfo) {
        qserve_metrics::get().agent_exited(super::metrics::exit_cause(self, host, &exit));
        self.forget_agent(host);
        let sessions = host.daemon_sessions().await;
        if host.stopping.load(Ordering::Acquire) {
            // `stop_if_unused` logs the stop itself, at info.
            tracing::debug!(
                pid = host.process.pid(),
                "stopped agent's connection ended: {reason}"
            );
        } else if !self.is_shutting_down() {
            tracing::warn!(
                agent = %host.agent,
                pid = host.process.pid(),
                workspace = %host.workspace,
                sessions = sessions.len(),
                "agent ended: {reason}"
            );
        }
        for session_id in sessions {
            let data = json!({
                "reason": if self.is_shutting_down() { "daemon shutting down" } else { reason },
                "exitCode": exit.code,
                "signal": exit.signal.map(signal_name),
            });
            self.end_session(&session_id, SessionEnd { data }).await;
        }
    }

    /// Stop an agent that has no sessions left.
    /// Stop `host` if nothing uses it (no session, no create in flight).
    /// Decided under the agents lock, where a create takes its agent
    /// ([`Inner::agent_for`]): a create either took it first, and it stays,
    /// or finds it stopping and starts another. Returns whether it stopped.
    pub(super) async fn stop_if_unused(&self, host: &Arc<AgentHost>, why: &str) -> bool {
        {
            let mut agents = self.agents.lock().unwrap();
            if host.users.load(Ordering::Acquire) > 0 || host.stopping.load(Ordering::Acquire) {
                return false;
            }
            host.stopping.store(true, Ordering::Release);
            forget_agent_locked(&mut agents, host);
        }
        let exit = host.process.terminate(self.config.stop_grace).await;
        tracing::info!(agent = %host.agent, pid = host.process.pid(), workspace = %host.workspace, "agent stopped: {why} ({exit})");
        true
    }

    /// After a create failed: an agent that was started for it and serves
    /// no session is stopped (a failing `session/new` must not leave one
    /// idle agent per workspace tried), and a slot whose spawn failed is
    /// dropped (the map is keyed by the client's `cwd`). Nothing is touched
    /// while anyone else holds the agent or waits on its spawn.
    pub(super) async fn after_failed_create(&self, agent: &str, workspace: &str) {
        let key = (agent.to_owned(), workspace.to_owned());
        let host = {
            let mut agents = self.agents.lock().unwrap();
            let Some(cell) = agents.get(&key) else {
                return;
            };
            match cell.get() {
                Some(host) => host.clone(),
                None => {
                    // Only the map holds an uninitialized cell: no spawn in flight.
                    if Arc::strong_count(cell) == 1 {
                        agents.remove(&key);
                    }
                    return;
                }
            }
        };
        // No session and no other create on it: it was started for nothing.
        self.stop_if_unused(
            &host,
            "the create it was started for failed, and it has no session",
        )
        .await;
    }

    /// `--memory-budget-mb`: a new agent is admitted only while the live
    /// agents' process trees (guard, agent, everything it started) use
    /// less RSS than the budget, measured now from /proc.
    pub(super) fn admit_new_agent(&self) -> Result<(), qserve_http::BackendError> {
        let Some(budget) = self.config.memory_budget else {
            return Ok(());
        };
        let agents = self.live_agents();
        let used: u64 = agents.iter().map(|a| a.process.tree_rss_bytes()).sum();
        if used < budget {
            return Ok(());
        }
        let reason = format!(
            "memory budget exhausted: {} agents use {} MiB of RSS, --memory-budget-mb is {}; \
             close sessions or retry later",
            agents.len(),
            used >> 20,
            budget >> 20
        );
        tracing::warn!("refusing a new agent: {reason}");
        Err(qserve_http::BackendError::Unavailable(reason))
    }

    /// Drop the workspace's slot if it still holds this agent.
    fn forget_agent(&self, host: &Arc<AgentHost>) {
        forget_agent_locked(&mut self.agents.lock().unwrap(), host);
    }

    fn live_agents(&self) -> Vec<Arc<AgentHost>> {
        self.agents
            .lock()
            .unwrap()
            .values()
            .filter_map(|cell| cell.get().cloned())
            .collect()
    }

    /// Daemon shutdown: refuse new sessions, end every session with a terminal
    /// frame, then stop every agent (TERM, KILL after the grace) within a hard
    /// deadline.
    pub(super) async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let sessions: Vec<String> = self.sessions.lock().unwrap().keys().cloned().collect();
        for session_id in sessions {
            self.end_session(
                &session_id,
                SessionEnd {
                    data: json!({ "reason": "daemon shutting down" }),
                },
            )
            .await;
        }
        let grace = self.config.stop_grace;
        let stop_all = async {
            let agents = self.live_agents();
            futures::future::join_all(agents.iter().map(|a| a.process.terminate(grace))).await;
            // Spawns still initializing are waited for and stopped too:
            // none may finish after shutdown with nobody to stop it.
            let cells: Vec<_> = self.agents.lock().unwrap().values().cloned().collect();
            let late = cells.iter().map(|cell| async move {
                let started = cell.get_or_try_init(|| async { Err(()) }).await;
                if let Ok(host) = started {
                    host.process.terminate(grace).await;
                }
            });
            futures::future::join_all(late).await;
        };
        if tokio::time::timeout(SHUTDOWN_DEADLINE, stop_all)
            .await
            .is_err()
        {
            tracing::error!("agents did not stop within {SHUTDOWN_DEADLINE:?}; killing them");
            self.kill_all_agents();
        }
    }

    /// Kill every agent and its whole tree, now. A spawn still
    /// initializing needs nothing: its guard kills it when the daemon exits.
    pub(super) fn kill_all_agents(&self) {
        for agent in self.live_agents() {
            agent.process.kill_group();
        }
    }
}

/// After the core was rebuilt from a fault: every agent waiting on a vote is
/// answered `cancelled` (the core no longer knows its request), and each
/// restored session's subscribers are told what was lost with a
/// `core_restarted` event (ringed, so a reconnecting client sees it too).
pub(super) async fn after_core_faults(
    inner: std::sync::Weak<Inner>,
    mut recoveries: tokio::sync::mpsc::UnboundedReceiver<Recovery>,
) {
    while let Some(recovery) = recoveries.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        qserve_metrics::get().core_fault(qserve_runtime::fault_class(&recovery.cause));
        inner.waiters.cancel_all();
        for (session_id, last_event_id) in recovery.sessions {
            let data = json!({
                "reason": recovery.cause,
                "lost": ["retained events", "pending permission requests"],
                "lastEventId": last_event_id,
            });
            inner
                .publish(&session_id, "core_restarted", data.to_string())
                .await;
        }
    }
}

fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| signal.to_string())
}

/// Drop `host`'s slot, if it still holds this agent (not a successor).
fn forget_agent_locked(agents: &mut super::AgentSlots, host: &Arc<AgentHost>) {
    let key = (host.agent.clone(), host.workspace.clone());
    if let Some(cell) = agents.get(&key) {
        if cell.get().is_some_and(|current| Arc::ptr_eq(current, host)) {
            agents.remove(&key);
        }
    }
}
