//! obs-websocket authentication: the salted SHA-256 challenge of `Hello`.
//!
//! `secret = base64(sha256(password + salt))`, then
//! `authentication = base64(sha256(secret + challenge))`. The password
//! never goes over the wire and is never logged; the answer is good for
//! this one connection's challenge only.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::protocol::AuthChallenge;

/// The `authentication` string of `Identify` for this challenge.
pub fn authentication(password: &SecretString, challenge: &AuthChallenge) -> String {
    let mut hasher = Sha256::new();
    hasher.update(password.expose_secret().as_bytes());
    hasher.update(challenge.salt.as_bytes());
    let secret = STANDARD.encode(hasher.finalize());
    let mut hasher = Sha256::new();
    hasher.update(secret.as_bytes());
    hasher.update(challenge.challenge.as_bytes());
    STANDARD.encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of obs-websocket's protocol document
    /// ("Creating an authentication string").
    #[test]
    fn matches_the_protocol_documents_example() {
        let challenge = AuthChallenge {
            challenge: "+IxH4CnCiqpX1rM9scsNynZzbOe4KhDeYcTNS3PDaeY=".into(),
            salt: "lM1GncleQOaCu9lT1yeUZhFYnqhsLLP1G5lAGo3ixaI=".into(),
        };
        assert_eq!(
            authentication(&SecretString::from("supersecretpassword"), &challenge),
            "1Ct943GAT+6YQUUX47Ia/ncufilbe6+oD6lY+5kaCu4="
        );
    }

    #[test]
    fn depends_on_password_salt_and_challenge() {
        let base = AuthChallenge {
            challenge: "c".into(),
            salt: "s".into(),
        };
        let password = SecretString::from("p");
        let answer = authentication(&password, &base);
        assert_ne!(answer, authentication(&SecretString::from("q"), &base));
        let other_salt = AuthChallenge {
            challenge: "c".into(),
            salt: "t".into(),
        };
        assert_ne!(answer, authentication(&password, &other_salt));
        let other_challenge = AuthChallenge {
            challenge: "d".into(),
            salt: "s".into(),
        };
        assert_ne!(answer, authentication(&password, &other_challenge));
    }
}
