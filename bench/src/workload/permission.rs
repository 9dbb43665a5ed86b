//! Permission round trip, as a client lives it: send a prompt whose tool call needs
//! permission → see the `permission_request` event → vote → see the turn end.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::client::{within, Client};
use crate::daemon::Daemon;
use crate::sse::Event;

/// `warmups` untimed round trips, then `count` timed ones on one session and subscriber.
pub async fn round_trips(
    daemon: &Daemon,
    workspace: &Path,
    warmups: usize,
    count: usize,
) -> Result<Vec<Duration>> {
    let client = Client::of(daemon);
    let session = within("creating a session", client.create_session(workspace)).await?;
    let mut stream = within("subscribing", client.subscribe(&session)).await?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..warmups + count {
        let started = Instant::now();
        let prompt = client.send_prompt(&session, "permission edit");
        let request = within(
            "the permission_request event",
            stream.until(|event| matches!(event, Event::PermissionRequest(_))),
        )
        .await?;
        let Event::PermissionRequest(request_id) = request else {
            bail!("until() returned another event");
        };
        within("the vote", client.vote(&request_id, "proceed_once")).await?;
        within(
            "the turn end after the vote",
            client.finish_turn(prompt, Some(&mut stream)),
        )
        .await?;
        if i >= warmups {
            samples.push(started.elapsed());
        }
    }
    Ok(samples)
}
