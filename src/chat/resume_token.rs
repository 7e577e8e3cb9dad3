//! Resume tokens: random secrets handed out at login, kept by the store only as digests.

use crate::protocol::TOKEN_CHARS;
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// What the store keeps of a token: its SHA-256. The token has 256 random bits, so a fast
/// hash is enough (unlike a password, it cannot be guessed from a dictionary).
pub(crate) type TokenDigest = [u8; 32];

/// A fresh token, as the client gets it (lowercase hex), and its digest.
pub(crate) fn new_token() -> (String, TokenDigest) {
    let secret: [u8; TOKEN_CHARS / 2] = rand::random();
    let token: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let digest = digest(&token);
    (token, digest)
}

pub(crate) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Seconds since the Unix epoch: the store's clock for expiry.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hex_of_the_protocol_length_and_differ() {
        let (a, da) = new_token();
        let (b, db) = new_token();
        assert_eq!(a.len(), TOKEN_CHARS);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        assert_ne!(da, db);
        assert_eq!(
            digest(&a),
            da,
            "the digest is of the text the client sends back"
        );
    }
}
