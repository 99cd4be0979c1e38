//! Sign-in state: one-time login codes and browser sessions.
//!
//! Both are random 256-bit values handed to the browser once; only their
//! SHA-256 is kept, so a dump of this state does not let anyone in. They live
//! in memory ([`MemorySessions`]) behind the small [`SessionStore`] trait:
//! a restart signs everyone out, and with several daemons sharing one
//! PostgreSQL database a session works only on the process that issued it
//! (put such a setup behind sticky sessions, or add a store-backed
//! implementation of the trait).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// How long a printed login link works.
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// How long a session lasts without being used.
pub const SESSION_IDLE_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// A signed-in browser, as the server remembers it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The synchronizer token every state-changing request must carry.
    pub csrf: String,
    /// The API token (its id) that signed in, for the log.
    pub token_id: String,
}

/// Where sign-in state is kept. Keys are hashes ([`hash`]), never the values
/// the browser holds.
pub trait SessionStore: Send + Sync {
    fn insert_code(&self, code_hash: String, expires: Instant);
    /// Remove the code and say whether it was there and unexpired (single use).
    fn take_code(&self, code_hash: &str, now: Instant) -> bool;
    fn insert_session(&self, id_hash: String, session: Session, now: Instant);
    /// The session, if it exists and was used recently; refreshes its idle timer.
    fn touch_session(&self, id_hash: &str, now: Instant) -> Option<Session>;
    fn remove_session(&self, id_hash: &str);
}

/// [`SessionStore`] in this process's memory.
#[derive(Default)]
pub struct MemorySessions {
    codes: Mutex<HashMap<String, Instant>>,
    sessions: Mutex<HashMap<String, (Session, Instant)>>,
}

impl SessionStore for MemorySessions {
    fn insert_code(&self, code_hash: String, expires: Instant) {
        let mut codes = self.codes.lock().expect("login codes lock");
        let now = Instant::now();
        codes.retain(|_, at| *at > now);
        codes.insert(code_hash, expires);
    }

    fn take_code(&self, code_hash: &str, now: Instant) -> bool {
        let mut codes = self.codes.lock().expect("login codes lock");
        matches!(codes.remove(code_hash), Some(expires) if expires > now)
    }

    fn insert_session(&self, id_hash: String, session: Session, now: Instant) {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.retain(|_, (_, seen)| now.duration_since(*seen) < SESSION_IDLE_TTL);
        sessions.insert(id_hash, (session, now));
    }

    fn touch_session(&self, id_hash: &str, now: Instant) -> Option<Session> {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        match sessions.get_mut(id_hash) {
            Some((session, seen)) if now.duration_since(*seen) < SESSION_IDLE_TTL => {
                *seen = now;
                Some(session.clone())
            }
            Some(_) => {
                sessions.remove(id_hash);
                None
            }
            None => None,
        }
    }

    fn remove_session(&self, id_hash: &str) {
        self.sessions.lock().expect("sessions lock").remove(id_hash);
    }
}

/// 256 random bits, base64url.
pub fn random_value() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is unavailable");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 hex: what the store keeps instead of a code or session id.
pub fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Constant-time comparison of two tokens (CSRF), so a timing difference
/// does not tell how many leading characters were right.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_code_works_once_and_only_before_it_expires() {
        let store = MemorySessions::default();
        let now = Instant::now();
        store.insert_code(hash("abc"), now + LOGIN_CODE_TTL);
        assert!(!store.take_code(&hash("abd"), now));
        assert!(store.take_code(&hash("abc"), now));
        assert!(!store.take_code(&hash("abc"), now), "single use");
        store.insert_code(hash("late"), now + LOGIN_CODE_TTL);
        assert!(!store.take_code(&hash("late"), now + LOGIN_CODE_TTL + Duration::from_secs(1)));
    }

    #[test]
    fn sessions_expire_when_idle_and_end_on_sign_out() {
        let store = MemorySessions::default();
        let now = Instant::now();
        let session = Session {
            csrf: "c".into(),
            token_id: "t".into(),
        };
        store.insert_session(hash("s1"), session.clone(), now);
        assert!(store.touch_session(&hash("s1"), now).is_some());
        assert!(store.touch_session(&hash("s2"), now).is_none());
        assert!(
            store
                .touch_session(&hash("s1"), now + SESSION_IDLE_TTL + Duration::from_secs(1))
                .is_none()
        );
        store.insert_session(hash("s3"), session, now);
        store.remove_session(&hash("s3"));
        assert!(store.touch_session(&hash("s3"), now).is_none());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
    }
}
