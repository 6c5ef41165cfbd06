//! SCRAM-SHA-256 (RFC 5802, RFC 7677), server side, as PostgreSQL clients
//! speak it: verifiers to store, and one authentication exchange.
//!
//! A [`Verifier`] is what the server keeps instead of a password: salt,
//! iteration count, StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
//! ServerKey = HMAC(SaltedPassword, "Server Key"). It is written as
//! PostgreSQL writes it in `pg_authid`:
//! `SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>`.
//! Neither key lets anyone log in; the client proves it knows the password
//! by a proof the server checks against StoredKey.
//!
//! Channel binding is not offered (no TLS), so a client that demands it
//! (`p=` in its GS2 header) is refused. Passwords are used as their UTF-8
//! bytes without SASLprep normalisation (identical for ASCII passwords).
//! Invariants: every comparison of secrets is constant-time; malformed
//! client messages are errors, never panics.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Iterations for new verifiers (PostgreSQL's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// The mechanism name.
pub const MECHANISM: &str = "SCRAM-SHA-256";
const PREFIX: &str = "SCRAM-SHA-256$";

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("the client requires channel binding, which this server does not offer (no TLS)")]
    ChannelBinding,
    #[error("the SCRAM nonce does not match")]
    Nonce,
    #[error("password authentication failed")]
    Proof,
}

/// What the server stores for a user.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(..)")
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Verifier {
    /// The verifier of `password` with `salt` and `iterations`.
    pub fn new(password: &str, salt: &[u8], iterations: u32) -> Verifier {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
        let client_key = hmac(&salted, &[b"Client Key"]);
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, &[b"Server Key"]),
        }
    }

    /// A verifier with a fresh random 16-byte salt.
    pub fn generate(password: &str) -> Verifier {
        let mut salt = [0u8; 16];
        fill_random(&mut salt);
        Verifier::new(password, &salt, DEFAULT_ITERATIONS)
    }

    /// Reads the stored form; `None` if it is not one.
    pub fn parse(s: &str) -> Option<Verifier> {
        let rest = s.strip_prefix(PREFIX)?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        let iterations: u32 = iterations.parse().ok().filter(|&i| i > 0)?;
        let key = |k: &str| -> Option<[u8; 32]> { B64.decode(k).ok()?.try_into().ok() };
        Some(Verifier {
            iterations,
            salt: B64.decode(salt).ok()?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

/// Random bytes from the operating system.
pub fn fill_random(buf: &mut [u8]) {
    use password_hash::rand_core::{OsRng, RngCore};
    OsRng.fill_bytes(buf);
}

/// A fresh server nonce: 18 random bytes in base64 (printable, no comma).
pub fn new_nonce() -> String {
    let mut n = [0u8; 18];
    fill_random(&mut n);
    B64.encode(n)
}

/// An exchange after the server-first message: waiting for client-final.
#[derive(Debug)]
pub struct Exchange {
    verifier: Verifier,
    /// client-first-message-bare "," server-first-message
    auth_prefix: String,
    nonce: String,
    gs2_header: String,
}

/// Handles client-first-message: returns the exchange and the
/// server-first-message to send.
pub fn server_first(
    verifier: Verifier,
    client_first: &[u8],
    server_nonce: &str,
) -> Result<(Exchange, String), ScramError> {
    let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    // gs2-header: cbind-flag "," [authzid] ","
    let (flag, rest) = text
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("bad channel binding flag")),
    }
    let (_authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    let gs2_header = format!("{flag},{_authzid},");
    let mut client_nonce = None;
    for attr in bare.split(',') {
        if let Some(r) = attr.strip_prefix("r=") {
            client_nonce = Some(r);
        } else if attr.starts_with("m=") {
            return Err(ScramError::Malformed(
                "mandatory extensions are not supported",
            ));
        }
    }
    let client_nonce = client_nonce
        .filter(|n| !n.is_empty())
        .ok_or(ScramError::Malformed("no client nonce"))?;
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&verifier.salt),
        verifier.iterations
    );
    Ok((
        Exchange {
            verifier,
            auth_prefix: format!("{bare},{server_first}"),
            nonce,
            gs2_header,
        },
        server_first,
    ))
}

impl Exchange {
    /// Checks client-final-message; on success returns server-final-message.
    pub fn finish(&self, client_final: &[u8]) -> Result<String, ScramError> {
        let text =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut channel = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(c) = attr.strip_prefix("c=") {
                channel = Some(c);
            } else if let Some(r) = attr.strip_prefix("r=") {
                nonce = Some(r);
            }
        }
        let channel = channel.ok_or(ScramError::Malformed("no channel binding attribute"))?;
        let channel = B64
            .decode(channel)
            .map_err(|_| ScramError::Malformed("channel binding is not base64"))?;
        if channel != self.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBinding);
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(ScramError::Nonce);
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        if proof.len() != 32 {
            return Err(ScramError::Proof);
        }
        let auth_message = format!("{},{without_proof}", self.auth_prefix);
        let signature = hmac(&self.verifier.stored_key, &[auth_message.as_bytes()]);
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        let stored: [u8; 32] = Sha256::digest(&client_key).into();
        if !constant_time_eq(&stored, &self.verifier.stored_key) {
            return Err(ScramError::Proof);
        }
        let server_signature = hmac(&self.verifier.server_key, &[auth_message.as_bytes()]);
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// The client side of an exchange (for tests): client-first, then
/// client-final for a server-first, and the expected server-final.
#[cfg(test)]
pub(crate) fn client_final(
    password: &str,
    client_first_bare: &str,
    server_first: &str,
) -> (String, String) {
    let mut nonce = "";
    let mut salt = Vec::new();
    let mut iterations = 0;
    for attr in server_first.split(',') {
        if let Some(r) = attr.strip_prefix("r=") {
            nonce = r;
        } else if let Some(s) = attr.strip_prefix("s=") {
            salt = B64.decode(s).unwrap();
        } else if let Some(i) = attr.strip_prefix("i=") {
            iterations = i.parse().unwrap();
        }
    }
    let v = Verifier::new(password, &salt, iterations);
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
    let client_key = hmac(&salted, &[b"Client Key"]);
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = hmac(&v.stored_key, &[auth.as_bytes()]);
    let proof: Vec<u8> = client_key
        .iter()
        .zip(signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let server = hmac(&v.server_key, &[auth.as_bytes()]);
    (
        format!("{without_proof},p={}", B64.encode(proof)),
        format!("v={}", B64.encode(server)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: user "user", password "pencil".
    #[test]
    fn rfc7677_test_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = Verifier::new("pencil", &salt, 4096);
        let (exchange, server_first) = server_first(
            verifier,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let server_final = exchange
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(
            server_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn wrong_password_and_tampering_are_refused() {
        let v = Verifier::generate("right");
        let bare = "n=,r=abcdef";
        let (ex, first) = server_first(v.clone(), format!("n,,{bare}").as_bytes(), "XYZ").unwrap();
        let (bad, _) = client_final("wrong", bare, &first);
        assert_eq!(ex.finish(bad.as_bytes()), Err(ScramError::Proof));
        let (good, expected) = client_final("right", bare, &first);
        assert_eq!(ex.finish(good.as_bytes()).unwrap(), expected);
        let other_nonce = good.replace("XYZ", "XYQ");
        assert_eq!(ex.finish(other_nonce.as_bytes()), Err(ScramError::Nonce));
        assert!(ex.finish(b"garbage").is_err());
        assert!(ex.finish(b"c=biws,r=x,p=!!!").is_err());
        assert_eq!(
            server_first(v.clone(), b"p=tls-server-end-point,,n=,r=a", "x").unwrap_err(),
            ScramError::ChannelBinding
        );
        assert!(server_first(v.clone(), b"n,,n=,r=", "x").is_err());
        assert!(server_first(v, &[0xff, 0xfe], "x").is_err());
    }

    #[test]
    fn verifiers_round_trip_as_text() {
        let v = Verifier::generate("pw");
        let text = v.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:"), "{text}");
        assert_eq!(Verifier::parse(&text), Some(v));
        assert_eq!(Verifier::parse("$argon2id$v=19$..."), None);
        assert_eq!(Verifier::parse("SCRAM-SHA-256$0:AA==$AA==:AA=="), None);
    }
}
