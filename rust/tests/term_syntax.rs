//! `format_term` against what a real `erl` prints, and `parse_term` against `erl`'s own
//! reading of the same text.
//!
//! One `erl -noshell` run gets every case through a file (the terms encoded with
//! `erlnode::etf::encode`, read with `binary_to_term`), so no term travels as text on a
//! command line. For each case it answers, in a file the test decodes:
//! - `io_lib:format("~p", [T])`, flattened, as UTF-8;
//! - the same with a line length large enough for one line (`~1000000p`);
//! - for a case written as text, whether `erl_scan` + `erl_parse` + `erl_eval` of that text
//!   give a term `=:=` to what `parse_term` gave.
//!
//! The test then checks, for every case: `format_term` equals `~p` where that fits one line
//! (and the long form for the rest, maps of more than 32 keys aside: `erl` prints those in
//! hash order), and `parse_term` of `erl`'s output is the term again.

#[allow(dead_code)] // Not every helper is used here.
#[path = "../src/test_support.rs"]
mod test_support;

use bytes::Bytes;
use erlnode::etf::syntax::exactly_equal;
use erlnode::etf::{decode, encode, format_term, parse_term, BigInt, Term};
use std::path::PathBuf;
use std::process::Command;
use test_support::{random_name, spawn_or_skip};

/// Whether `erl` can run here; without it the test is skipped, except under CI (the rule of
/// [`spawn_or_skip`]).
fn have_erl() -> bool {
    spawn_or_skip(Command::new("erl").args(["-noshell", "-eval", "halt()."])).is_some()
}

/// Terms written as Erlang text, which `parse_term` and `erl` both read.
const TEXTS: &[&str] = &[
    // atoms
    "ok",
    "true",
    "nil",
    "a@b",
    "nonode@nohost",
    "camelCase_1",
    "'Hello'",
    "'hello world'",
    "'a\\'b'",
    "'a\\\\b'",
    "'a\"b'",
    "''",
    "'end'",
    "'fun'",
    "'receive'",
    "'maybe'",
    "'else'",
    "'a.b'",
    "'@'",
    "'_x'",
    "'9a'",
    "é",
    "ßa",
    "'÷'",
    "'a×'",
    "'\\x{1F600}'",
    "'日本'",
    "'a\\nb'",
    "'a\\tb\\eb'",
    "'a\\x01b\\x7fc'",
    "'a\\x{80}b\\x{9f}c'",
    "'a\\x{a0}b'",
    // integers
    "0",
    "42",
    "-7",
    "255",
    "256",
    "16#ff",
    "-16#FF",
    "2#1010",
    "36#zz",
    "$a",
    "$\\n",
    "1_000_000",
    "2147483647",
    "-2147483648",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "123456789012345678901234567890",
    "-123456789012345678901234567890",
    "16#ffffffffffffffffffffffffffffffff",
    // floats
    "0.0",
    "1.5",
    "-2.5e-3",
    "1.0e10",
    "1.0e-5",
    "0.1",
    "3.14159",
    "1.0e300",
    "5.0e-324",
    "123456.789",
    // strings
    "\"abc\"",
    "\"\"",
    "\"a\\\"b\\\\c'\"",
    "\"\\b\\t\\n\\v\\f\\r\\e\"",
    "\"tab\\there\"",
    "[7,8,9]",
    "\"é ÿ\"",
    "[128,159]",
    "[127]",
    "[0]",
    "[1087,1088]",
    "\"日本\"",
    "[97,-1]",
    "\"ab\" \"cd\"",
    "\"\\x{100}\"",
    // binaries
    "<<>>",
    "<<\"abc\">>",
    "<<1,2,3>>",
    "<<\"ab\\n\">>",
    "<<\"é\"/utf8>>",
    "<<\"é\">>",
    "<<255,255>>",
    "<<97,98,99,0>>",
    "<<1:3>>",
    "<<1,2,3:4>>",
    "<<\"abc\",1:3>>",
    "<<0:1>>",
    "<<7>>",
    "<<127>>",
    "<<\"a\\\"b\">>",
    "<<-1:16>>",
    // lists, tuples
    "[]",
    "[1,2,3]",
    "[a|b]",
    "[1,2|3]",
    "[[]]",
    "[[],[[]]]",
    "[\"a\",<<\"b\">>,c]",
    "[1|[2]]",
    "[$a|$b]",
    "[a,{b,[c|d]}]",
    "[[[[[[[[[[a]]]]]]]]]]",
    "{}",
    "{a}",
    "{ok,{1,\"x\"}}",
    "{-1}",
    "{{{}}}",
    "{a,[b,#{c => <<\"d\">>}],\"e\",1.5,-2}",
    // maps
    "#{}",
    "#{a => 1}",
    "#{a => -1}",
    "#{1.0 => a, 2 => b}",
    "#{1 => a, 1.0 => b}",
    "#{b => 1, a => 2, 1 => 3, \"x\" => 4, {} => 5, [] => 6, <<>> => 7}",
    "#{[a,b] => 1, [a] => 2, [a|z] => 3, \"ab\" => 4}",
    "#{<<1:1>> => 1, <<0>> => 2, <<>> => 3, <<1>> => 4, <<0:1>> => 5}",
    "#{-1 => a, 100000000000000000000 => b, -100000000000000000000 => c, 0 => d}",
    "#{#{b => 1} => x, #{a => 2} => y, #{a => 1, b => 1} => z}",
    "#{{b} => 1, {a,a} => 2, {a} => 3}",
    "#{a => #{b => #{c => []}}}",
    "#{fun m:f/1 => 1, x => 2, 1.5 => 3}",
    "#{a => 1, a => 2}",
    // exports
    "fun lists:map/2",
    "fun 'A':'b c'/0",
    "fun m:'end'/255",
    "fun 'a@b':'é'/0",
];

/// Terms built directly: what text cannot say the same way, and long terms `~p` breaks.
fn built_terms() -> Vec<Term> {
    let ints = |values: &[i64]| Term::List(values.iter().map(|&i| Term::Int(i)).collect());
    let mut terms = vec![
        Term::String(vec![0, 1, 2]),
        Term::String(b"printable".to_vec()),
        ints(&[104, 105]),
        ints(&[]),
        Term::String(vec![]),
        Term::ImproperList(vec![Term::Int(97)], Box::new(Term::String(b"bc".to_vec()))),
        Term::ImproperList(vec![Term::atom("a")], Box::new(Term::Binary(Bytes::new()))),
        Term::BitBinary {
            data: Bytes::from_static(&[0xff, 0b1010_0000]),
            bits: 3,
        },
        Term::BitBinary {
            data: Bytes::from_static(b"ab"),
            bits: 8,
        },
        Term::BigInt(BigInt {
            negative: true,
            magnitude: vec![0xff; 40],
        }),
        Term::BigInt(BigInt {
            negative: false,
            magnitude: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        }),
        Term::Binary(Bytes::from((0u8..=255).collect::<Vec<u8>>())),
        Term::Binary(Bytes::from((32u8..=126).collect::<Vec<u8>>())),
        ints(&(1..=40).collect::<Vec<i64>>()),
        Term::Tuple((0..30).map(|i| Term::atom(&format!("atom_{i}"))).collect()),
    ];
    // Maps of 32 keys (printed in key order by erl) and of 40 (hash order: not compared).
    for size in [32, 33, 40] {
        terms.push(Term::Map(
            (0..size)
                .rev()
                .map(|i| (Term::Int(i), Term::atom("v")))
                .collect(),
        ));
    }
    terms
}

/// Floats of many magnitudes, around the points where `~p` switches between fixed and
/// scientific notation, around 2^53, and pseudo-random bit patterns.
fn floats() -> Vec<f64> {
    let mut out = Vec::new();
    for exponent in (-324..=308).step_by(7) {
        for mantissa in [
            "1",
            "1.5",
            "1.2345678901234567",
            "9.999999999999998",
            "6.02214076",
        ] {
            let value: f64 = format!("{mantissa}e{exponent}").parse().expect("a float");
            if value.is_finite() && value != 0.0 {
                out.push(value);
            }
        }
    }
    for power in -9..=22 {
        for mantissa in ["1", "1.2", "1.23", "1.234", "5", "9.5", "1.0000001"] {
            out.push(format!("{mantissa}e{power}").parse().expect("a float"));
        }
    }
    let two_53 = 9_007_199_254_740_992.0f64;
    for k in 0..4 {
        out.extend([
            two_53 - k as f64,
            two_53 + 2.0 * k as f64,
            -(two_53 - k as f64),
        ]);
    }
    out.extend([
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::EPSILON,
        0.1 + 0.2,
        1.0 / 3.0,
        -0.0,
    ]);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..300 {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let value = f64::from_bits(state);
        if value.is_finite() {
            out.push(value);
        }
    }
    out
}

/// Erlang code run by `erl -noshell -eval ... -extra IN OUT`.
const ERL_PROGRAM: &str = r#"
[In, Out] = init:get_plain_arguments(),
{ok, Input} = file:read_file(In),
Read = fun(none, _) -> none;
          (Text, T) ->
              try
                  {ok, Tokens, _} = erl_scan:string(unicode:characters_to_list(Text) ++ " ."),
                  {ok, Exprs} = erl_parse:parse_exprs(Tokens),
                  {value, V, _} = erl_eval:exprs(Exprs, []),
                  case V =:= T of
                      true -> same;
                      false -> {different, V}
                  end
              catch Class:Reason ->
                  {error, unicode:characters_to_binary(io_lib:format("~p:~p", [Class, Reason]))}
              end
       end,
Print = fun(Format, T) ->
            unicode:characters_to_binary(lists:flatten(io_lib:format(Format, [T])))
        end,
Results = [{Print("~p", T), Print("~1000000p", T), Read(Text, T)}
           || {Text, T} <- binary_to_term(Input)],
ok = file:write_file(Out, term_to_binary(Results)),
halt().
"#;

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether a map of more than 32 keys is inside (erl prints those in hash order).
fn has_large_map(term: &Term) -> bool {
    match term {
        Term::Map(pairs) => {
            pairs.len() > 32
                || pairs
                    .iter()
                    .any(|(k, v)| has_large_map(k) || has_large_map(v))
        }
        Term::List(items) | Term::Tuple(items) => items.iter().any(has_large_map),
        Term::ImproperList(items, tail) => items.iter().any(has_large_map) || has_large_map(tail),
        _ => false,
    }
}

/// Our output where it differs from erl's on purpose: `maybe` and `else` are quoted (reserved
/// from OTP 27; OTP 25 and 26 print them bare).
fn with_otp_26_quoting(ours: &str) -> String {
    ours.replace("'maybe'", "maybe").replace("'else'", "else")
}

/// Exports whose atoms erl prints by the emulator's own rules (`fun_to_list/1`), not
/// `io_lib`'s: reserved words bare, `@` quoted, other characters as UTF-8 bytes read as
/// Latin-1. Its output may not read back (`fun m:end/255`); `format_term` quotes these atoms
/// as it quotes any atom.
const EXPORTS_ERL_PRINTS_OTHERWISE: &[&str] = &["fun m:'end'/255", "fun 'a@b':'é'/0"];

fn binary_text(term: &Term) -> String {
    match term {
        Term::Binary(b) => String::from_utf8(b.to_vec()).expect("erl wrote UTF-8"),
        other => panic!("expected a binary from erl, got {other:?}"),
    }
}

#[test]
fn format_and_parse_agree_with_erl() {
    if !have_erl() {
        return;
    }
    let mut cases: Vec<(Option<&str>, Term)> = TEXTS
        .iter()
        .map(|&text| {
            let term = parse_term(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            (Some(text), term)
        })
        .collect();
    let corpus_size = cases.len() + built_terms().len();
    cases.extend(built_terms().into_iter().map(|t| (None, t)));
    let float_count = floats().len();
    cases.extend(floats().into_iter().map(|f| (None, Term::Float(f))));

    let dir = TempDir(std::env::temp_dir().join(random_name("erlnode_term_syntax_")));
    std::fs::create_dir(&dir.0).expect("create a temporary directory");
    let (input, output) = (dir.0.join("in.etf"), dir.0.join("out.etf"));
    let input_term = Term::List(
        cases
            .iter()
            .map(|(text, term)| {
                let text = match text {
                    Some(text) => Term::Binary(Bytes::copy_from_slice(text.as_bytes())),
                    None => Term::atom("none"),
                };
                Term::Tuple(vec![text, term.clone()])
            })
            .collect(),
    );
    std::fs::write(&input, encode(&input_term)).expect("write the cases");
    let run = Command::new("erl")
        .args(["-noshell", "-eval", ERL_PROGRAM, "-extra"])
        .arg(&input)
        .arg(&output)
        .output()
        .expect("run erl");
    assert!(
        run.status.success(),
        "erl failed: {}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let results = decode(&std::fs::read(&output).expect("erl's answers")).expect("decodes");
    let Term::List(results) = results else {
        panic!("expected a list from erl, got {results:?}");
    };
    assert_eq!(results.len(), cases.len());

    let mut failures = Vec::new();
    let (mut one_line, mut one_line_exact, mut deliberate) = (0, 0, 0);
    let (mut long, mut long_exact) = (0, 0);
    for ((text, term), result) in cases.iter().zip(&results) {
        let [pretty, wide, read] = result.as_tuple().expect("a tuple") else {
            panic!("expected {{Pretty, Wide, Read}}, got {result:?}");
        };
        let (pretty, wide) = (binary_text(pretty), binary_text(wide));
        let ours = format_term(term);
        let name = text.map_or_else(|| ours.clone(), str::to_string);

        let expected = if !pretty.contains('\n') {
            one_line += 1;
            Some(&pretty)
        } else if !has_large_map(term) {
            long += 1;
            Some(&wide)
        } else {
            None
        };
        let erl_prints_otherwise = text.is_some_and(|t| EXPORTS_ERL_PRINTS_OTHERWISE.contains(&t));
        if erl_prints_otherwise {
            deliberate += 1;
            if ours == pretty {
                failures.push(format!("{name}: erl now prints it as format_term does"));
            }
        } else if let Some(expected) = expected {
            if &ours == expected {
                if expected == &pretty {
                    one_line_exact += 1;
                } else {
                    long_exact += 1;
                }
            } else if &with_otp_26_quoting(&ours) == expected {
                deliberate += 1;
            } else {
                failures.push(format!(
                    "{name}: format_term gives {ours}, erl prints {expected}"
                ));
            }
        }

        for printed in [&pretty, &wide]
            .into_iter()
            .filter(|_| !erl_prints_otherwise)
        {
            match parse_term(printed) {
                Ok(back) if exactly_equal(&back, term) => {}
                Ok(back) => failures.push(format!("{name}: erl's {printed} parses as {back:?}")),
                Err(e) => failures.push(format!("{name}: erl's {printed} does not parse: {e}")),
            }
        }

        match (text, read.as_atom()) {
            (None, Some("none")) | (Some(_), Some("same")) => {}
            (Some(text), _) => failures.push(format!("{text}: erl reads it otherwise: {read:?}")),
            (None, _) => failures.push(format!("{name}: unexpected answer {read:?}")),
        }
    }
    eprintln!(
        "term_syntax: {corpus_size} terms and {float_count} floats; ~p on one line: {one_line} \
         compared, {one_line_exact} exact, {deliberate} differ on purpose (maybe/else quoted, export atoms); \
         longer terms at a long line length: {long} compared, {long_exact} exact"
    );
    assert!(
        failures.is_empty(),
        "{} disagreements with erl:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(one_line_exact + deliberate + long_exact, one_line + long);
}
