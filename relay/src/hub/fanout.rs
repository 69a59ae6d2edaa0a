//! What goes out to sockets once the store has it: stored chats (from what
//! writing them returned), group changes and read markers.

use super::{GroupPlan, Hub, Remote, SMALL_GROUP};
use crate::clock::now_ms;
use crate::socket::encode;
use crate::store::{GroupChange, Placed, ReadMoved};
use shared::{GroupEventKind, ServerFrame, Target, UserId};

impl Hub {
    /// The first message between two users makes them contacts. Called
    /// before the sender hears back (81), so that whatever the sender does
    /// next finds them so.
    pub fn new_pair(&self, placed: &Placed) {
        if let (Target::User(to), 1) = (placed.msg.to, placed.msg.seq) {
            self.befriend(placed.msg.from, to);
        }
    }

    /// Fans a stored chat out: a tracked push to each online recipient
    /// (the peer, or every member of the group when it was stored), and an
    /// echo to the sender's other sockets (not `origin`); here, and on the
    /// other relays of a cluster.
    pub fn fanout(&self, placed: &Placed, origin: Option<u64>) {
        self.fan_out_here(placed, origin);
        self.publish(|| Remote::Chat {
            conv: placed.msg.conv,
            msg: placed.msg.message(),
            members: placed.members.as_ref().map(|m| m.to_vec()),
        });
    }

    /// [`Hub::fanout`] to this relay's sockets, here or on the dispatch
    /// thread (see `dispatch.rs`).
    pub(super) fn fan_out_here(&self, placed: &Placed, origin: Option<u64>) {
        if let Some(d) = &self.dispatcher {
            let recipients = placed.members.as_ref().map_or(1, |m| m.len());
            if d.offer((placed.clone(), origin), recipients).is_ok() {
                return;
            }
        }
        self.fan_out_now(placed, origin);
    }

    /// [`Hub::fanout`], here. One push is encoded once; sockets share the
    /// bytes.
    pub(super) fn fan_out_now(&self, placed: &Placed, origin: Option<u64>) {
        let msg = &placed.msg;
        let frame = encode(&msg.push_frame());
        match (msg.to, &placed.members) {
            (Target::Group(_), Some(members)) => self.deliver(members, msg, &frame),
            (Target::User(to), _) => self.deliver(&[to], msg, &frame),
            (Target::Group(_), None) => {}
        }
        self.echo(msg, origin, &frame);
    }

    /// Announces a group change, here and on the other relays. Small
    /// groups hear every event; in big ones, membership events reach only
    /// the people concerned (the member, whoever acted, the owner), renames
    /// reach everyone. A newcomer's delivery starts after the `seq` they
    /// joined at; a former member's stops.
    pub fn group_changed(&self, change: &GroupChange) {
        let plan = group_plan(change);
        self.apply_group_plan(&plan);
        self.publish(|| Remote::Group(plan));
    }

    /// Tells the senders of newly read messages, and the reader's other
    /// tabs, how far the reader has read (and from where, so a sender can
    /// count "read by N" for exactly the messages newly read).
    pub fn read_moved(&self, r: &ReadMoved) {
        let frame = encode(&ServerFrame::ReadReceipt {
            by_id: r.reader,
            // One-to-one: "you", for the peer; "the peer", for the
            // reader's own tabs. A group names itself.
            to: r.to,
            prev_seq: Some(r.prev),
            seq: r.seq,
            ts: now_ms(),
        });
        let mut to: Vec<UserId> = match r.to {
            Target::User(peer) => r.senders.iter().copied().filter(|s| *s == peer).collect(),
            Target::Group(_) => r.senders.clone(),
        };
        to.push(r.reader);
        self.to_users_everywhere(&to, &frame);
    }
}

/// What a group change sends to whom (see [`Hub::group_changed`]).
fn group_plan(change: &GroupChange) -> GroupPlan {
    let small = change.members.len() <= SMALL_GROUP;
    let mut plan = GroupPlan {
        conv: change.group.0,
        joined: change.joined,
        former: change.former.clone(),
        ..GroupPlan::default()
    };
    for e in &change.events {
        let frame = encode(&ServerFrame::GroupEvent(e.clone()));
        let mut to: Vec<UserId> = change.former.clone();
        if small
            || matches!(
                e.kind,
                GroupEventKind::Renamed | GroupEventKind::OwnerChanged
            )
        {
            to.extend(change.members.iter().copied());
        } else {
            to.extend(e.user_id.iter().chain(e.by_id.iter()).copied());
        }
        to.sort_unstable();
        to.dedup();
        plan.sends.push((to, frame.to_string()));
        if small {
            if let (
                GroupEventKind::Created
                | GroupEventKind::MemberAdded
                | GroupEventKind::MemberJoined,
                Some(newcomer),
            ) = (e.kind, e.user_id)
            {
                plan.friends
                    .extend(change.members.iter().map(|&m| (newcomer, m)));
            }
        }
    }
    plan
}
