//! Round-trip property tests of the [`Term`] codec and edge cases of the reader.

use super::reader::{inflate, Reader};
use super::term::{Atom, BigInt, Fun, Pid, Port, Reference, Term};
use super::{decode, decode_with, encode, writer, DecodeOptions};
use bytes::Bytes;
use proptest::prelude::*;

fn atom() -> impl Strategy<Value = Atom> {
    "[a-zA-Z0-9_@.ñ日]{0,20}".prop_map(|s| Atom::new(&s))
}

/// Terms in the canonical form the decoder produces (so decode(encode(t)) == t).
fn term() -> impl Strategy<Value = Term> {
    let leaf = prop_oneof![
        atom().prop_map(Term::Atom),
        any::<i64>().prop_map(Term::Int),
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 9..40)).prop_map(|(n, mut m)| {
            // Nine or more significant bytes: never fits in an i64.
            let last = m.len() - 1;
            m[last] |= 1;
            Term::BigInt(BigInt {
                negative: n,
                magnitude: m,
            })
        }),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Term::Float),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Term::Binary(Bytes::from(b))),
        (proptest::collection::vec(any::<u8>(), 1..8), 1u8..=8).prop_map(|(d, bits)| {
            Term::BitBinary {
                data: Bytes::from(d),
                bits,
            }
        }),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(Term::String),
        (atom(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
            |(node, id, serial, creation)| {
                Term::Pid(Pid {
                    node,
                    id,
                    serial,
                    creation,
                })
            }
        ),
        (atom(), any::<u64>(), any::<u32>()).prop_map(|(node, id, creation)| Term::Port(Port {
            node,
            id,
            creation
        })),
        (
            atom(),
            any::<u32>(),
            proptest::collection::vec(any::<u32>(), 1..=5)
        )
            .prop_map(|(node, creation, ids)| Term::Reference(Reference {
                node,
                creation,
                ids
            })),
        (atom(), atom(), any::<u8>()).prop_map(|(module, function, arity)| Term::Export {
            module,
            function,
            arity
        }),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Term::Tuple),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Term::List),
            proptest::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Term::Map),
            (
                proptest::collection::vec(inner.clone(), 1..4),
                inner.prop_filter("not a list", |t| !matches!(
                    t,
                    Term::List(_) | Term::String(_) | Term::ImproperList(..)
                ))
            )
                .prop_map(|(items, tail)| Term::ImproperList(items, Box::new(tail))),
        ]
    })
}

/// Exact equality (floats by bits, so -0.0 and 0.0 differ).
fn same(a: &Term, b: &Term) -> bool {
    match (a, b) {
        (Term::Float(x), Term::Float(y)) => x.to_bits() == y.to_bits(),
        (Term::Tuple(x), Term::Tuple(y)) | (Term::List(x), Term::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Term::ImproperList(x, t), Term::ImproperList(y, u)) => {
            same(t, u) && x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Term::Map(x), Term::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
        }
        _ => a == b,
    }
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(t in term()) {
        let bytes = encode(&t);
        let back = decode(&bytes).expect("decodes");
        prop_assert!(same(&t, &back), "{t:?} came back as {back:?}");
        prop_assert_eq!(encode(&back), bytes);
    }

    #[test]
    fn compressed_round_trip(t in term(), level in 0u32..=9) {
        let bytes = writer::compress(encode(&t), level);
        let back = decode(&bytes).expect("decodes");
        prop_assert!(same(&t, &back));
    }

    #[test]
    fn every_truncation_fails_cleanly(t in term()) {
        let bytes = encode(&t);
        for cut in 0..bytes.len() {
            prop_assert!(decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut input = vec![131];
        input.extend_from_slice(&data);
        let _ = decode(&input);
    }
}

#[test]
fn huge_declared_counts_fail_before_allocating() {
    for input in [
        &[131, 108, 255, 255, 255, 255, 0, 0, 0, 0][..],
        &[131, 105, 255, 255, 255, 255],
        &[131, 116, 255, 255, 255, 255, 97],
        &[131, 109, 255, 255, 255, 255],
    ] {
        let err = decode(input).unwrap_err();
        assert!(err.offset <= input.len(), "{err}");
    }
    let r = Reader::new(&[1, 2, 3]);
    assert!(r.check_count(2, 1, "x").is_ok());
    assert!(r.check_count(4, 1, "x").is_err());
    assert!(r.check_count(u64::MAX, u64::MAX, "x").is_err());
}

#[test]
fn reader_reports_offsets() {
    let err = decode(&[131, 104, 2, 97, 1, 200]).unwrap_err();
    assert_eq!(err.offset, 5);
    assert!(err.message.contains("unknown tag 200"));
    let err = decode(&[131, 97, 1, 0]).unwrap_err();
    assert_eq!(err.offset, 3);
    assert!(err.message.contains("trailing"));
    let err = decode(&[130, 97, 1]).unwrap_err();
    assert_eq!(err.offset, 0);
    assert!(decode(&[]).is_err());
}

#[test]
fn atoms_are_checked() {
    // Invalid UTF-8.
    assert!(decode(&[131, 119, 2, 0xff, 0xfe]).is_err());
    // 256 Latin-1 characters.
    let mut long = vec![131, 100, 1, 0];
    long.extend(std::iter::repeat_n(b'a', 256));
    assert!(decode(&long).unwrap_err().message.contains("255"));
    // 255 three-byte characters are fine (765 bytes).
    let text = "あ".repeat(255);
    let mut ok = vec![131, 118];
    ok.extend_from_slice(&(text.len() as u16).to_be_bytes());
    ok.extend_from_slice(text.as_bytes());
    assert_eq!(decode(&ok).unwrap(), Term::atom(&text));
    // Latin-1 atoms decode to the same characters.
    assert_eq!(decode(&[131, 100, 0, 1, 0xe9]).unwrap(), Term::atom("é"));
    // An atom cache reference outside distribution is an error, inside it resolves.
    assert!(decode(&[131, 82, 0]).is_err());
    let cache = [Atom::new("cached")];
    let options = DecodeOptions {
        atom_cache: &cache,
        ..DecodeOptions::default()
    };
    assert_eq!(
        decode_with(&[131, 82, 0], &options).unwrap(),
        Term::atom("cached")
    );
}

#[test]
fn special_tags() {
    assert!(decode(&[131, 121, 0, 0])
        .unwrap_err()
        .message
        .contains("LOCAL_EXT"));
    // NEW_FLOAT_EXT must be finite, as OTP requires (found by the etf/dist_frames fuzzers: a
    // NaN was accepted and made a term unequal to itself).
    for bits in [0x7ff8_0000_0000_0000u64, 0x7ff0 << 48, 0xfff0 << 48] {
        let mut input = vec![131, 70];
        input.extend_from_slice(&bits.to_be_bytes());
        let error = decode(&input).unwrap_err();
        assert!(error.message.contains("not finite"), "{error}");
    }
    assert_eq!(
        decode(&[131, 70, 0xc0, 4, 0, 0, 0, 0, 0, 0]).unwrap(),
        Term::Float(-2.5)
    );
    let mut old = vec![131, 99];
    let mut text = format!("{:.20e}", -2.5f64).into_bytes();
    text.resize(31, 0);
    old.extend_from_slice(&text);
    assert_eq!(decode(&old).unwrap(), Term::Float(-2.5));
    // An empty STRING_EXT is `[]` (found by the etf fuzzer: it was an empty Term::String, and
    // `[1 | ""]` an improper list).
    assert_eq!(decode(&[131, 107, 0, 0]).unwrap(), Term::nil());
    let list_with_string_tail = [131, 108, 0, 0, 0, 1, 97, 1, 107, 0, 0];
    assert_eq!(
        decode(&list_with_string_tail).unwrap(),
        Term::List(vec![Term::Int(1)])
    );
    // Bit binaries need data and 1..8 bits.
    assert!(decode(&[131, 77, 0, 0, 0, 0, 3]).is_err());
    assert!(decode(&[131, 77, 0, 0, 0, 1, 0, 0]).is_err());
    // References have 1 to 5 words.
    assert!(decode(&[131, 90, 0, 6, 119, 1, b'a', 0, 0, 0, 0]).is_err());
}

#[test]
fn inflate_bounds() {
    let plain = encode(&Term::Binary(Bytes::from(vec![0u8; 10_000])));
    let packed = writer::compress(plain.clone(), 6);
    assert_eq!(decode(&packed).unwrap(), decode(&plain).unwrap());
    let small = DecodeOptions {
        max_inflated: 100,
        ..DecodeOptions::default()
    };
    assert!(decode_with(&packed, &small)
        .unwrap_err()
        .message
        .contains("limit"));
    // A declared size that does not match what inflates.
    let mut lying = packed.clone();
    lying[2..6].copy_from_slice(&5u32.to_be_bytes());
    assert!(decode(&lying).is_err());
    let mut r = Reader::new(&packed[2..4]);
    assert!(inflate(&mut r, 1 << 20).is_err());
}

#[test]
fn deep_nesting_does_not_overflow() {
    let depth = 1_000_000;
    let mut input = vec![131];
    input.extend(std::iter::repeat_n([104u8, 1], depth).flatten());
    input.push(106);
    let term = decode(&input).expect("decodes");
    assert_eq!(encode(&term), input);
    // Dropping a million-deep Term recurses too; let it do so on a big stack.
    stacker::grow(512 << 20, move || drop(term));
    input.pop();
    assert!(decode(&input).is_err());
}

#[test]
fn deep_terms_the_decoder_drops_do_not_overflow() {
    // Found writing the fuzz harnesses: a deep term that decoding drops (a fun's free
    // variable, or the terms before a decoding error) overflowed the stack; through
    // `erlnode.decode` that was a segfault. The test thread has the default 2 MiB stack,
    // which an ordinary drop of 100,000 levels overflows.
    let depth = 100_000;
    let deep: Vec<u8> = std::iter::repeat_n([104u8, 1], depth).flatten().collect();
    let deep = [&deep[..], &[106]].concat();

    // {Deep, <bad tag>}, [Deep | <bad tag>], #{Deep => <bad tag>}, Deep <trailing byte>.
    for head in [&[104u8, 2][..], &[108, 0, 0, 0, 1], &[116, 0, 0, 0, 1], &[]] {
        let input = [&[131][..], head, &deep, &[255]].concat();
        assert!(decode(&input).is_err(), "{head:?}");
    }

    // A fun with the deep term as its free variable decodes (kept as bytes).
    let fun = Fun::from_parts(
        1,
        [9; 16],
        0,
        &Atom::new("m"),
        &Term::Int(0),
        &Term::Int(0),
        &Term::Pid(Pid {
            node: Atom::new("a@h"),
            id: 1,
            serial: 0,
            creation: 1,
        }),
        &[Term::Int(0)],
    );
    let mut input = vec![131];
    input.extend_from_slice(&fun.raw[..fun.raw.len() - 2]); // without the free SMALL_INTEGER
    input.extend_from_slice(&deep);
    let size = (input.len() - 2) as u32;
    input[2..6].copy_from_slice(&size.to_be_bytes());
    match decode(&input).unwrap() {
        Term::Fun(decoded) => assert_eq!(decoded.raw.len(), input.len() - 1),
        other => panic!("not a fun: {other:?}"),
    }

    // drop_flat and nests_deeper_than never recurse.
    let term = decode(&[&[131][..], &deep].concat()).unwrap();
    assert!(term.nests_deeper_than(depth - 1));
    assert!(!term.nests_deeper_than(depth));
    term.drop_flat();
    let shallow = Term::tuple(vec![Term::List(vec![Term::Int(1)]), Term::nil()]);
    assert!(shallow.nests_deeper_than(1) && !shallow.nests_deeper_than(2));
    assert!(!Term::nil().nests_deeper_than(0) && !Term::Int(1).nests_deeper_than(0));
}

/// Scans `body` fed `step` bytes at a time, leaving out each binary's data once found (as a
/// receiver does): the binaries found, as (position in the skeleton, length), and whether
/// the scan stopped on something it does not skip.
fn scan_in_steps(body: &[u8], min: usize, step: usize) -> (Vec<(usize, usize)>, bool) {
    let mut scanner = super::scan::Scanner::new(min);
    let mut skeleton = Vec::new();
    let mut found = Vec::new();
    let mut skipping = 0;
    for chunk in body.chunks(step) {
        let mut chunk = chunk;
        loop {
            let skip = skipping.min(chunk.len());
            skipping -= skip;
            chunk = &chunk[skip..];
            if chunk.is_empty() && skipping > 0 {
                break;
            }
            skeleton.extend_from_slice(chunk);
            chunk = &[];
            match scanner.scan(&skeleton) {
                super::scan::Scan::Binary { at, len } => {
                    found.push((at, len));
                    // The binary's data is not skeleton: what of it was appended goes.
                    let data = skeleton.split_off(at + 5);
                    let dropped = data.len().min(len);
                    skipping = len - dropped;
                    skeleton.extend_from_slice(&data[dropped..]);
                    continue;
                }
                super::scan::Scan::Off => return (found, true),
                super::scan::Scan::NeedMore => break,
            }
        }
    }
    (found, false)
}

/// Binaries of at least `min` bytes in `t`, outside funs (whose environment is skipped whole).
fn large_binaries(t: &Term, min: usize) -> usize {
    match t {
        Term::Binary(b) => usize::from(b.len() >= min),
        Term::Tuple(items) | Term::List(items) => {
            items.iter().map(|i| large_binaries(i, min)).sum()
        }
        Term::ImproperList(items, tail) => {
            items.iter().map(|i| large_binaries(i, min)).sum::<usize>() + large_binaries(tail, min)
        }
        Term::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| large_binaries(k, min) + large_binaries(v, min))
            .sum(),
        _ => 0,
    }
}

proptest! {
    #[test]
    fn the_scanner_finds_every_large_binary_however_the_bytes_come(
        t in term(),
        min in 1usize..20,
        step in 1usize..64,
    ) {
        let body = &encode(&t)[1..];
        let (whole, off) = scan_in_steps(body, min, body.len().max(1));
        let (stepped, stepped_off) = scan_in_steps(body, min, step);
        prop_assert!(!off && !stepped_off, "{t:?}");
        prop_assert_eq!(&whole, &stepped);
        prop_assert_eq!(whole.len(), large_binaries(&t, min), "{:?}", t);
        prop_assert!(whole.iter().all(|&(_, len)| len >= min));
    }
}

#[test]
fn the_scanner_stops_at_what_it_cannot_skip() {
    let compressed = writer::compress(encode(&Term::Binary(Bytes::from(vec![1u8; 1000]))), 6);
    let mut scanner = super::scan::Scanner::new(10);
    assert_eq!(scanner.scan(&compressed[1..]), super::scan::Scan::Off);
    let mut scanner = super::scan::Scanner::new(10);
    // A tuple whose header is not whole yet, then whole with a large binary.
    assert_eq!(scanner.scan(&[104]), super::scan::Scan::NeedMore);
    let body = [104, 2, 97, 1, 109, 0, 0, 0, 20];
    assert_eq!(
        scanner.scan(&body),
        super::scan::Scan::Binary { at: 4, len: 20 }
    );
}
