//! Webhook signatures: HMAC-SHA256 (RFC 2104, written out over `sha2`:
//! a dozen lines instead of a dependency) over `"<t>.<body>"`, sent as
//! `X-Ferrochat-Signature: t=<unix seconds>,v1=<hex>`. The timestamp is
//! signed with the body, so a receiver that rejects old timestamps also
//! rejects replays.

use sha2::{Digest, Sha256};

/// HMAC-SHA256 of `msg` under `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature header's value for `body` sent at `t` (Unix seconds).
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(body);
    format!("t={t},v1={}", hex(&hmac_sha256(secret.as_bytes(), &msg)))
}

/// A fresh webhook secret: 192 random bits, hex (54 characters in all:
/// under HMAC-SHA256's 64-byte block, so receivers need no key hashing).
pub fn new_secret() -> String {
    let mut r = [0u8; 24];
    getrandom::fill(&mut r).expect("OS random source");
    format!("whsec_{}", hex(&r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex(&long),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signatures_cover_the_timestamp() {
        let a = signature("s", 1, b"{}");
        assert!(a.starts_with("t=1,v1="));
        assert_ne!(a[4..], signature("s", 2, b"{}")[4..]);
        assert_ne!(new_secret(), new_secret());
    }
}
