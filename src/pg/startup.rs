//! Connection start: SSLRequest and GSSENCRequest (answered `N`: no TLS),
//! CancelRequest, StartupMessage, then authentication with the server's
//! users, by the same rules as the native protocol (src/server/session.rs):
//!
//! - no users defined: connections from loopback (or any host with
//!   `--insecure-allow-remote`) are accepted without a password, as admin;
//! - users defined: SCRAM-SHA-256 against the user's stored verifier; a
//!   user created before verifiers existed (argon2 hash only) may log in
//!   with a cleartext password from loopback only; an unknown user goes
//!   through SCRAM with a random verifier, so it fails like a wrong
//!   password and reveals nothing.
//!
//! Invariants: every read is bounded in size and time; a failure sends one
//! FATAL ErrorResponse and the connection closes.

use super::codec::{
    body_len, decode_frontend, decode_startup, password_text, Backend, Frontend, SaslInitial,
    Startup, MAX_STARTUP_BYTES,
};
use super::errors::{PgErrorResponse, BAD_PASSWORD, NOT_AUTHORIZED, NOT_SUPPORTED, PROTOCOL};
use super::scram::{self, Verifier};
use crate::query::{Principal, Role};
use crate::server::{any_users, is_loopback, lookup_user, Shared};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a client has for each step of the start.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest authentication message accepted.
const MAX_AUTH_BYTES: usize = 8192;

/// An authenticated connection.
pub struct Started {
    pub principal: Principal,
    pub params: Vec<(String, String)>,
}

/// The outcome of the start.
pub enum Start {
    Ready(Started),
    /// A CancelRequest (handled) or a failure (reported): close.
    Close,
}

async fn send(socket: &mut TcpStream, messages: &[Backend]) -> std::io::Result<()> {
    let mut out = Vec::new();
    for m in messages {
        m.encode(&mut out);
    }
    socket.write_all(&out).await?;
    socket.flush().await
}

/// Sends a FATAL error and closes.
pub async fn refuse(socket: &mut TcpStream, e: PgErrorResponse) {
    let _ = send(socket, &[e.to_message()]).await;
    let _ = socket.shutdown().await;
}

async fn read_startup(socket: &mut TcpStream) -> Result<Startup, PgErrorResponse> {
    let step = async {
        let length = socket.read_i32().await?;
        let n = body_len(length, MAX_STARTUP_BYTES).map_err(std::io::Error::other)?;
        let mut body = vec![0u8; n];
        socket.read_exact(&mut body).await?;
        decode_startup(&body).map_err(std::io::Error::other)
    };
    match tokio::time::timeout(STEP_TIMEOUT, step).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(PgErrorResponse::fatal(
            PROTOCOL,
            format!("invalid startup packet: {e}"),
        )),
        Err(_) => Err(PgErrorResponse::fatal(
            PROTOCOL,
            "no startup packet in time",
        )),
    }
}

/// Reads one typed message during authentication.
async fn read_message(socket: &mut TcpStream) -> Result<Frontend, PgErrorResponse> {
    let step = async {
        let tag = socket.read_u8().await?;
        let length = socket.read_i32().await?;
        let n = body_len(length, MAX_AUTH_BYTES).map_err(std::io::Error::other)?;
        let mut body = vec![0u8; n];
        socket.read_exact(&mut body).await?;
        decode_frontend(tag, &body).map_err(std::io::Error::other)
    };
    match tokio::time::timeout(STEP_TIMEOUT, step).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(PgErrorResponse::fatal(
            PROTOCOL,
            format!("invalid authentication message: {e}"),
        )),
        Err(_) => Err(PgErrorResponse::fatal(PROTOCOL, "authentication timed out")),
    }
}

/// Reads the startup packets up to the StartupMessage (answering SSL and
/// GSS requests with `N`); `None` after a CancelRequest.
async fn startup_params(
    shared: &Shared,
    socket: &mut TcpStream,
) -> Result<Option<Vec<(String, String)>>, PgErrorResponse> {
    for _ in 0..3 {
        match read_startup(socket).await? {
            Startup::SslRequest | Startup::GssEncRequest => {
                socket
                    .write_all(b"N")
                    .await
                    .map_err(|e| PgErrorResponse::fatal(PROTOCOL, e.to_string()))?;
            }
            Startup::Cancel {
                process_id,
                secret_key,
            } => {
                shared.pg_cancels.cancel(process_id, secret_key);
                return Ok(None);
            }
            Startup::Unsupported { version } => {
                return Err(PgErrorResponse::fatal(
                    NOT_SUPPORTED,
                    format!(
                        "unsupported frontend protocol {}.{}: this server speaks 3.0",
                        version >> 16,
                        version & 0xffff
                    ),
                ))
            }
            Startup::Start { params } => return Ok(Some(params)),
        }
    }
    Err(PgErrorResponse::fatal(
        PROTOCOL,
        "too many startup requests",
    ))
}

/// Runs the start of a connection.
pub(crate) async fn start(shared: &Arc<Shared>, socket: &mut TcpStream, peer: SocketAddr) -> Start {
    match start_inner(shared, socket, peer).await {
        Ok(Some(s)) => Start::Ready(s),
        Ok(None) => Start::Close,
        Err(e) => {
            refuse(socket, e).await;
            Start::Close
        }
    }
}

/// How a user proves who they are.
enum Method {
    Trust,
    Scram(Verifier, Option<String>),
    Cleartext(String, String),
}

async fn start_inner(
    shared: &Arc<Shared>,
    socket: &mut TcpStream,
    peer: SocketAddr,
) -> Result<Option<Started>, PgErrorResponse> {
    let Some(params) = startup_params(shared, socket).await? else {
        return Ok(None);
    };
    let user = params
        .iter()
        .find(|(k, _)| k == "user")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| {
            PgErrorResponse::fatal(
                NOT_AUTHORIZED,
                "no PostgreSQL user name specified in startup packet",
            )
        })?;
    let method = {
        let shared = shared.clone();
        let user = user.clone();
        tokio::task::spawn_blocking(move || {
            if !any_users(&shared.config.users, &shared.db) {
                return if is_loopback(&peer) || shared.config.allow_remote_without_auth {
                    Ok(Method::Trust)
                } else {
                    Err(PgErrorResponse::fatal(NOT_AUTHORIZED, "no users are defined, so only connections from this machine are accepted (define users, or start the server with --insecure-allow-remote)"))
                };
            }
            match lookup_user(&shared.config.users, &shared.db, &user) {
                Some(record) => match record.scram.as_deref().and_then(Verifier::parse) {
                    Some(v) => Ok(Method::Scram(v, Some(record.role))),
                    None if is_loopback(&peer) => Ok(Method::Cleartext(record.role, record.phc)),
                    None => Err(PgErrorResponse::fatal(NOT_AUTHORIZED, format!("user \"{user}\" has no SCRAM-SHA-256 verifier (it was created before PostgreSQL support); it may log in with a cleartext password from this machine only. Re-create the user (DROP USER, CREATE USER) or give it a verifier in the --auth file"))),
                },
                // Unknown: a random verifier no password matches.
                None => Ok(Method::Scram(Verifier::generate(&scram::new_nonce()), None)),
            }
        })
        .await
        .map_err(|_| PgErrorResponse::fatal(super::errors::INTERNAL, "authentication failed with an internal error"))??
    };
    let failed = || {
        PgErrorResponse::fatal(
            BAD_PASSWORD,
            format!("password authentication failed for user \"{user}\""),
        )
    };
    let io = |e: std::io::Error| PgErrorResponse::fatal(PROTOCOL, e.to_string());
    let role = match method {
        Method::Trust => "admin".to_string(),
        Method::Cleartext(role, phc) => {
            send(socket, &[Backend::AuthenticationCleartextPassword])
                .await
                .map_err(io)?;
            let password = match read_message(socket).await? {
                Frontend::Password(body) => password_text(&body).map_err(|_| failed())?,
                _ => {
                    return Err(PgErrorResponse::fatal(
                        PROTOCOL,
                        "expected a password message",
                    ))
                }
            };
            let ok = tokio::task::spawn_blocking(move || {
                crate::query::users::verify_password(&password, &phc)
            })
            .await
            .unwrap_or(false);
            if !ok {
                return Err(failed());
            }
            role
        }
        Method::Scram(verifier, role) => {
            send(
                socket,
                &[Backend::AuthenticationSasl(vec![scram::MECHANISM.into()])],
            )
            .await
            .map_err(io)?;
            let initial = match read_message(socket).await? {
                Frontend::Password(body) => SaslInitial::decode(&body).map_err(|e| {
                    PgErrorResponse::fatal(PROTOCOL, format!("invalid SASLInitialResponse: {e}"))
                })?,
                _ => {
                    return Err(PgErrorResponse::fatal(
                        PROTOCOL,
                        "expected a SASLInitialResponse",
                    ))
                }
            };
            if initial.mechanism != scram::MECHANISM {
                return Err(PgErrorResponse::fatal(
                    PROTOCOL,
                    format!(
                        "SASL mechanism {:?} is not supported (only SCRAM-SHA-256)",
                        initial.mechanism
                    ),
                ));
            }
            let (exchange, server_first) =
                scram::server_first(verifier, &initial.data, &scram::new_nonce())
                    .map_err(|e| PgErrorResponse::fatal(PROTOCOL, e.to_string()))?;
            send(
                socket,
                &[Backend::AuthenticationSaslContinue(
                    server_first.into_bytes(),
                )],
            )
            .await
            .map_err(io)?;
            let client_final = match read_message(socket).await? {
                Frontend::Password(body) => body,
                _ => return Err(PgErrorResponse::fatal(PROTOCOL, "expected a SASLResponse")),
            };
            let server_final = match (exchange.finish(&client_final), role) {
                (Ok(f), Some(role)) => (f, role),
                (Err(scram::ScramError::Malformed(why)), _) => {
                    return Err(PgErrorResponse::fatal(
                        PROTOCOL,
                        format!("malformed SCRAM message: {why}"),
                    ))
                }
                _ => return Err(failed()),
            };
            send(
                socket,
                &[Backend::AuthenticationSaslFinal(
                    server_final.0.into_bytes(),
                )],
            )
            .await
            .map_err(io)?;
            server_final.1
        }
    };
    send(socket, &[Backend::AuthenticationOk])
        .await
        .map_err(io)?;
    // A role that is not one of the three (a damaged user row) gets the least.
    Ok(Some(Started {
        principal: Principal {
            user,
            role: Role::parse(&role).unwrap_or(Role::Analyst),
        },
        params,
    }))
}
