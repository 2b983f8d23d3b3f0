//! Session ids, passwords, negotiated timeouts and expiry.

use crate::{ConnId, IdMap};

/// The value session ids skip: it is the container marker in `ephemeralOwner`.
const CONTAINER_MARKER: i64 = i64::MIN;
/// `ZooKeeperServer.superSecret`, mixed into the password seed.
const PASSWORD_SECRET: i64 = 0xB341_5C00;
/// Length of a session password.
pub const PASSWORD_LEN: usize = 16;

/// The first session id of a server: server id in the top byte, then the low 40 bits of the
/// start time in ms, then a 16-bit counter (`SessionTrackerImpl.initializeNextSessionId`).
pub fn initial_session_id(server_id: u8, now_ms: i64) -> i64 {
    let time_bits = ((now_ms << 24) as u64 >> 8) as i64;
    time_bits | (i64::from(server_id) << 56)
}

/// The password of a session: 16 bytes of `java.util.Random(id ^ 0xB3415C00).nextBytes`, as
/// Apache ZooKeeper derives it, so any member of an ensemble (or a restarted server) can verify
/// a re-attaching client without storing passwords.
pub fn session_password(session_id: i64) -> [u8; PASSWORD_LEN] {
    const MULTIPLIER: i64 = 0x5_DEEC_E66D;
    const MASK: i64 = (1 << 48) - 1;
    let mut seed = (session_id ^ PASSWORD_SECRET ^ MULTIPLIER) & MASK;
    let mut out = [0u8; PASSWORD_LEN];
    for chunk in out.chunks_mut(4) {
        seed = (seed.wrapping_mul(MULTIPLIER).wrapping_add(0xB)) & MASK;
        let mut rnd = (seed >> 16) as i32;
        for byte in chunk {
            *byte = rnd as u8;
            rnd >>= 8;
        }
    }
    out
}

/// One live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The id.
    pub id: i64,
    /// Negotiated timeout, ms.
    pub timeout_ms: i32,
    /// Monotonic deadline (ms) after which the session expires unless touched.
    pub expires_at_ms: u64,
    /// Set once a closeSession txn has been prepared; the session accepts no more requests.
    pub closing: bool,
    /// The connection the session is attached to, if any.
    pub conn: Option<ConnId>,
}

/// Tracks live sessions and their expiry deadlines.
#[derive(Debug)]
pub struct SessionTracker {
    next_id: i64,
    sessions: IdMap<i64, Session>,
}

impl SessionTracker {
    /// A tracker handing out ids from [`initial_session_id`].
    pub fn new(server_id: u8, now_wall_ms: i64) -> SessionTracker {
        SessionTracker {
            next_id: initial_session_id(server_id, now_wall_ms),
            sessions: IdMap::default(),
        }
    }

    /// A fresh session id.
    pub fn next_session_id(&mut self) -> i64 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if id != CONTAINER_MARKER && id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Registers a session (when its createSession txn applies, or when recovered).
    pub fn add(&mut self, id: i64, timeout_ms: i32, now_ms: u64) {
        self.sessions.insert(
            id,
            Session {
                id,
                timeout_ms,
                expires_at_ms: now_ms + u64::try_from(timeout_ms).unwrap_or(0),
                closing: false,
                conn: None,
            },
        );
    }

    /// The session, if live.
    pub fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// The session, mutably.
    pub fn get_mut(&mut self, id: i64) -> Option<&mut Session> {
        self.sessions.get_mut(&id)
    }

    /// Pushes the deadline out by the session's timeout; false if unknown or closing.
    pub fn touch(&mut self, id: i64, now_ms: u64) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) if !s.closing => {
                s.expires_at_ms = now_ms + u64::try_from(s.timeout_ms).unwrap_or(0);
                true
            }
            _ => false,
        }
    }

    /// Gives every session a full timeout from now and forgets closes that were prepared
    /// but never committed (a new leader, as Apache's does on election).
    pub fn restart_timeouts(&mut self, now_ms: u64) {
        for s in self.sessions.values_mut() {
            s.closing = false;
            s.expires_at_ms = now_ms + u64::try_from(s.timeout_ms).unwrap_or(0);
        }
    }

    /// Removes a session (when its closeSession txn applies).
    pub fn remove(&mut self, id: i64) -> Option<Session> {
        self.sessions.remove(&id)
    }

    /// Sessions whose deadline has passed and that are not already closing, sorted by id.
    pub fn expired(&self, now_ms: u64) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .sessions
            .values()
            .filter(|s| !s.closing && s.expires_at_ms <= now_ms)
            .map(|s| s.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every live session as (id, timeout), sorted by id (for snapshots and `dump`).
    pub fn list(&self) -> Vec<(i64, i32)> {
        let mut out: Vec<(i64, i32)> = self
            .sessions
            .values()
            .map(|s| (s.id, s.timeout_ms))
            .collect();
        out.sort_unstable();
        out
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_server_id_in_the_top_byte() {
        let id = initial_session_id(3, 1_700_000_000_000);
        assert_eq!(id >> 56, 3);
        assert_eq!(id & 0xffff, 0, "counter starts at 0");
        let standalone = initial_session_id(0, 1_700_000_000_000);
        assert_eq!(standalone >> 56, 0);
    }

    #[test]
    fn password_matches_java_util_random() {
        // Printed by OpenJDK 17: `new java.util.Random(42L).nextBytes(b)` and
        // `new java.util.Random(0x0100000000000001L ^ 0xB3415C00L).nextBytes(b)`.
        assert_eq!(
            session_password(42 ^ PASSWORD_SECRET),
            [
                0x35, 0x9D, 0x41, 0xBA, 0xF7, 0x8A, 0xFE, 0x0D, 0xE1, 0xBB, 0xE7, 0xAE, 0x28, 0xC0,
                0x45, 0x0C
            ]
        );
        assert_eq!(
            session_password(0x0100_0000_0000_0001),
            [
                0x05, 0x4C, 0xC7, 0x4A, 0x37, 0x32, 0x7D, 0xB2, 0x15, 0xE7, 0x02, 0xE2, 0x0C, 0x73,
                0xF0, 0x05
            ]
        );
    }

    #[test]
    fn expiry_and_touch() {
        let mut t = SessionTracker::new(0, 0);
        let id = t.next_session_id();
        t.add(id, 1000, 0);
        assert!(t.expired(999).is_empty());
        assert!(t.touch(id, 500));
        assert!(t.expired(1499).is_empty());
        assert_eq!(t.expired(1500), vec![id]);
        t.get_mut(id).unwrap().closing = true;
        assert!(t.expired(5000).is_empty());
        assert!(!t.touch(id, 5000));
    }
}
