//! Tests of the EPMD messages: bytes as `epmd` sends them, round trips, incremental decoding
//! of answers, and malformed or oversized input.

use super::*;

fn sample() -> NodeInfo {
    NodeInfo {
        port: 5000,
        node_type: NODE_TYPE_HIDDEN,
        protocol: 0,
        highest_version: 6,
        lowest_version: 5,
        name: "abc".into(),
        extra: vec![1, 2],
    }
}

#[test]
fn alive2_req_matches_epmd_bytes_and_round_trips() {
    let req = Request::Alive2(NodeInfo {
        extra: vec![],
        ..sample()
    });
    let frame = req.encode().unwrap();
    // Same bytes as those sent to the system epmd when probing it.
    let expected = [
        0, 16, 120, 0x13, 0x88, 72, 0, 0, 6, 0, 5, 0, 3, b'a', b'b', b'c', 0, 0,
    ];
    assert_eq!(frame, expected);
    assert_eq!(Request::decode(&frame[2..]).unwrap(), req);
}

#[test]
fn every_request_round_trips() {
    let requests = [
        Request::Alive2(sample()),
        Request::PortPlease2 {
            name: "nøde".into(),
        },
        Request::Names,
        Request::Dump,
        Request::Kill,
        Request::Stop { name: "x".into() },
    ];
    for req in requests {
        let frame = req.encode().unwrap();
        let len = u16::from_be_bytes([frame[0], frame[1]]) as usize;
        assert_eq!(len, frame.len() - 2);
        assert_eq!(Request::decode(&frame[2..]).unwrap(), req);
    }
}

#[test]
fn malformed_requests_are_errors() {
    assert_eq!(Request::decode(&[]), Err(ProtoError::Empty));
    assert_eq!(Request::decode(&[1]), Err(ProtoError::UnknownTag(1)));
    assert!(matches!(
        Request::decode(&[NAMES_REQ, 0]),
        Err(ProtoError::TrailingBytes { .. })
    ));
    assert_eq!(
        Request::decode(&[PORT_PLEASE2_REQ, 0xff]),
        Err(ProtoError::BadName)
    );
    let full = Request::Alive2(sample()).encode().unwrap();
    // Every strict prefix of an ALIVE2 body is truncated somewhere.
    for cut in 1..full.len() - 2 {
        let body = &full[2..2 + cut];
        assert!(
            matches!(Request::decode(body), Err(ProtoError::Truncated { .. })),
            "cut at {cut}"
        );
    }
    let mut long = full[2..].to_vec();
    long.push(9);
    assert!(matches!(
        Request::decode(&long),
        Err(ProtoError::TrailingBytes { .. })
    ));
    // A name length pointing past the end.
    let body = [ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0xff, 0xff, b'a'];
    assert!(matches!(
        Request::decode(&body),
        Err(ProtoError::Truncated { .. })
    ));
}

#[test]
fn oversized_fields_do_not_encode() {
    let info = NodeInfo {
        extra: vec![0; 70_000],
        ..sample()
    };
    assert!(matches!(
        Request::Alive2(info).encode(),
        Err(ProtoError::TooLong { .. })
    ));
}

#[test]
fn alive2_resp_decodes_incrementally() {
    let resp = Alive2Resp {
        result: 0,
        creation: 0x6b049ff7,
        extended: true,
    };
    let bytes = resp.encode();
    assert_eq!(bytes, [118, 0, 0x6b, 0x04, 0x9f, 0xf7]);
    for cut in 0..bytes.len() {
        assert_eq!(Alive2Resp::decode(&bytes[..cut]), Ok(None), "cut at {cut}");
    }
    assert_eq!(Alive2Resp::decode(&bytes), Ok(Some((resp, 6))));

    let legacy = Alive2Resp {
        result: 0,
        creation: 3,
        extended: false,
    };
    assert_eq!(legacy.encode(), [121, 0, 0, 3]);
    assert_eq!(Alive2Resp::decode(&legacy.encode()), Ok(Some((legacy, 4))));

    // Refusal as the system epmd sends it: complete after two bytes, junk ignored.
    let refused = Alive2Resp::decode(&[118, 1, 0, 0, 0, b'c'])
        .unwrap()
        .unwrap();
    assert_eq!((refused.0.result, refused.1), (1, 2));
    assert_eq!(Alive2Resp::decode(&[118, 1]).unwrap().unwrap().1, 2);

    assert_eq!(Alive2Resp::decode(&[7]), Err(ProtoError::UnknownTag(7)));
    assert_eq!(Alive2Resp::decode(&[7, 0]), Err(ProtoError::UnknownTag(7)));
}

#[test]
fn port2_resp_round_trips_and_decodes_incrementally() {
    // Bytes the system epmd sent for a node "abc" on port 5000.
    let wire = [
        119, 0, 0x13, 0x88, 72, 0, 0, 6, 0, 5, 0, 3, b'a', b'b', b'c', 0, 0,
    ];
    let found = Port2Resp::Found(NodeInfo {
        extra: vec![],
        ..sample()
    });
    assert_eq!(found.encode().unwrap(), wire);
    for cut in 0..wire.len() {
        assert_eq!(Port2Resp::decode(&wire[..cut]), Ok(None), "cut at {cut}");
    }
    assert_eq!(Port2Resp::decode(&wire), Ok(Some((found, wire.len()))));

    let missing = Port2Resp::NotFound(1);
    assert_eq!(missing.encode().unwrap(), [119, 1]);
    assert_eq!(Port2Resp::decode(&[119, 1]), Ok(Some((missing, 2))));
    assert_eq!(Port2Resp::NotFound(0).encode().unwrap(), [119, 1]);

    assert_eq!(
        Port2Resp::decode(&[118, 0]),
        Err(ProtoError::UnknownTag(118))
    );
    let bad_name = [119, 0, 0, 1, 77, 0, 0, 6, 0, 5, 0, 1, 0xff, 0, 0];
    assert_eq!(Port2Resp::decode(&bad_name), Err(ProtoError::BadName));
}

#[test]
fn names_resp_round_trips_and_rejects_garbage() {
    let resp = NamesResp {
        epmd_port: 4369,
        names: vec![("abc".into(), 5000), ("with space".into(), 1)],
    };
    let bytes = resp.encode();
    assert_eq!(&bytes[..4], &[0, 0, 0x11, 0x11]);
    assert_eq!(NamesResp::decode(&bytes).unwrap(), resp);
    // What the system epmd sent.
    let wire = b"\x00\x008!name abc at port 5000\n";
    assert_eq!(
        NamesResp::decode(wire).unwrap().names,
        vec![("abc".to_string(), 5000)]
    );
    assert!(NamesResp::decode(&[0, 0, 0x11, 0x11])
        .unwrap()
        .names
        .is_empty());
    assert!(matches!(
        NamesResp::decode(&[0, 0]),
        Err(ProtoError::Truncated { .. })
    ));
    for garbage in [
        &b"\0\0\0\0hello\n"[..],
        b"\0\0\0\0name x at port 99999\n",
        b"\0\0\0\0name x at port\n",
    ] {
        assert!(
            matches!(NamesResp::decode(garbage), Err(ProtoError::BadNamesLine(_))),
            "{garbage:?}"
        );
    }
}
