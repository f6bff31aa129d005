//! Callback tokens: the node and the attempt that a callback reports on, with an HMAC-SHA256
//! over them. The key is generated once and stored in the database, so every replica shares
//! it; tokens are never stored, and no endpoint returns one.
//!
//! A token is base64url (no padding) of: a version byte, the run's id (16 bytes), the node's
//! number and the attempt (4 bytes each, big-endian), and the MAC of all that (32 bytes).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use aetr_engine::NodeIdx;

type HmacSha256 = hmac::Hmac<Sha256>;

const VERSION: u8 = 1;
const CLAIM_LEN: usize = 1 + 16 + 4 + 4;
const TOKEN_LEN: usize = CLAIM_LEN + 32;

/// What a token says: a node of a run, and one attempt at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub run: Uuid,
    pub node: NodeIdx,
    pub attempt: u32,
}

/// The HMAC key. Its `Debug` does not show it.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(key: Vec<u8>) -> Self {
        TokenKey(key)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length.
        <HmacSha256 as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    pub fn issue(&self, claim: Claim) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(claim.run.as_bytes());
        bytes.extend_from_slice(&claim.node.to_be_bytes());
        bytes.extend_from_slice(&claim.attempt.to_be_bytes());
        let mut mac = self.mac();
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The claim of a token that this key issued, checked in constant time. `None` for anything
    /// else.
    pub fn verify(&self, token: &str) -> Option<Claim> {
        if token.len() > TOKEN_LEN * 2 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != TOKEN_LEN || bytes[0] != VERSION {
            return None;
        }
        let (claim, tag) = bytes.split_at(CLAIM_LEN);
        let mut mac = self.mac();
        mac.update(claim);
        mac.verify_slice(tag).ok()?;
        let word = |at: usize| {
            u32::from_be_bytes([claim[at], claim[at + 1], claim[at + 2], claim[at + 3]])
        };
        Some(Claim {
            run: Uuid::from_slice(&claim[1..17]).ok()?,
            node: word(17),
            attempt: word(21),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_carries_its_claim_and_nothing_else_verifies() {
        let key = TokenKey::new(vec![7; 32]);
        let claim = Claim { run: Uuid::now_v7(), node: 12, attempt: 3 };
        let token = key.issue(claim);
        assert_eq!(key.verify(&token), Some(claim));
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));

        assert_eq!(TokenKey::new(vec![8; 32]).verify(&token), None, "another key");
        let mut forged = URL_SAFE_NO_PAD.decode(&token).unwrap_or_default();
        forged[20] ^= 1; // another node
        assert_eq!(key.verify(&URL_SAFE_NO_PAD.encode(&forged)), None);
        assert_eq!(key.verify(&token[..token.len() - 1]), None, "truncated");
        assert_eq!(key.verify(""), None);
        assert_eq!(key.verify("not base64!"), None);
    }
}
