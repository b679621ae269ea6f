//! Every syntax form, every error with its position, the printing rules of `~p`, and a
//! property test of the round trip `parse_term(format_term(t))`.

use super::order::{list_view, sorted_pairs, Element};
use super::{exactly_equal, format_term, parse_term, term_order, SyntaxError, MAX_DEPTH};
use crate::etf::term::{Atom, BigInt, Pid, Port, Reference, Term};
use crate::etf::{decode, encode};
use bytes::Bytes;
use proptest::prelude::*;
use std::cmp::Ordering;

fn parse(text: &str) -> Term {
    parse_term(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn error(text: &str) -> SyntaxError {
    match parse_term(text) {
        Ok(term) => panic!("{text:?} parsed as {term:?}"),
        Err(e) => e,
    }
}

/// Checks an error's message (a prefix of it) and position.
fn assert_error(text: &str, message: &str, line: usize, column: usize, offset: usize) {
    let e = error(text);
    assert!(
        e.message().starts_with(message),
        "{text:?}: message {:?} does not start with {message:?}",
        e.message()
    );
    assert_eq!(
        (e.line(), e.column(), e.offset()),
        (line, column, offset),
        "{text:?}: {e}"
    );
}

fn atom(text: &str) -> Term {
    Term::atom(text)
}

fn int(i: i64) -> Term {
    Term::Int(i)
}

fn string(text: &str) -> Term {
    Term::String(text.as_bytes().to_vec())
}

fn binary(bytes: &[u8]) -> Term {
    Term::Binary(Bytes::copy_from_slice(bytes))
}

fn big(negative: bool, magnitude: &[u8]) -> Term {
    Term::BigInt(BigInt {
        negative,
        magnitude: magnitude.to_vec(),
    })
}

// ---- integers -------------------------------------------------------------------------

#[test]
fn integers() {
    assert_eq!(parse("42"), int(42));
    assert_eq!(parse("0"), int(0));
    assert_eq!(parse("-7"), int(-7));
    assert_eq!(parse("- 7"), int(-7));
    assert_eq!(parse("+5"), int(5));
    assert_eq!(parse("007"), int(7));
    assert_eq!(parse("1_000"), int(1000));
    assert_eq!(parse("1_000_000"), int(1_000_000));
    assert_eq!(parse("16#ff"), int(255));
    assert_eq!(parse("16#FF"), int(255));
    assert_eq!(parse("16#F_F"), int(255));
    assert_eq!(parse("-16#ff"), int(-255));
    assert_eq!(parse("2#101"), int(5));
    assert_eq!(parse("8#777"), int(511));
    assert_eq!(parse("36#zz"), int(1295));
    assert_eq!(parse("36#ZZ"), int(1295));
    assert_eq!(parse("10#99"), int(99));
}

#[test]
fn characters() {
    assert_eq!(parse("$a"), int(97));
    assert_eq!(parse("$ "), int(32));
    assert_eq!(parse("$\\n"), int(10));
    assert_eq!(parse("$\\s"), int(32));
    assert_eq!(parse("$\\\\"), int(92));
    assert_eq!(parse("$\\'"), int(39));
    assert_eq!(parse("$\\x{1F600}"), int(0x1F600));
    assert_eq!(parse("$\\777"), int(511));
    assert_eq!(parse("$\\^a"), int(1));
    assert_eq!(parse("$é"), int(233));
    assert_eq!(parse("$日"), int(0x65E5));
    assert_eq!(parse("-$a"), int(-97));
}

#[test]
fn big_integers() {
    assert_eq!(parse("9223372036854775807"), int(i64::MAX));
    assert_eq!(parse("-9223372036854775808"), int(i64::MIN));
    assert_eq!(
        parse("9223372036854775808"),
        big(false, &[0, 0, 0, 0, 0, 0, 0, 0x80])
    );
    assert_eq!(
        parse("-9223372036854775809"),
        big(true, &[1, 0, 0, 0, 0, 0, 0, 0x80])
    );
    assert_eq!(
        parse("16#1_0000_0000_0000_0000"),
        big(false, &[0, 0, 0, 0, 0, 0, 0, 0, 1])
    );
    assert_eq!(
        parse("1180591620717411303424"),
        big(false, &[0, 0, 0, 0, 0, 0, 0, 0, 64])
    );
    assert_eq!(
        format_term(&big(true, &[0, 0, 0, 0, 0, 0, 0, 0, 64])),
        "-1180591620717411303424"
    );
    let digits = "1234567890".repeat(30);
    assert_eq!(format_term(&parse(&digits)), digits);
    assert_eq!(
        format_term(&parse(&format!("-{digits}"))),
        format!("-{digits}")
    );
    // A big integer that fits in an i64, as a program may build one.
    assert_eq!(format_term(&big(true, &[5, 0, 0])), "-5");
    assert_eq!(format_term(&big(true, &[])), "0");
}

// ---- floats ---------------------------------------------------------------------------

#[test]
fn floats() {
    assert_eq!(parse("1.5"), Term::Float(1.5));
    assert_eq!(parse("1.0e10"), Term::Float(1.0e10));
    assert_eq!(parse("1.0E10"), Term::Float(1.0e10));
    assert_eq!(parse("1.0e+10"), Term::Float(1.0e10));
    assert_eq!(parse("-2.5e-3"), Term::Float(-2.5e-3));
    assert_eq!(parse("1_000.000_1e1_0"), Term::Float(1000.0001e10));
    assert_eq!(parse("0.1"), Term::Float(0.1));
    let Term::Float(negative_zero) = parse("-0.0") else {
        panic!("not a float")
    };
    assert!(negative_zero == 0.0 && negative_zero.is_sign_negative());
    assert_eq!(parse("4.9e-324"), Term::Float(5e-324));
    assert_eq!(
        parse("1.7976931348623157e308"),
        Term::Float(1.7976931348623157e308)
    );
}

/// What `io_lib:format("~p", [F])` prints in OTP 25 (checked with erl; the integration test
/// checks many more against the erl installed).
#[test]
fn floats_print_as_erlang_does() {
    let cases: &[(f64, &str)] = &[
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (0.1, "0.1"),
        (0.5, "0.5"),
        (1.5, "1.5"),
        (-1.5, "-1.5"),
        (1.0e10, "1.0e10"),
        (1.0e-5, "1.0e-5"),
        (-1.0e-5, "-1.0e-5"),
        (100.0, "100.0"),
        (120.0, "120.0"),
        (1000.0, "1.0e3"),
        (1200.0, "1.2e3"),
        (1.0e6, "1.0e6"),
        (1234567.0, "1234567.0"),
        (12345678.0, "12345678.0"),
        (123456789.0, "123456789.0"),
        (123456.789, "123456.789"),
        (123456789012345.0, "123456789012345.0"),
        (0.001, "0.001"),
        (0.0001, "0.0001"),
        (0.0002, "0.0002"),
        (0.0025, "0.0025"),
        (0.0012, "0.0012"),
        (0.00123, "0.00123"),
        (0.001234, "0.001234"),
        (0.00012, "1.2e-4"),
        (0.000123, "1.23e-4"),
        (0.00012345, "1.2345e-4"),
        (0.01234567, "0.01234567"),
        (1.5e-10, "1.5e-10"),
        (1.5e300, "1.5e300"),
        (1.23e-298, "1.23e-298"),
        (5e-324, "5.0e-324"),
        (2.2250738585072014e-308, "2.2250738585072014e-308"),
        (1.7976931348623157e308, "1.7976931348623157e308"),
        (4503599627370496.0, "4503599627370496.0"),
        (9007199254740991.0, "9007199254740991.0"),
        (-9007199254740991.0, "-9007199254740991.0"),
        (9007199254740992.0, "9.007199254740992e15"),
        (-9007199254740992.0, "-9.007199254740992e15"),
        (12345678901234567.0, "1.2345678901234568e16"),
        (1.0e16, "1.0e16"),
        (1.0e23, "1.0e23"),
        (4.56789, "4.56789"),
    ];
    for &(value, text) in cases {
        assert_eq!(format_term(&Term::Float(value)), text, "{value:e}");
        assert_eq!(parse(text), Term::Float(value), "{text}");
    }
    assert_eq!(format_term(&Term::Float(f64::NAN)), "#Float<nan>");
    assert_eq!(format_term(&Term::Float(f64::INFINITY)), "#Float<inf>");
    assert_eq!(format_term(&Term::Float(f64::NEG_INFINITY)), "#Float<-inf>");
}

// ---- atoms ----------------------------------------------------------------------------

#[test]
fn atoms() {
    assert_eq!(parse("ok"), atom("ok"));
    assert_eq!(parse("true"), atom("true"));
    assert_eq!(parse("false"), atom("false"));
    assert_eq!(parse("a@b"), atom("a@b"));
    assert_eq!(parse("nonode@nohost"), atom("nonode@nohost"));
    assert_eq!(parse("camelCase_1"), atom("camelCase_1"));
    assert_eq!(parse("ßa"), atom("ßa"));
    assert_eq!(parse("'hello world'"), atom("hello world"));
    assert_eq!(parse("'Hello'"), atom("Hello"));
    assert_eq!(parse("''"), atom(""));
    assert_eq!(parse("'a\\'b'"), atom("a'b"));
    assert_eq!(parse("'a\\\\b'"), atom("a\\b"));
    assert_eq!(parse("'a\"b'"), atom("a\"b"));
    assert_eq!(parse("'fun'"), atom("fun"));
    assert_eq!(parse("'end'"), atom("end"));
    assert_eq!(parse("'\\x{1F600}'"), atom("\u{1F600}"));
    assert_eq!(parse("'日本'"), atom("日本"));
    assert_eq!(parse("'a\\nb'"), atom("a\nb"));
    assert_eq!(parse("'line\nbreak'"), atom("line\nbreak"));
    // OTP 25 prints these bare; OTP 27 reserves them.
    assert_eq!(parse("maybe"), atom("maybe"));
    assert_eq!(parse("else"), atom("else"));
}

#[test]
fn atoms_print_quoted_only_when_needed() {
    let cases: &[(&str, &str)] = &[
        ("ok", "ok"),
        ("a@b", "a@b"),
        ("a_B9@", "a_B9@"),
        ("true", "true"),
        ("nil", "nil"),
        ("é", "é"),
        ("ßa", "ßa"),
        ("aé", "aé"),
        ("aÀ", "aÀ"),
        ("Hello", "'Hello'"),
        ("_x", "'_x'"),
        ("9a", "'9a'"),
        ("hello world", "'hello world'"),
        ("a.b", "'a.b'"),
        ("@", "'@'"),
        ("", "''"),
        ("÷", "'÷'"),
        ("a×", "'a×'"),
        ("a'b", "'a\\'b'"),
        ("a\\b", "'a\\\\b'"),
        ("a\"b", "'a\"b'"),
        ("a\nb", "'a\\nb'"),
        ("a\tb", "'a\\tb'"),
        ("a\u{1b}b", "'a\\eb'"),
        ("a\u{1}b", "'a\\001b'"),
        ("a\u{7f}b", "'a\\db'"),
        ("a\u{80}b", "'a\\200b'"),
        ("a\u{9f}b", "'a\\237b'"),
        ("a\u{a0}b", "'a\u{a0}b'"),
        ("a\u{100}", "'a\\x{100}'"),
        ("\u{1F600}", "'\\x{1F600}'"),
        ("end", "'end'"),
        ("fun", "'fun'"),
        ("and", "'and'"),
        ("receive", "'receive'"),
        ("maybe", "'maybe'"),
        ("else", "'else'"),
    ];
    for &(name, text) in cases {
        assert_eq!(format_term(&atom(name)), text, "{name:?}");
        assert_eq!(parse(text), atom(name), "{text}");
    }
}

// ---- strings --------------------------------------------------------------------------

#[test]
fn strings() {
    assert_eq!(parse("\"abc\""), string("abc"));
    assert_eq!(parse("\"\""), Term::nil());
    assert_eq!(parse("\"ab\" \"cd\""), string("abcd"));
    assert_eq!(parse("\"ab\"\n  % joined\n  \"cd\""), string("abcd"));
    assert_eq!(parse("\"\" \"\""), Term::nil());
    assert_eq!(parse("\"it's\""), string("it's"));
    assert_eq!(parse("\"a\\\"b\""), string("a\"b"));
    assert_eq!(
        parse(r#""\b\d\e\f\n\r\s\t\v\\\'\"\z""#),
        Term::String(vec![8, 127, 27, 12, 10, 13, 32, 9, 11, 92, 39, 34, b'z'])
    );
    assert_eq!(
        parse(r#""\x41\x{42}\x{0043}\101\1010\7\^a\^A\^@\^?\^[""#),
        Term::String(vec![
            0x41, 0x42, 0x43, 0o101, 0o101, b'0', 7, 1, 1, 0, 31, 27
        ])
    );
    assert_eq!(parse("\"é\""), Term::String(vec![233]));
    assert_eq!(parse("\"ÿ\""), Term::String(vec![255]));
    assert_eq!(parse("\"multi\nline\""), string("multi\nline"));
    // A character above 255 makes it a list of integers.
    assert_eq!(parse("\"a\\x{100}\""), Term::List(vec![int(97), int(256)]));
    assert_eq!(
        parse("\"日本\""),
        Term::List(vec![int(0x65E5), int(0x672C)])
    );
    assert_eq!(parse("\"\\400\""), Term::List(vec![int(256)]));
}

#[test]
fn strings_print_when_printable() {
    let cases: &[(Term, &str)] = &[
        (string("abc"), "\"abc\""),
        (Term::List(vec![int(97), int(98)]), "\"ab\""),
        (string("a\"b\\c'"), "\"a\\\"b\\\\c'\""),
        (
            Term::String(vec![8, 9, 10, 11, 12, 13, 27]),
            "\"\\b\\t\\n\\v\\f\\r\\e\"",
        ),
        (Term::String(vec![32, 255]), "\" ÿ\""),
        (Term::String(vec![160]), "\"\u{a0}\""),
        (Term::String(vec![7, 8]), "[7,8]"),
        (Term::String(vec![127]), "[127]"),
        (Term::String(vec![128]), "[128]"),
        (Term::String(vec![159]), "[159]"),
        (Term::String(vec![0]), "[0]"),
        (Term::String(vec![1]), "[1]"),
        (Term::String(vec![]), "[]"),
        (Term::nil(), "[]"),
        (Term::List(vec![int(1087), int(1088)]), "[1087,1088]"),
        (Term::List(vec![int(97), int(256)]), "[97,256]"),
        (Term::List(vec![int(97), int(-1)]), "[97,-1]"),
        (Term::List(vec![int(97), atom("b")]), "[97,b]"),
        (
            Term::ImproperList(vec![int(97)], Box::new(string("bc"))),
            "\"abc\"",
        ),
        (
            Term::ImproperList(vec![int(97)], Box::new(int(98))),
            "[97|98]",
        ),
    ];
    for (term, text) in cases {
        assert_eq!(format_term(term), *text, "{term:?}");
    }
}

// ---- binaries -------------------------------------------------------------------------

#[test]
fn binaries() {
    assert_eq!(parse("<<>>"), binary(b""));
    assert_eq!(parse("<< >>"), binary(b""));
    assert_eq!(parse("<<\"a\",1,2>>"), binary(b"a\x01\x02"));
    assert_eq!(parse("<<\"ab\" \"c\">>"), binary(b"abc"));
    assert_eq!(parse("<<\"\">>"), binary(b""));
    assert_eq!(parse("<<255, 0, $a>>"), binary(b"\xff\x00a"));
    assert_eq!(parse("<<-1>>"), binary(b"\xff"));
    assert_eq!(parse("<<-128>>"), binary(b"\x80"));
    assert_eq!(parse("<<\"é\">>"), binary(b"\xe9"));
    assert_eq!(parse("<<\"é\"/utf8>>"), binary("é".as_bytes()));
    assert_eq!(
        parse("<<\"\\x{1F600}\"/utf8>>"),
        binary("\u{1F600}".as_bytes())
    );
    assert_eq!(parse("<<256:16>>"), binary(b"\x01\x00"));
    assert_eq!(parse("<<-1:16>>"), binary(b"\xff\xff"));
    assert_eq!(parse("<<1:4, 2:4>>"), binary(b"\x12"));
    assert_eq!(parse("<<0:0>>"), binary(b""));
    assert_eq!(
        parse("<<16#0102030405060708090a:80>>"),
        binary(b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a")
    );
}

#[test]
fn bit_binaries() {
    let bits = |data: &[u8], bits: u8| Term::BitBinary {
        data: Bytes::copy_from_slice(data),
        bits,
    };
    assert_eq!(parse("<<1:3>>"), bits(&[0b0010_0000], 3));
    assert_eq!(parse("<<1,2,3:4>>"), bits(&[1, 2, 0x30], 4));
    assert_eq!(parse("<<1:1>>"), bits(&[0x80], 1));
    assert_eq!(parse("<<0:1>>"), bits(&[0], 1));
    assert_eq!(parse("<<-1:3>>"), bits(&[0b1110_0000], 3));
    assert_eq!(parse("<<-4:3>>"), bits(&[0b1000_0000], 3));
    assert_eq!(
        parse("<<\"ab\"/utf8, 1:3, -1:3>>"),
        bits(&[97, 98, 0b0011_1100], 6)
    );
    assert_eq!(parse("<<127:7>>"), bits(&[0xfe], 7));
    assert_eq!(parse("<<1:9>>"), bits(&[0, 0x80], 1));

    assert_eq!(format_term(&bits(&[0b0010_0000], 3)), "<<1:3>>");
    assert_eq!(format_term(&bits(&[1, 2, 0x30], 4)), "<<1,2,3:4>>");
    assert_eq!(
        format_term(&bits(&[97, 98, 99, 0x20], 3)),
        "<<97,98,99,1:3>>"
    );
    assert_eq!(format_term(&bits(&[0x80], 1)), "<<1:1>>");
    assert_eq!(format_term(&bits(&[0], 1)), "<<0:1>>");
    // Unused low bits do not count; 8 bits in the last byte is a binary.
    assert_eq!(format_term(&bits(&[0b0011_1111], 3)), "<<1:3>>");
    assert_eq!(format_term(&bits(b"ab", 8)), "<<\"ab\">>");
    assert_eq!(format_term(&bits(b"", 3)), "<<>>");
}

#[test]
fn binaries_print_as_text_when_printable() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "<<>>"),
        (b"abc", "<<\"abc\">>"),
        (b"ab\n", "<<\"ab\\n\">>"),
        (b"a\"b", "<<\"a\\\"b\">>"),
        (b"a\\b", "<<\"a\\\\b\">>"),
        (b"\x1b\x08", "<<\"\\e\\b\">>"),
        (b"\xc3\xa9", "<<\"Ã©\">>"),
        (b"\xff\xff", "<<\"ÿÿ\">>"),
        (b"\xa0", "<<\"\u{a0}\">>"),
        (b"abc\x00", "<<97,98,99,0>>"),
        (b"\x07", "<<7>>"),
        (b"\x7f", "<<127>>"),
        (b"\x01\x02\x03", "<<1,2,3>>"),
    ];
    for &(bytes, text) in cases {
        assert_eq!(format_term(&binary(bytes)), text, "{bytes:?}");
        assert_eq!(parse(text), binary(bytes), "{text}");
    }
}

// ---- lists, tuples, maps --------------------------------------------------------------

#[test]
fn lists() {
    assert_eq!(parse("[]"), Term::nil());
    assert_eq!(parse("[ ]"), Term::nil());
    assert_eq!(parse("[1,2,3]"), Term::List(vec![int(1), int(2), int(3)]));
    assert_eq!(parse("[ 1 , 2 ]"), Term::List(vec![int(1), int(2)]));
    assert_eq!(
        parse("[a|b]"),
        Term::ImproperList(vec![atom("a")], Box::new(atom("b")))
    );
    assert_eq!(
        parse("[1,2|3]"),
        Term::ImproperList(vec![int(1), int(2)], Box::new(int(3)))
    );
    assert_eq!(parse("[1|[2]]"), Term::List(vec![int(1), int(2)]));
    assert_eq!(parse("[1|[]]"), Term::List(vec![int(1)]));
    assert_eq!(
        parse("[1|\"ab\"]"),
        Term::List(vec![int(1), int(97), int(98)])
    );
    assert_eq!(
        parse("[1|[2|c]]"),
        Term::ImproperList(vec![int(1), int(2)], Box::new(atom("c")))
    );
    assert_eq!(
        parse("[[],[[]]]"),
        Term::List(vec![Term::nil(), Term::List(vec![Term::nil()])])
    );
    assert_eq!(format_term(&parse("[a|b]")), "[a|b]");
    assert_eq!(format_term(&parse("[1,2|3]")), "[1,2|3]");
    assert_eq!(format_term(&parse("[a, [b], {c}]")), "[a,[b],{c}]");
}

#[test]
fn tuples() {
    assert_eq!(parse("{}"), Term::Tuple(vec![]));
    assert_eq!(parse("{a}"), Term::Tuple(vec![atom("a")]));
    assert_eq!(
        parse("{ok, {1, \"x\"}}"),
        Term::Tuple(vec![atom("ok"), Term::Tuple(vec![int(1), string("x")])])
    );
    assert_eq!(
        format_term(&parse("{ ok , { 1 , \"x\" } }")),
        "{ok,{1,\"x\"}}"
    );
    assert_eq!(format_term(&parse("{-1}")), "{-1}");
}

#[test]
fn maps() {
    assert_eq!(parse("#{}"), Term::Map(vec![]));
    assert_eq!(
        parse("#{a => 1, \"b\" => [2]}"),
        Term::Map(vec![
            (atom("a"), int(1)),
            (string("b"), Term::List(vec![int(2)]))
        ])
    );
    // A repeated key keeps its last value.
    assert_eq!(
        parse("#{a => 1, b => 2, a => 3}"),
        Term::Map(vec![(atom("b"), int(2)), (atom("a"), int(3))])
    );
    // "ab" and [97,98] are the same key; 1 and 1.0 are not.
    assert_eq!(
        parse("#{\"ab\" => 1, [97,98] => 2, 1 => x, 1.0 => y}"),
        Term::Map(vec![
            (Term::List(vec![int(97), int(98)]), int(2)),
            (int(1), atom("x")),
            (Term::Float(1.0), atom("y"))
        ])
    );
    assert_eq!(
        parse("#{#{} => #{a => #{}}}"),
        Term::Map(vec![(
            Term::Map(vec![]),
            Term::Map(vec![(atom("a"), Term::Map(vec![]))])
        )])
    );
}

/// Keys in Erlang's map-key order, as `~p` prints them.
#[test]
fn maps_print_in_key_order() {
    let cases: &[(&str, &str)] = &[
        ("#{}", "#{}"),
        ("#{a => -1}", "#{a => -1}"),
        ("#{1.0 => a, 2 => b}", "#{2 => b,1.0 => a}"),
        ("#{1.0 => b, 1 => a}", "#{1 => a,1.0 => b}"),
        (
            "#{b => 1, a => 2, 1 => 3, \"x\" => 4, {} => 5, [] => 6, <<>> => 7}",
            "#{1 => 3,a => 2,b => 1,{} => 5,[] => 6,\"x\" => 4,<<>> => 7}",
        ),
        (
            "#{{b} => 1, {a,a} => 2, {a} => 3}",
            "#{{a} => 3,{b} => 1,{a,a} => 2}",
        ),
        (
            "#{[a,b] => 1, [a] => 2, [a|z] => 3, \"ab\" => 4}",
            "#{\"ab\" => 4,[a|z] => 3,[a] => 2,[a,b] => 1}",
        ),
        (
            "#{<<1:1>> => 1, <<0>> => 2, <<>> => 3, <<1>> => 4, <<0:1>> => 5}",
            "#{<<>> => 3,<<0:1>> => 5,<<0>> => 2,<<1>> => 4,<<1:1>> => 1}",
        ),
        (
            "#{-1 => a, 100000000000000000000 => b, -100000000000000000000 => c, 0 => d}",
            "#{-100000000000000000000 => c,-1 => a,0 => d,100000000000000000000 => b}",
        ),
        (
            "#{#{b => 1} => x, #{a => 2} => y, #{a => 1, b => 1} => z}",
            "#{#{a => 2} => y,#{b => 1} => x,#{a => 1,b => 1} => z}",
        ),
        (
            "#{<a@h.1.0> => p, #Ref<a@h.1> => r, #Port<a@h.1> => o, fun m:f/1 => f, x => a, {} => t}",
            "#{x => a,#Ref<a@h.1> => r,fun m:f/1 => f,#Port<a@h.1> => o,<a@h.1.0> => p,{} => t}",
        ),
    ];
    for &(text, printed) in cases {
        assert_eq!(format_term(&parse(text)), printed, "{text}");
    }
}

// ---- pids, ports, references, funs ----------------------------------------------------

#[test]
fn identifiers() {
    let pid = |node: &str, id, serial| {
        Term::Pid(Pid {
            node: Atom::new(node),
            id,
            serial,
            creation: 0,
        })
    };
    let reference = |node: &str, ids: &[u32]| {
        Term::Reference(Reference {
            node: Atom::new(node),
            creation: 0,
            ids: ids.to_vec(),
        })
    };
    let cases: &[(&str, Term)] = &[
        ("<node@host.42.0>", pid("node@host", 42, 0)),
        ("<py@10.0.0.1.42.7>", pid("py@10.0.0.1", 42, 7)),
        (
            "<a@my-host.example.com.1.2>",
            pid("a@my-host.example.com", 1, 2),
        ),
        ("<'odd node'.1.2>", pid("odd node", 1, 2)),
        ("<a@h.1.4294967295.3>", pid("a@h.1", u32::MAX, 3)),
        (
            "#Port<node@host.5>",
            Term::Port(Port {
                node: Atom::new("node@host"),
                id: 5,
                creation: 0,
            }),
        ),
        (
            "#Port<'x'.18446744073709551615>",
            Term::Port(Port {
                node: Atom::new("x"),
                id: u64::MAX,
                creation: 0,
            }),
        ),
        ("#Ref<node@host.3.2.1>", reference("node@host", &[1, 2, 3])),
        ("#Ref<node@host.7>", reference("node@host", &[7])),
        ("#Ref<n@h.5.4.3.2.1>", reference("n@h", &[1, 2, 3, 4, 5])),
        (
            "#Ref<py@10.0.0.1.3.2.1>",
            reference("py@10.0.0.1", &[1, 2, 3]),
        ),
        ("#Ref<py@10.0.0.1.9>", reference("py@10.0.0.1", &[9])),
        ("#Ref<'a@h.1'.3.2.1>", reference("a@h.1", &[1, 2, 3])),
        ("#Ref<'x y'.3>", reference("x y", &[3])),
        (
            "fun lists:map/2",
            Term::Export {
                module: Atom::new("lists"),
                function: Atom::new("map"),
                arity: 2,
            },
        ),
        (
            "fun 'A':'b c'/0",
            Term::Export {
                module: Atom::new("A"),
                function: Atom::new("b c"),
                arity: 0,
            },
        ),
        (
            "fun m:'end'/255",
            Term::Export {
                module: Atom::new("m"),
                function: Atom::new("end"),
                arity: 255,
            },
        ),
    ];
    for (text, term) in cases {
        assert_eq!(&parse(text), term, "{text}");
        assert_eq!(format_term(term), *text, "{term:?}");
    }
    assert_eq!(parse("<'a@h.1'.1.2>"), pid("a@h.1", 1, 2));
    assert_eq!(parse("#Port<'a@h'.1>"), parse("#Port<a@h.1>"));
    // Spacing is free between tokens, and the creation is not written.
    assert_eq!(parse("fun  lists : map / 2"), parse("fun lists:map/2"));
    let with_creation = Term::Pid(Pid {
        node: Atom::new("a@b"),
        id: 1,
        serial: 2,
        creation: 77,
    });
    assert_eq!(format_term(&with_creation), "<a@b.1.2>");
}

#[test]
fn closures_print_as_erlang_does() {
    // `fun(X) -> X + 1 end` of module u, as term_to_binary gives it.
    let encoded: &[u8] = &[
        131, 112, 0, 0, 0, 69, 1, 158, 240, 119, 47, 219, 88, 82, 220, 82, 90, 209, 172, 55, 123,
        77, 228, 0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 1, 117, 97, 0, 98, 4, 247, 131, 185, 88, 100, 0,
        13, 110, 111, 110, 111, 100, 101, 64, 110, 111, 104, 111, 115, 116, 0, 0, 0, 9, 0, 0, 0, 0,
        0, 0, 0, 0,
    ];
    let fun = decode(encoded).expect("a fun");
    assert_eq!(format_term(&fun), "#Fun<u.0.83329977>");
    assert_error("#Fun<u.0.83329977>", "a closure", 1, 1, 0);
}

// ---- layout: comments, whitespace, the final dot ----------------------------------------

#[test]
fn comments_whitespace_and_final_dot() {
    let file = "% ssl_dist_optfile\n[{server, [{certfile, \"/etc/cert.pem\"}, % the cert\n\
                \t{verify, verify_peer}]}, % done\n {client, []}].\n% trailing comment\n";
    assert_eq!(
        format_term(&parse(file)),
        "[{server,[{certfile,\"/etc/cert.pem\"},{verify,verify_peer}]},{client,[]}]"
    );
    assert_eq!(parse("  42  "), int(42));
    assert_eq!(parse("42."), int(42));
    assert_eq!(parse("42 .\n"), int(42));
    assert_eq!(parse("\r\n\t{a}\r\n"), Term::Tuple(vec![atom("a")]));
    assert_eq!(parse("[1,%c\n2]"), Term::List(vec![int(1), int(2)]));
    assert_eq!(parse("1.5."), Term::Float(1.5));
}

// ---- errors ---------------------------------------------------------------------------

#[test]
fn errors_say_what_and_where() {
    // (text, message prefix, line, column, byte offset)
    let cases: &[(&str, &str, usize, usize, usize)] = &[
        ("", "expected a term, found end of input", 1, 1, 0),
        ("   ", "expected a term, found end of input", 1, 4, 3),
        (
            "[1 2]",
            "expected ',', '|' or ']', found the integer 2",
            1,
            4,
            3,
        ),
        (
            "[1,\n  2 x]",
            "expected ',', '|' or ']', found the atom x",
            2,
            5,
            8,
        ),
        ("[1,", "expected a term, found end of input", 1, 4, 3),
        (
            "[1",
            "expected ',', '|' or ']', found end of input",
            1,
            3,
            2,
        ),
        (
            "[a|b|c]",
            "expected ']' after the tail of a list, found '|'",
            1,
            5,
            4,
        ),
        (
            "[é x]",
            "expected ',', '|' or ']', found the atom x",
            1,
            4,
            4,
        ),
        ("{a,}", "expected a term, found '}'", 1, 4, 3),
        ("{a b}", "expected ',' or '}', found the atom b", 1, 4, 3),
        ("#{a}", "expected '=>' after a map key, found '}'", 1, 4, 3),
        (
            "#{a => 1 b}",
            "expected ',' or '}', found the atom b",
            1,
            10,
            9,
        ),
        ("#{a := 1}", "':=' updates an existing map", 1, 5, 4),
        ("X", "expected a term, found the variable X", 1, 1, 0),
        ("[a, _]", "expected a term, found the variable _", 1, 5, 4),
        ("foo(1)", "function calls are not allowed", 1, 4, 3),
        (
            "1 + 2",
            "expected end of input after the term, found the operator '+'",
            1,
            3,
            2,
        ),
        (
            "a b",
            "expected end of input after the term, found the atom b",
            1,
            3,
            2,
        ),
        (
            "[1]. 2",
            "expected end of input after '.', found the integer 2",
            1,
            6,
            5,
        ),
        (
            "a:b()",
            "expected end of input after the term, found ':'",
            1,
            2,
            1,
        ),
        (
            "- a",
            "expected a number after '-', found the atom a",
            1,
            3,
            2,
        ),
        (
            "end",
            "end is a reserved word; write 'end' for the atom",
            1,
            1,
            0,
        ),
        ("[when]", "when is a reserved word", 1, 2, 1),
        (
            "fun f/1",
            "expected Module:Function/Arity after 'fun'",
            1,
            6,
            5,
        ),
        (
            "fun (X) -> X end",
            "expected Module:Function/Arity after 'fun'",
            1,
            5,
            4,
        ),
        (
            "fun m:f/256",
            "the arity of a fun must be 0 to 255",
            1,
            9,
            8,
        ),
        (
            "#rec{a = 1}",
            "records (#name{...}) are not supported",
            1,
            1,
            0,
        ),
        (
            "#Fun<erl_eval.1.2>",
            "a closure (#Fun<...>) cannot be written as text",
            1,
            1,
            0,
        ),
        (
            "#Float<nan>",
            "Erlang has no NaN or infinite floats",
            1,
            1,
            0,
        ),
        (
            "<0.42.0>",
            "this is how erl prints an identifier, without its node name",
            1,
            1,
            0,
        ),
        (
            "#Ref<0.1.2.3>",
            "this is how erl prints an identifier",
            1,
            1,
            0,
        ),
        ("<node.1.2>", "a node name needs an '@'", 1, 1, 0),
        (
            "<a@b.1>",
            "expected the node name, then its numbers",
            1,
            1,
            0,
        ),
        (
            "<a@b.1.2",
            "expected '>' to end the form <node@host.42.0>",
            1,
            9,
            8,
        ),
        (
            "< 1",
            "'<' starts a pid here; expected a form such as",
            1,
            1,
            0,
        ),
        (
            "<a@b.1.99999999999>",
            "99999999999 does not fit in 32 bits",
            1,
            1,
            0,
        ),
        (
            "#Ref<a@b.6.5.4.3.2.1>",
            "a reference has 1 to 5 words",
            1,
            1,
            0,
        ),
        (
            "#Ref<a@b>",
            "expected the node name, then its numbers",
            1,
            1,
            0,
        ),
        ("#Ref<'a'>", "a reference has 1 to 5 words", 1, 1, 0),
        (
            "#Port<'a'.1.2>",
            "expected a form such as #Port<node@host.5>",
            1,
            1,
            0,
        ),
        ("\"abc", "unterminated string", 1, 1, 0),
        ("[\n 'abc]", "unterminated quoted atom", 2, 2, 3),
        (
            "\"a\\x4\"",
            "expected two hexadecimal digits after \\x",
            1,
            3,
            2,
        ),
        (
            "\"a\\x{}\"",
            "expected hexadecimal digits and '}' after \\x{",
            1,
            3,
            2,
        ),
        (
            "\"\\x{110000}\"",
            "\\x{110000} is not a Unicode character",
            1,
            2,
            1,
        ),
        (
            "'\\x{D800}'",
            "\\x{D800} is not a Unicode character",
            1,
            2,
            1,
        ),
        ("\"\\", "unterminated escape sequence", 1, 2, 1),
        ("$", "expected a character after '$'", 1, 1, 0),
        ("16#fg", "'g' is not a digit in base 16", 1, 5, 4),
        ("2#102", "'2' is not a digit in base 2", 1, 5, 4),
        ("37#1", "the base of an integer must be 2 to 36", 1, 1, 0),
        ("1#0", "the base of an integer must be 2 to 36", 1, 1, 0),
        ("16#", "expected digits in base 16", 1, 4, 3),
        (
            "1_",
            "'_' in a number must stand between two digits",
            1,
            2,
            1,
        ),
        (
            "1__0",
            "'_' in a number must stand between two digits",
            1,
            2,
            1,
        ),
        ("12ab", "'a' cannot follow a number", 1, 3, 2),
        ("1e5", "'e' cannot follow a number", 1, 2, 1),
        ("1.0e", "'e' cannot follow a number", 1, 4, 3),
        ("1.0e400", "the float is too large", 1, 1, 0),
        (
            "1.a",
            "expected end of input after '.', found the atom a",
            1,
            3,
            2,
        ),
        ("<<300>>", "300 does not fit in 8 bits", 1, 3, 2),
        ("<<-129>>", "-129 does not fit in 8 bits", 1, 3, 2),
        ("<<8:3>>", "8 does not fit in 3 bits", 1, 3, 2),
        ("<<-5:3>>", "-5 does not fit in 3 bits", 1, 3, 2),
        ("<<1:0>>", "1 does not fit in 0 bits", 1, 3, 2),
        (
            "<<\"\\x{100}\">>",
            "character 256 does not fit in a byte",
            1,
            3,
            2,
        ),
        ("<<\"a\":8>>", "a string segment takes no size", 1, 6, 5),
        ("<<\"a\"/latin1>>", "expected utf8 after '/'", 1, 7, 6),
        ("<<1/binary>>", "type specifiers are not supported", 1, 4, 3),
        ("<<1.5>>", "float segments are not supported", 1, 3, 2),
        (
            "<<a>>",
            "expected an integer or a string in a binary, found the atom a",
            1,
            3,
            2,
        ),
        ("<<1:a>>", "expected a size in bits after ':'", 1, 5, 4),
        ("<<1:2000000>>", "a segment size must be at most", 1, 5, 4),
        (
            "<<1 2>>",
            "expected ',' or '>>', found the integer 2",
            1,
            5,
            4,
        ),
        ("[1, &]", "unexpected character '&'", 1, 5, 4),
        (
            "a == b",
            "expected end of input after the term, found the operator '=='",
            1,
            3,
            2,
        ),
    ];
    for &(text, message, line, column, offset) in cases {
        assert_error(text, message, line, column, offset);
    }
}

#[test]
fn error_display_has_the_position() {
    let e = error("[1,\n  2 x]");
    assert_eq!(
        e.to_string(),
        "expected ',', '|' or ']', found the atom x at line 2, column 5"
    );
}

#[test]
fn nesting_is_bounded() {
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    let mut term = parse(&ok);
    let mut depth = 0;
    while let Term::List(items) = term {
        depth += 1;
        term = match items.into_iter().next() {
            Some(inner) => inner,
            None => break,
        };
    }
    assert_eq!(depth, MAX_DEPTH);
    for open in ["[", "{", "#{a => ", "[a,"] {
        let deep = open.repeat(MAX_DEPTH + 1);
        let e = error(&deep);
        assert!(e.message().contains("nested more than 10000 levels"), "{e}");
        let offset = open.len() * MAX_DEPTH;
        assert_eq!(e.offset(), offset, "{open}");
        assert_eq!(e.column(), offset + 1);
    }
    // A binary is a level too.
    let e = error(&format!("{}<<>>", "[".repeat(MAX_DEPTH)));
    assert!(e.message().contains("nested more than"), "{e}");
    assert_eq!(e.offset(), MAX_DEPTH);
}

/// `[a|[b|[c]]]` is one flat list, read without nesting: a long chain takes neither depth
/// nor quadratic time.
#[test]
fn tails_written_as_lists_do_not_nest() {
    let n = 100_000;
    let chain = format!("{}[]{}", "[a|".repeat(n), "]".repeat(n));
    assert_eq!(parse(&chain), Term::List(vec![atom("a"); n]));
    let chain = format!("{}z{}", "[a|".repeat(n), "]".repeat(n));
    assert_eq!(
        parse(&chain),
        Term::ImproperList(vec![atom("a"); n], Box::new(atom("z")))
    );
    assert_eq!(parse("[a|[b,c|[d]]]"), parse("[a,b,c,d]"));
    assert_eq!(parse("[a|[b|\"cd\"]]"), parse("[a,b,99,100]"));
    assert_error(
        "[a|[b]",
        "expected ']' after the tail of a list, found end of input",
        1,
        7,
        6,
    );
    assert_error(
        "[a|[b|c]",
        "expected ']' after the tail of a list, found end of input",
        1,
        9,
        8,
    );
    assert_error(
        "[a|[b|c d]]",
        "expected ']' after the tail of a list, found the atom d",
        1,
        9,
        8,
    );
}

#[test]
fn deep_terms_format_without_overflowing() {
    let depth = 100_000;
    let mut term = Term::nil();
    for _ in 0..depth {
        term = Term::Tuple(vec![term]);
    }
    let text = format_term(&term);
    assert_eq!(text.len(), depth * 2 + 2);
    assert!(exactly_equal(&term, &term));
    // Dropping a deep term recurses (Term has no iterative Drop).
    stacker::grow(64 << 20, move || drop(term));
}

// ---- the term order ---------------------------------------------------------------------

#[test]
fn term_order_across_types() {
    let ascending = [
        "-1",
        "1",
        "2",
        "1.0",
        "a",
        "#Ref<a@h.1>",
        "fun m:f/1",
        "#Port<a@h.1>",
        "<a@h.1.2>",
        "{}",
        "{z}",
        "{a,a}",
        "#{}",
        "#{a => 1}",
        "[]",
        "[0]",
        "\"a\"",
        "[a]",
        "<<>>",
        "<<0:1>>",
        "<<0>>",
    ];
    for pair in ascending.windows(2) {
        let (a, b) = (parse(pair[0]), parse(pair[1]));
        assert_eq!(
            term_order(&a, &b),
            Ordering::Less,
            "{} < {}",
            pair[0],
            pair[1]
        );
        assert_eq!(
            term_order(&b, &a),
            Ordering::Greater,
            "{} > {}",
            pair[1],
            pair[0]
        );
    }
    assert!(exactly_equal(&parse("\"ab\""), &parse("[97,98]")));
    assert!(exactly_equal(&parse("\"\""), &Term::String(vec![])));
    assert!(!exactly_equal(&parse("1"), &parse("1.0")));
    assert!(!exactly_equal(&parse("0.0"), &parse("-0.0")));
    assert!(exactly_equal(
        &parse("#{a => 1, b => 2}"),
        &parse("#{b => 2, a => 1}")
    ));
    assert!(exactly_equal(
        &Term::BitBinary {
            data: Bytes::from_static(b"ab"),
            bits: 8
        },
        &binary(b"ab")
    ));
    assert!(exactly_equal(&big(false, &[5, 0, 0]), &int(5)));
}

// ---- the round trip ---------------------------------------------------------------------

/// The form a term takes after `parse_term(format_term(t))`, for `==`: what text cannot keep
/// (see the module documentation) made the same on both sides.
fn normalise(term: &Term) -> Term {
    stacker::maybe_grow(64 * 1024, 2 << 20, || normalise_inner(term))
}

fn normalise_inner(term: &Term) -> Term {
    match term {
        Term::List(_) | Term::String(_) | Term::ImproperList(..) => {
            let view = list_view(term).expect("a list");
            let bytes: Option<Vec<u8>> = view
                .elements
                .iter()
                .map(|e| e.as_int().and_then(|i| u8::try_from(i).ok()))
                .collect();
            match (bytes, view.tail) {
                (Some(bytes), None) if !bytes.is_empty() => Term::String(bytes),
                _ => {
                    let items: Vec<Term> = view
                        .elements
                        .iter()
                        .map(|e| match e {
                            Element::Term(t) => normalise(t),
                            Element::Byte(b) => int(*b as i64),
                        })
                        .collect();
                    match view.tail {
                        None => Term::List(items),
                        Some(tail) if items.is_empty() => normalise(tail),
                        Some(tail) => Term::ImproperList(items, Box::new(normalise(tail))),
                    }
                }
            }
        }
        Term::BitBinary { data, bits } => {
            if data.is_empty() || !(1..8).contains(bits) {
                return Term::Binary(data.clone());
            }
            let mut data = data.to_vec();
            let last = data.len() - 1;
            data[last] &= 0xffu8 << (8 - bits);
            Term::BitBinary {
                data: Bytes::from(data),
                bits: *bits,
            }
        }
        Term::Tuple(items) => Term::Tuple(items.iter().map(normalise).collect()),
        Term::Map(pairs) => Term::Map(
            sorted_pairs(pairs)
                .into_iter()
                .map(|(k, v)| (normalise(k), normalise(v)))
                .collect(),
        ),
        Term::Pid(p) => Term::Pid(Pid {
            creation: 0,
            ..p.clone()
        }),
        Term::Port(p) => Term::Port(Port {
            creation: 0,
            ..p.clone()
        }),
        Term::Reference(r) => Term::Reference(Reference {
            creation: 0,
            ..r.clone()
        }),
        Term::BigInt(b) => crate::etf::decode::big_to_term(b.negative, &b.magnitude),
        other => other.clone(),
    }
}

fn node_name() -> impl Strategy<Value = Atom> {
    prop_oneof![
        "[a-z][a-z0-9_-]{0,6}@[a-z][a-z0-9-]{0,6}(\\.[a-z0-9]{1,4}){0,2}",
        "[a-z]{1,4}@[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        "[a-z]{1,3}@[a-z]{1,3}\\.[0-9]{1,3}",
        "\\PC{0,8}",
    ]
    .prop_map(|s| Atom::new(&s))
}

fn any_atom() -> impl Strategy<Value = Atom> {
    prop_oneof![
        "[a-z][a-zA-Z0-9_@]{0,8}",
        "[A-Z_][a-z]{0,4}",
        "\\PC{0,8}",
        "[\\x00-\\xff]{0,8}",
        prop::sample::select(vec!["end", "fun", "maybe", "true", "", "'", "\\"])
            .prop_map(String::from),
    ]
    .prop_map(|s| Atom::new(&s))
}

/// Terms as the codec produces them (every kind the decoder can give, closures and
/// non-finite floats aside, which do not round-trip by design).
fn any_term() -> impl Strategy<Value = Term> {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..12),
        "[ -~]{0,12}".prop_map(String::into_bytes),
        "[\\xa0-\\xff\\n\\t]{1,6}".prop_map(|s| s.chars().map(|c| c as u32 as u8).collect()),
    ];
    let leaf = prop_oneof![
        any_atom().prop_map(Term::Atom),
        any::<i64>().prop_map(Term::Int),
        (-300i64..300).prop_map(Term::Int),
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 9..24)).prop_map(|(n, mut m)| {
            let last = m.len() - 1;
            m[last] |= 1;
            big(n, &m)
        }),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Term::Float),
        prop::sample::select(vec![0.0, -0.0, 0.1, 1.0e10, 1.0e-5, 9007199254740992.0])
            .prop_map(Term::Float),
        bytes.clone().prop_map(|b| Term::Binary(Bytes::from(b))),
        (proptest::collection::vec(any::<u8>(), 1..6), 1u8..=8).prop_map(|(d, bits)| {
            Term::BitBinary {
                data: Bytes::from(d),
                bits,
            }
        }),
        bytes.prop_map(Term::String),
        (node_name(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
            |(node, id, serial, creation)| Term::Pid(Pid {
                node,
                id,
                serial,
                creation
            })
        ),
        (node_name(), any::<u64>(), any::<u32>())
            .prop_map(|(node, id, creation)| { Term::Port(Port { node, id, creation }) }),
        (
            node_name(),
            any::<u32>(),
            proptest::collection::vec(any::<u32>(), 1..=5)
        )
            .prop_map(|(node, creation, ids)| Term::Reference(Reference {
                node,
                creation,
                ids
            })),
        (any_atom(), any_atom(), any::<u8>()).prop_map(|(module, function, arity)| {
            Term::Export {
                module,
                function,
                arity,
            }
        }),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Term::List),
            proptest::collection::vec(0i64..300, 1..6)
                .prop_map(|v| Term::List(v.into_iter().map(Term::Int).collect())),
            (
                proptest::collection::vec(inner.clone(), 1..4),
                inner.clone()
            )
                .prop_filter("a tail that is not a list", |(_, tail)| list_view(tail)
                    .is_none())
                .prop_map(|(items, tail)| Term::ImproperList(items, Box::new(tail))),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Term::Tuple),
            proptest::collection::vec((inner.clone(), inner), 0..6).prop_map(|pairs| {
                // Erlang never sends a map with a repeated key.
                let mut unique: Vec<(Term, Term)> = Vec::new();
                for (k, v) in pairs {
                    if !unique.iter().any(|(u, _)| exactly_equal(u, &k)) {
                        unique.push((k, v));
                    }
                }
                Term::Map(unique)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn format_then_parse_gives_the_term_back(term in any_term()) {
        // As the codec gives it.
        let term = decode(&encode(&term)).expect("decodes");
        let text = format_term(&term);
        let parsed = parse_term(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(normalise(&parsed), normalise(&term), "{}", text);
        // The text says everything `==` above cannot see (the sign of a zero).
        prop_assert_eq!(&format_term(&parsed), &text);
        // Erlang's `=:=` (the creation aside, which the text does not carry).
        prop_assert!(exactly_equal(&parsed, &normalise(&term)), "{}", text);
    }

    #[test]
    fn parsing_never_panics(text in "\\PC{0,40}") {
        let _ = parse_term(&text);
    }

    #[test]
    fn parsing_near_misses_never_panics(
        text in "[\\[\\]{}<>#,|.:/=\"'$\\\\0-9a-zA-Z_@ \n%+-]{0,40}"
    ) {
        if let Err(e) = parse_term(&text) {
            prop_assert!(e.offset() <= text.len());
            prop_assert!(e.line() >= 1 && e.column() >= 1);
        }
    }
}
