//! Fuzzes the PostgreSQL wire protocol decoder (src/pg/codec.rs), the code
//! every byte a PostgreSQL client sends goes through: the input is read as
//! a startup packet (StartupMessage, SSLRequest, CancelRequest...) and as
//! a stream of typed frontend messages, and also as server messages
//! (`cohortdb::pg::codec::fuzz_decode`); password messages are also read as
//! PasswordMessage and SASLInitialResponse, and the input as SCRAM client
//! messages against a fixed verifier. As UTF-8 text, the input also goes
//! through what reads query text (`cohortdb::pg::fuzz_text`: statement
//! splitting, `$n` substitution, SET/SHOW, COPY, catalog select lists).
//!
//! Must hold, besides never panicking or over-allocating: a message that
//! decodes re-encodes to exactly the bytes it came from.
#![no_main]

use cohortdb::pg::codec::fuzz_decode;
use cohortdb::pg::fuzz_text;
use cohortdb::pg::scram::{server_first, Verifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        fuzz_text(text);
    }
    let verifier = Verifier::new("pencil", b"salt", 1);
    if let Ok((exchange, _)) = server_first(verifier, data, "nonce") {
        let _ = exchange.finish(data);
    }
});
