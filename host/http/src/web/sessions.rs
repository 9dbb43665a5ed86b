//! The console's login sessions: random values the daemon hands out as a
//! cookie in exchange for the token. Kept in memory only, bounded in count
//! and age, so a flood of logins cannot grow the daemon and a stolen cookie
//! stops working when the daemon restarts or the session expires. The value
//! is never derived from the token: knowing one says nothing of the other.

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// How many console sessions live at once; a login past it ends the oldest.
pub const MAX_CONSOLE_SESSIONS: usize = 256;

/// How long a console session lasts after its login.
pub const CONSOLE_SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// Bytes of randomness in a session value (hex-encoded in the cookie).
const VALUE_BYTES: usize = 32;

/// The live console sessions.
#[derive(Debug)]
pub struct ConsoleSessions {
    /// (value, expiry), oldest first. A `Vec`: at most a few hundred, and a
    /// lookup compares every entry in constant time per entry.
    live: Mutex<Vec<(String, Instant)>>,
    max: usize,
    ttl: Duration,
}

/// The kernel's random source could not be read: no session is made.
#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes for a console session: {0}")]
pub struct NoRandomness(#[from] std::io::Error);

impl ConsoleSessions {
    pub fn new(max: usize, ttl: Duration) -> ConsoleSessions {
        ConsoleSessions {
            live: Mutex::new(Vec::new()),
            max: max.max(1),
            ttl,
        }
    }

    /// A fresh session value (64 hex digits from the kernel's CSPRNG).
    pub fn create(&self) -> Result<String, NoRandomness> {
        let mut bytes = [0u8; VALUE_BYTES];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut live = self.lock();
        live.retain(|(_, expiry)| *expiry > now);
        while live.len() >= self.max {
            live.remove(0);
        }
        live.push((value.clone(), now + self.ttl));
        Ok(value)
    }

    /// Whether `value` is a live session. Every entry is compared, each in
    /// constant time, so the answer's timing says nothing about near misses.
    pub fn is_live(&self, value: &str) -> bool {
        let now = Instant::now();
        let live = self.lock();
        let mut found = subtle::Choice::from(0);
        for (candidate, expiry) in live.iter() {
            let same = candidate.len() == value.len()
                && bool::from(candidate.as_bytes().ct_eq(value.as_bytes()));
            found |= subtle::Choice::from(u8::from(same && *expiry > now));
        }
        found.into()
    }

    /// Ends a session (logout). Unknown values are ignored.
    pub fn remove(&self, value: &str) {
        self.lock().retain(|(candidate, _)| candidate != value);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Instant)>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_value_is_live_random_and_ends_at_logout() {
        let sessions = ConsoleSessions::new(8, CONSOLE_SESSION_TTL);
        let a = sessions.create().unwrap();
        let b = sessions.create().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(sessions.is_live(&a) && sessions.is_live(&b));
        assert!(!sessions.is_live(&a[..63]));
        assert!(!sessions.is_live(""));
        sessions.remove(&a);
        assert!(!sessions.is_live(&a));
        assert!(sessions.is_live(&b));
    }

    #[test]
    fn the_store_is_bounded_and_the_oldest_goes_first() {
        let sessions = ConsoleSessions::new(3, CONSOLE_SESSION_TTL);
        let values: Vec<String> = (0..5).map(|_| sessions.create().unwrap()).collect();
        assert!(!sessions.is_live(&values[0]));
        assert!(!sessions.is_live(&values[1]));
        assert!(values[2..].iter().all(|v| sessions.is_live(v)));
    }

    #[test]
    fn an_expired_session_is_not_live() {
        let sessions = ConsoleSessions::new(3, Duration::ZERO);
        let value = sessions.create().unwrap();
        assert!(!sessions.is_live(&value));
    }
}
