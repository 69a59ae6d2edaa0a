//! Setting a run up: one public group per room (created by its first
//! participant, joined by the others over the HTTP API), then one socket
//! per participant on node `i % N` (participant `i` of the run, room by
//! room), which sends VOICE_JOIN (120) and waits for its 121 before it is
//! handed to its task, reading from then on.

use super::args::VoiceArgs;
use super::listener::{Listener, Route};
use super::participant::{run_seat, Seat, SeatOut, Shared, Start};
use super::speaker::Speaker;
use crate::client::{Account, Api, Targets, Ws, LOGIN_TIMEOUT};
use crate::fanout::{create_group, join_group};
use crate::report::{self, Tally};
use crate::{wire, Ctx, Error};
use futures_util::{SinkExt, StreamExt};
use shared::{ClientFrame, GroupId, UserId};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// The rooms' groups: created, and every participant a member.
pub(super) async fn groups(
    ctx: &Ctx,
    api: &Api,
    accounts: &[Account],
    args: &VoiceArgs,
) -> Result<Vec<GroupId>, Error> {
    let p = args.participants;
    let mut groups = Vec::with_capacity(args.rooms);
    for r in 0..args.rooms {
        let name = format!("lg{} voice {r}", ctx.run_id);
        groups.push(create_group(api, &accounts[r * p], &name).await?.group_id);
    }
    let joins = (0..args.rooms).flat_map(|r| (1..p).map(move |j| (r, r * p + j)));
    let total = args.rooms * (p - 1);
    ctx.log.say(format_args!(
        "{} groups created; {total} members join ({} in flight)",
        args.rooms, args.join_concurrency
    ));
    let results: Vec<Result<u64, Error>> = futures_util::stream::iter(joins)
        .map(|(r, i)| join_group(api, &accounts[i], groups[r]))
        .buffer_unordered(args.join_concurrency.max(1))
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(groups)
}

/// The participants' tasks, running, and why the others are not.
pub(super) struct Seated {
    /// One per participant that joined its room, with its room and index.
    pub tasks: Vec<JoinHandle<SeatOut>>,
    /// Participants per room that joined.
    pub joined: Vec<u64>,
    /// Joined participants per node.
    pub per_node: Vec<u64>,
    /// Joined speakers.
    pub speakers: u64,
    /// Why participants could not connect or join, tallied.
    pub failures: Tally,
}

/// What every seat needs to know.
pub(super) struct Plan<'a> {
    pub targets: &'a Targets,
    pub accounts: &'a [Account],
    pub groups: &'a [GroupId],
    pub args: &'a VoiceArgs,
    pub shared: Arc<Shared>,
    pub start: Start,
    pub stop: watch::Receiver<bool>,
}

/// Opens, logs in and joins every participant, `--connect-concurrency`
/// at a time, room by room; each that joined gets its task at once.
pub(super) async fn seat_all(ctx: &Ctx, plan: Plan<'_>) -> Seated {
    let (a, nodes) = (plan.args, plan.targets.len());
    let p = a.participants;
    let speaker_ids: Vec<Arc<[UserId]>> = (0..a.rooms)
        .map(|r| {
            (0..a.speakers)
                .map(|j| plan.accounts[r * p + j].user_id)
                .collect()
        })
        .collect();
    let total_speakers = a.rooms * a.speakers;
    let started = Instant::now();
    let jobs = (0..a.rooms * p).map(|i| {
        let (room, index) = (i / p, i % p);
        let node = i % nodes;
        let group = plan.groups[room];
        let routes = (0..a.speakers)
            .map(|j| match (room * p + j) % nodes == node {
                true => Route::Same,
                false => Route::Cross,
            })
            .collect();
        let seat = Seat {
            room,
            index,
            listener: Listener::new(group, speaker_ids[room].clone(), routes, i),
            speaker: (index < a.speakers).then(|| {
                let g = room * a.speakers + index;
                let interval_us = a.interval.as_micros() as u64;
                Speaker::new(group, g, total_speakers, interval_us, a.frame_bytes)
            }),
        };
        let (target, token) = (plan.targets.node(node), plan.accounts[i].token.clone());
        let plan = &plan;
        async move {
            let (mut ws, _) = target
                .open_session(i, &token)
                .await
                .map_err(|e| e.to_string())?;
            join_room(&mut ws, group).await?;
            let (shared, start, stop) =
                (plan.shared.clone(), plan.start.clone(), plan.stop.clone());
            Ok::<_, String>((
                room,
                node,
                index < plan.args.speakers,
                tokio::spawn(run_seat(ws, seat, shared, start, stop)),
            ))
        }
    });
    let results: Vec<_> = futures_util::stream::iter(jobs)
        .buffered(a.connect_concurrency.max(1))
        .collect()
        .await;
    let mut s = Seated {
        tasks: Vec::with_capacity(results.len()),
        joined: vec![0; a.rooms],
        per_node: vec![0; nodes],
        speakers: 0,
        failures: Tally::new(),
    };
    for r in results {
        match r {
            Ok((room, node, speaker, task)) => {
                s.joined[room] += 1;
                s.speakers += speaker as u64;
                s.per_node[node] += 1;
                s.tasks.push(task);
            }
            Err(e) => report::tally(&mut s.failures, &e, 1),
        }
    }
    ctx.log.say(format_args!(
        "{} of {} participants in their rooms after {:.1} s{}",
        s.tasks.len(),
        a.rooms * p,
        started.elapsed().as_secs_f64(),
        match s.failures.is_empty() {
            true => String::new(),
            false => format!("; failures: {}", report::fmt_tally(&s.failures)),
        }
    ));
    s
}

/// Sends VOICE_JOIN and reads until its 121 (other frames are skipped) or
/// a type 0 answer.
async fn join_room(ws: &mut Ws, group: GroupId) -> Result<(), String> {
    let frame = ClientFrame::VoiceJoin { group_id: group }.encode();
    (ws.send(Message::text(frame)).await).map_err(|e| format!("send VOICE_JOIN: {e}"))?;
    let deadline = tokio::time::Instant::now() + LOGIN_TIMEOUT;
    loop {
        let m = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("join: no 121 in time".into()),
            Ok(m) => m,
        };
        let mut problems = Tally::new();
        let Ok(text) = crate::socket::text(m, "join", &mut problems) else {
            return Err(report::fmt_tally(&problems));
        };
        let Some(text) = text else { continue };
        match wire::fast_type(&text) {
            Some(wire::frame_type::VOICE_JOINED) => return Ok(()),
            Some(wire::frame_type::ERROR) => {
                let code = wire::Lite::parse(&text)
                    .ok()
                    .and_then(|l| l.code.map(|c| c.into_owned()));
                return Err(format!("join refused: {}", code.unwrap_or_default()));
            }
            _ => continue,
        }
    }
}
