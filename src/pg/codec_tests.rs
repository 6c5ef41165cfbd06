//! Unit tests of [`super::codec`]: every message round-trips through its
//! encoding, and malformed, truncated and oversized input is an error.

use super::codec::*;
use super::PgError;

fn frontend_round_trip(m: Frontend) {
    let mut bytes = Vec::new();
    m.encode(&mut bytes);
    let (back, used) = split_frontend(&bytes, 1 << 20).unwrap().unwrap();
    assert_eq!(back, m);
    assert_eq!(used, bytes.len());
    // Every strict prefix needs more bytes or is an error, never a message.
    for cut in 0..bytes.len() {
        assert!(
            !matches!(split_frontend(&bytes[..cut], 1 << 20), Ok(Some(_))),
            "{m:?} cut at {cut}"
        );
    }
    // A body one byte short or one byte long does not decode.
    let body = &bytes[5..];
    if !body.is_empty() && !matches!(m, Frontend::Password(_) | Frontend::CopyData(_)) {
        assert!(
            decode_frontend(bytes[0], &body[..body.len() - 1]).is_err(),
            "{m:?}"
        );
    }
    let mut longer = body.to_vec();
    longer.push(1);
    if !matches!(m, Frontend::Password(_) | Frontend::CopyData(_)) {
        assert!(decode_frontend(bytes[0], &longer).is_err(), "{m:?}");
    }
}

fn backend_round_trip(m: Backend) {
    let mut bytes = Vec::new();
    m.encode(&mut bytes);
    let len = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    assert_eq!(len as usize, bytes.len() - 1);
    assert_eq!(Backend::decode(bytes[0], &bytes[5..]).unwrap(), m);
    let body = &bytes[5..];
    let open_ended = matches!(
        m,
        Backend::CopyData(_)
            | Backend::AuthenticationSaslContinue(_)
            | Backend::AuthenticationSaslFinal(_)
    );
    if !body.is_empty() && !open_ended {
        assert!(
            Backend::decode(bytes[0], &body[..body.len() - 1]).is_err(),
            "{m:?}"
        );
    }
}

#[test]
fn every_frontend_message_round_trips() {
    for m in [
        Frontend::Query("SELECT COUNT(*) FROM profiles;".into()),
        Frontend::Query(String::new()),
        Frontend::Parse {
            name: "s1".into(),
            query: "SELECT $1".into(),
            param_types: vec![25, 0, 20],
        },
        Frontend::Bind {
            portal: "".into(),
            statement: "s1".into(),
            param_formats: vec![0, 1],
            params: vec![Some(b"FR".to_vec()), None, Some(vec![])],
            result_formats: vec![1],
        },
        Frontend::Describe {
            target: Target::Statement,
            name: "s1".into(),
        },
        Frontend::Describe {
            target: Target::Portal,
            name: "".into(),
        },
        Frontend::Execute {
            portal: "p".into(),
            max_rows: 100,
        },
        Frontend::Close {
            target: Target::Portal,
            name: "p".into(),
        },
        Frontend::Sync,
        Frontend::Flush,
        Frontend::Terminate,
        Frontend::Password(b"secret\0".to_vec()),
        Frontend::CopyData(b"u1,FR\n".to_vec()),
        Frontend::CopyDone,
        Frontend::CopyFail("stop".into()),
    ] {
        frontend_round_trip(m);
    }
}

#[test]
fn every_backend_message_round_trips() {
    for m in [
        Backend::AuthenticationOk,
        Backend::AuthenticationCleartextPassword,
        Backend::AuthenticationSasl(vec!["SCRAM-SHA-256".into()]),
        Backend::AuthenticationSaslContinue(b"r=abc,s=xyz,i=4096".to_vec()),
        Backend::AuthenticationSaslFinal(b"v=xyz".to_vec()),
        Backend::ParameterStatus {
            name: "server_version".into(),
            value: "15.0".into(),
        },
        Backend::BackendKeyData {
            process_id: 7,
            secret_key: -5,
        },
        Backend::ReadyForQuery(b'I'),
        Backend::RowDescription(vec![super::types::field("count", 20, 0)]),
        Backend::DataRow(vec![Some(b"42".to_vec()), None, Some(vec![])]),
        Backend::CommandComplete("SELECT 1".into()),
        Backend::EmptyQueryResponse,
        Backend::ErrorResponse(vec![
            (b'S', "ERROR".into()),
            (b'C', "42601".into()),
            (b'M', "syntax error".into()),
            (b'P', "8".into()),
        ]),
        Backend::NoticeResponse(vec![(b'S', "WARNING".into())]),
        Backend::ParseComplete,
        Backend::BindComplete,
        Backend::CloseComplete,
        Backend::NoData,
        Backend::ParameterDescription(vec![25, 20]),
        Backend::PortalSuspended,
        Backend::CopyInResponse {
            format: 0,
            columns: vec![0, 0],
        },
        Backend::CopyOutResponse {
            format: 0,
            columns: vec![0],
        },
        Backend::CopyData(b"u1\n".to_vec()),
        Backend::CopyDone,
    ] {
        backend_round_trip(m);
    }
}

#[test]
fn startup_packets_round_trip() {
    for s in [
        Startup::SslRequest,
        Startup::GssEncRequest,
        Startup::Cancel {
            process_id: 12,
            secret_key: 34,
        },
        Startup::Start {
            params: vec![
                ("user".into(), "ann".into()),
                ("database".into(), "cohort".into()),
            ],
        },
        Startup::Unsupported { version: 131_072 },
    ] {
        let bytes = s.encode();
        let n = body_len(
            i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            MAX_STARTUP_BYTES,
        )
        .unwrap();
        assert_eq!(n, bytes.len() - 4);
        assert_eq!(decode_startup(&bytes[4..]).unwrap(), s);
        if !matches!(s, Startup::Unsupported { .. }) {
            assert!(decode_startup(&bytes[4..bytes.len() - 1]).is_err(), "{s:?}");
        }
    }
    assert!(decode_startup(&[0, 3]).is_err());
    // Found by fuzzing: an unsupported version with more bytes after it.
    let mut packet = 0x04d2_0007i32.to_be_bytes().to_vec();
    packet.extend_from_slice(&[0, 22, 46, 0, 0, 0, 0, 42]);
    assert_eq!(
        decode_startup(&packet).unwrap(),
        Startup::Unsupported {
            version: 0x04d2_0007
        }
    );
    fuzz_decode(&[&[0, 0, 0, 16][..], &packet].concat());
}

#[test]
fn bad_lengths_are_refused_before_reading() {
    assert!(matches!(body_len(3, 100), Err(PgError::BadLength(3))));
    assert!(matches!(body_len(-1, 100), Err(PgError::BadLength(-1))));
    assert!(matches!(
        body_len(i32::MAX, 1 << 20),
        Err(PgError::TooLarge { .. })
    ));
    assert_eq!(body_len(4, 0).unwrap(), 0);
    // An oversized message is refused from its header alone.
    let header = [b'Q', 0x7f, 0xff, 0xff, 0xff];
    assert!(matches!(
        split_frontend(&header, 1 << 20),
        Err(PgError::TooLarge { .. })
    ));
}

#[test]
fn malformed_bodies_are_errors() {
    assert!(matches!(
        decode_frontend(b'z', &[]),
        Err(PgError::UnknownMessage(b'z'))
    ));
    // Query without its NUL.
    assert!(decode_frontend(b'Q', b"SELECT").is_err());
    // Invalid UTF-8.
    assert!(matches!(
        decode_frontend(b'Q', b"\xff\0"),
        Err(PgError::InvalidUtf8)
    ));
    // Describe with a bad target.
    assert!(decode_frontend(b'D', b"Xname\0").is_err());
    // Bind claiming 30000 parameters in a few bytes: refused, nothing allocated.
    let mut bind = b"\0\0".to_vec();
    bind.extend_from_slice(&0i16.to_be_bytes());
    bind.extend_from_slice(&30000i16.to_be_bytes());
    assert!(matches!(
        decode_frontend(b'B', &bind),
        Err(PgError::Truncated)
    ));
    // A negative count or parameter length.
    let mut neg = b"\0\0".to_vec();
    neg.extend_from_slice(&(-2i16).to_be_bytes());
    assert!(decode_frontend(b'B', &neg).is_err());
    let mut neg_len = b"\0\0".to_vec();
    neg_len.extend_from_slice(&0i16.to_be_bytes());
    neg_len.extend_from_slice(&1i16.to_be_bytes());
    neg_len.extend_from_slice(&(-7i32).to_be_bytes());
    neg_len.extend_from_slice(&0i16.to_be_bytes());
    assert!(decode_frontend(b'B', &neg_len).is_err());
    // Sync with a body.
    assert!(decode_frontend(b'S', &[0]).is_err());
}

#[test]
fn password_messages_decode_by_context() {
    assert_eq!(password_text(b"pw\0").unwrap(), "pw");
    assert!(password_text(b"pw").is_err());
    let initial = SaslInitial {
        mechanism: "SCRAM-SHA-256".into(),
        data: b"n,,n=,r=abc".to_vec(),
    };
    assert_eq!(SaslInitial::decode(&initial.encode()).unwrap(), initial);
    assert!(SaslInitial::decode(b"SCRAM-SHA-256\0\0\0\0\x09abc").is_err());
    // -1: no initial response; any other negative length is malformed.
    let none = SaslInitial::decode(b"SCRAM-SHA-256\0\xff\xff\xff\xff").unwrap();
    assert!(none.data.is_empty());
    assert!(matches!(
        SaslInitial::decode(b"SCRAM-SHA-256\0\xff\xff\xff\xfe"),
        Err(PgError::Malformed(_))
    ));
}

#[test]
fn a_negative_length_other_than_minus_one_is_not_null() {
    // A DataRow of one column whose length is i32::MIN + 1: found by the
    // pg_decode fuzz target, which it decoded as NULL (and so re-encoded as
    // -1, not the bytes it read).
    let body = [0u8, 1, 0x80, 0, 0, 1];
    match Backend::decode(b'D', &body) {
        Err(PgError::Malformed(m)) => assert!(m.contains("not -1"), "{m}"),
        other => panic!("{other:?}"),
    }
    // -1 is NULL, and re-encodes as it was read.
    let body = [0u8, 1, 0xff, 0xff, 0xff, 0xff];
    let row = Backend::decode(b'D', &body).unwrap();
    assert_eq!(row, Backend::DataRow(vec![None]));
    let mut again = Vec::new();
    row.encode(&mut again);
    assert_eq!(&again[5..], &body);
    // The whole input the fuzzer found now passes its checks.
    let found = [
        0x52u8, 0, 0, 0, 8, 0, 0, 0, 0, 0x44, 0, 0, 0, 0x0a, 0, 1, 0x80, 0, 0, 1,
    ];
    fuzz_decode(&found);
}

#[test]
fn the_fuzz_entry_point_accepts_anything() {
    let mut stream = Startup::Start {
        params: vec![("user".into(), "u".into())],
    }
    .encode();
    Frontend::Query("SELECT 1".into()).encode(&mut stream);
    fuzz_decode(&stream);
    fuzz_decode(&[]);
    fuzz_decode(&[0xff; 64]);
    fuzz_decode(b"Q\0\0\0\x05\0D\0\0\0\x04");
}
