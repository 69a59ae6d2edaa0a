//! Sockets logging in and out: registration (with the presence snapshot),
//! kicks, shutdown, and which contacts are online.

use super::delivery::SyncBuffer;
use super::presence::Departed;
use super::{Hub, Remote, Sock, UserEntry};
use crate::auth::TokenHash;
use crate::socket::SocketHandle;
use crate::store::UserRef;
use shared::UserId;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// Unregisters its socket when dropped (on every exit path of a session).
pub struct Registration {
    hub: Arc<Hub>,
    user: UserId,
    socket: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.user, self.socket);
    }
}

impl Hub {
    /// A fresh socket id.
    pub fn next_socket_id(&self) -> u64 {
        self.next_socket.fetch_add(1, Relaxed)
    }

    /// Adds a logged-in socket, in backlog-sync mode. `contacts` are the
    /// user's contacts from the store. When this is the user's first socket
    /// their contacts hear that they are online. Returns the registration
    /// and the contacts online now (the new socket's presence snapshot).
    pub fn register(
        self: &Arc<Self>,
        user: &UserRef,
        handle: SocketHandle,
        token: TokenHash,
        contacts: &[UserRef],
    ) -> (Registration, Vec<UserRef>) {
        let socket = handle.id();
        let first = {
            let mut shard = self.shard(user.id).lock();
            let mut first = false;
            let entry = shard.entry(user.id).or_insert_with(|| {
                first = true;
                self.metrics.users_online.fetch_add(1, Relaxed);
                UserEntry::new(&user.username)
            });
            entry.contacts.extend(contacts.iter().map(|c| c.id));
            entry.sockets.push(Sock {
                handle,
                token,
                sync: Some(SyncBuffer::default()),
            });
            first
        };
        // Back within the grace period: contacts (here and on the other
        // relays) never saw them leave. Online on another relay: contacts
        // know already.
        let returning = self.departed.lock().remove(&user.id).is_some();
        if first && !returning {
            if !self.remote_online(user.id) {
                self.announce(user.id, &user.username, true, contacts.iter().map(|c| c.id));
            }
            self.publish(|| Remote::Presence {
                user: user.id,
                username: user.username.clone(),
                online: true,
                contacts: contacts.iter().map(|c| c.id).collect(),
            });
        }
        let online = contacts
            .iter()
            .filter(|c| self.is_online(c.id))
            .cloned()
            .collect();
        (
            Registration {
                hub: self.clone(),
                user: user.id,
                socket,
            },
            online,
        )
    }

    fn unregister(&self, user: UserId, socket: u64) {
        let left = {
            let mut shard = self.shard(user).lock();
            let Some(e) = shard.get_mut(&user) else {
                return;
            };
            e.sockets.retain(|s| s.handle.id() != socket);
            if !e.sockets.is_empty() {
                return;
            }
            // Unacked pushes stay in the store; they go out at next login.
            self.metrics.users_online.fetch_sub(1, Relaxed);
            shard.remove(&user)
        };
        if let Some(e) = left {
            self.departed.lock().insert(
                user,
                Departed {
                    at: Instant::now(),
                    username: e.username,
                    contacts: e.contacts,
                },
            );
        }
    }

    /// The user's contacts who are online (or left less than the presence
    /// grace ago), if the user is online themselves: the hub knows their
    /// contacts then. Unsorted.
    pub fn online_contacts(&self, user: UserId) -> Option<Vec<UserRef>> {
        let contacts: Vec<UserId> = {
            let shard = self.shard(user).lock();
            shard.get(&user)?.contacts.iter().copied().collect()
        };
        Some(self.online_among(contacts.into_iter()))
    }

    /// Which of `users` are online, with their names.
    pub fn online_among(&self, users: impl Iterator<Item = UserId>) -> Vec<UserRef> {
        let mut online = Vec::new();
        let mut away = Vec::new();
        self.each_shard(users, |shard, users| {
            for u in users {
                match shard.get(u) {
                    Some(e) => online.push(UserRef {
                        id: *u,
                        username: e.username.to_string(),
                    }),
                    None => away.push(*u),
                }
            }
        });
        let mut elsewhere = Vec::new();
        {
            let departed = self.departed.lock();
            for u in away {
                match departed.get(&u) {
                    Some(d) => online.push(UserRef {
                        id: u,
                        username: d.username.to_string(),
                    }),
                    None => elsewhere.push(u),
                }
            }
        }
        let names = self.remote_names(&elsewhere);
        online.extend(names.into_iter().map(|(id, name)| UserRef {
            id,
            username: name.to_string(),
        }));
        online
    }

    /// Closes the user's sockets that logged in with `token`, here and on
    /// the other relays (a logout).
    pub fn kick_token(&self, user: UserId, token: &TokenHash, code: u16) {
        self.kick_token_here(user, token, code);
        self.publish(|| Remote::Kick {
            user,
            token: crate::auth::token_hash_hex(token),
            code,
        });
    }

    /// [`Hub::kick_token`] on this relay's sockets.
    pub(super) fn kick_token_here(&self, user: UserId, token: &TokenHash, code: u16) {
        let targets: Vec<SocketHandle> = {
            let shard = self.shard(user).lock();
            shard
                .get(&user)
                .map(|e| {
                    e.sockets
                        .iter()
                        .filter(|s| &s.token == token)
                        .map(|s| s.handle.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        for h in targets {
            h.kill(code);
        }
    }

    /// The tokens this relay's sockets logged in with, once each.
    pub fn local_tokens(&self) -> Vec<(UserId, TokenHash)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (user, e) in shard.iter() {
                out.extend(e.sockets.iter().map(|s| (*user, s.token)));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Closes the sockets here that logged in with tokens since revoked
    /// (a logout whose event this relay may have missed).
    pub fn close_revoked(&self, revoked: &[(UserId, TokenHash)]) {
        for (user, token) in revoked {
            self.kick_token_here(*user, token, shared::close::LOGGED_OUT);
        }
    }

    /// Closes every logged-in socket (shutdown).
    pub fn close_all(&self, code: u16) {
        for shard in self.shards.iter() {
            let handles: Vec<SocketHandle> = shard
                .lock()
                .values()
                .flat_map(|e| e.sockets.iter().map(|s| s.handle.clone()))
                .collect();
            for h in handles {
                h.kill(code);
            }
        }
    }
}
