//! Tokens to a [`Term`]: recursive descent, one token of lookahead.

use super::lex::{Lexer, Tok, Token, RESERVED};
use super::natural::Natural;
use super::order::{exactly_equal, term_order};
use super::{SyntaxError, MAX_DEPTH};
use crate::etf::decode::{big_to_term, STACK_RED_ZONE, STACK_SEGMENT};
use crate::etf::term::{Atom, Pid, Port, Reference, Term};
use bytes::Bytes;

pub(super) fn parse(text: &str) -> Result<Term, SyntaxError> {
    let mut lexer = Lexer::new(text);
    let next = lexer.next_token()?;
    let mut parser = Parser {
        lexer,
        next,
        depth: 0,
    };
    let term = parser.term()?;
    let mut after = "after the term";
    if parser.next.tok == Tok::Punct(".") {
        parser.advance()?;
        after = "after '.'";
    }
    if parser.next.tok != Tok::End {
        return Err(parser.unexpected(&format!("expected end of input {after}")));
    }
    Ok(term)
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    /// The lookahead token.
    next: Token,
    /// How many lists, tuples, maps and binaries are open.
    depth: usize,
}

impl Parser<'_> {
    /// Takes the lookahead token and reads the one after it.
    fn advance(&mut self) -> Result<Token, SyntaxError> {
        let following = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.next, following))
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> SyntaxError {
        self.lexer.error(offset, message)
    }

    /// `"{expected}, found {the lookahead token}"`, at the lookahead token.
    fn unexpected(&self, expected: &str) -> SyntaxError {
        self.error(
            self.next.start,
            format!("{expected}, found {}", describe(&self.next.tok)),
        )
    }

    /// Consumes the lookahead token if it is `punct`.
    fn eat(&mut self, punct: &str) -> Result<bool, SyntaxError> {
        if matches!(self.next.tok, Tok::Punct(p) if p == punct) {
            self.advance()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Opens a container at `start`, refusing to go deeper than [`MAX_DEPTH`].
    fn enter(&mut self, start: usize) -> Result<(), SyntaxError> {
        if self.depth == MAX_DEPTH {
            return Err(self.error(
                start,
                format!("terms nested more than {MAX_DEPTH} levels deep are not supported"),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn term(&mut self) -> Result<Term, SyntaxError> {
        stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || self.term_inner())
    }

    fn term_inner(&mut self) -> Result<Term, SyntaxError> {
        if matches!(self.next.tok, Tok::End | Tok::Var(_))
            || matches!(self.next.tok, Tok::Punct(p) if !["-", "+", "[", "{", "#{", "<<"].contains(&p))
        {
            return Err(self.unexpected("expected a term"));
        }
        let token = self.advance()?;
        Ok(match token.tok {
            Tok::Atom { name, quoted } => {
                if !quoted && name == "fun" {
                    return self.export();
                }
                if !quoted && RESERVED.contains(&name.as_str()) {
                    return Err(self.error(
                        token.start,
                        format!("{name} is a reserved word; write '{name}' for the atom"),
                    ));
                }
                if self.next.tok == Tok::Punct("(") {
                    return Err(self.error(
                        self.next.start,
                        "function calls are not allowed, only literal terms",
                    ));
                }
                Term::Atom(Atom::new(&name))
            }
            Tok::Int(n) => integer(false, &n),
            Tok::Float(f) => Term::Float(f),
            Tok::Punct(sign @ ("-" | "+")) => {
                let negative = sign == "-";
                match &self.next.tok {
                    Tok::Int(n) => {
                        let term = integer(negative, n);
                        self.advance()?;
                        term
                    }
                    Tok::Float(f) => {
                        let term = Term::Float(if negative { -f } else { *f });
                        self.advance()?;
                        term
                    }
                    _ => return Err(self.unexpected(&format!("expected a number after '{sign}'"))),
                }
            }
            Tok::Str(mut codes) => {
                while let Tok::Str(more) = &self.next.tok {
                    codes.extend_from_slice(more);
                    self.advance()?;
                }
                string(codes)
            }
            Tok::Punct("[") => self.list(token.start)?,
            Tok::Punct("{") => self.tuple(token.start)?,
            Tok::Punct("#{") => self.map(token.start)?,
            Tok::Punct("<<") => self.binary(token.start)?,
            Tok::Pid { node, id, serial } => Term::Pid(Pid {
                node: Atom::new(&node),
                id,
                serial,
                creation: 0,
            }),
            Tok::Port { node, id } => Term::Port(Port {
                node: Atom::new(&node),
                id,
                creation: 0,
            }),
            Tok::Ref { node, mut words } => {
                words.reverse();
                Term::Reference(Reference {
                    node: Atom::new(&node),
                    creation: 0,
                    ids: words,
                })
            }
            Tok::Var(_) | Tok::Punct(_) | Tok::End => unreachable!("refused above"),
        })
    }

    /// `fun Module:Function/Arity`, `fun` read.
    fn export(&mut self) -> Result<Term, SyntaxError> {
        let expected =
            "expected Module:Function/Arity after 'fun' (closures cannot be written as text)";
        let module = self.atom(expected)?;
        if !self.eat(":")? {
            return Err(self.unexpected(expected));
        }
        let function = self.atom(expected)?;
        if !self.eat("/")? {
            return Err(self.unexpected(expected));
        }
        let arity = match &self.next.tok {
            Tok::Int(n) => n
                .to_u64()
                .and_then(|a| u8::try_from(a).ok())
                .ok_or_else(|| {
                    self.error(self.next.start, "the arity of a fun must be 0 to 255")
                })?,
            _ => return Err(self.unexpected(expected)),
        };
        self.advance()?;
        Ok(Term::Export {
            module,
            function,
            arity,
        })
    }

    /// An atom usable as a module or function name.
    fn atom(&mut self, expected: &str) -> Result<Atom, SyntaxError> {
        match &self.next.tok {
            Tok::Atom { name, quoted } if *quoted || !RESERVED.contains(&name.as_str()) => {
                let atom = Atom::new(name);
                self.advance()?;
                Ok(atom)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    /// `[...]`, `[` read at `start`.
    ///
    /// A tail written as a list, `[a | [b | [c]]]`, is read on as more elements of the same
    /// list (not by recursion), so long chains of conses take linear time and no depth.
    fn list(&mut self, start: usize) -> Result<Term, SyntaxError> {
        self.enter(start)?;
        let mut items = Vec::new();
        let mut tail = None;
        // How many `]` are still to come: one per `[` opened by a `|[` tail.
        let mut open = 1;
        'list: loop {
            // Just after a `[`.
            if self.eat("]")? {
                open -= 1;
                break;
            }
            loop {
                items.push(self.term()?);
                if self.eat(",")? {
                    continue;
                }
                if self.eat("|")? {
                    if self.eat("[")? {
                        open += 1;
                        continue 'list;
                    }
                    tail = Some(self.term()?);
                    break 'list;
                }
                if self.eat("]")? {
                    open -= 1;
                    break 'list;
                }
                return Err(self.unexpected("expected ',', '|' or ']'"));
            }
        }
        for _ in 0..open {
            if !self.eat("]")? {
                return Err(self.unexpected("expected ']' after the tail of a list"));
            }
        }
        self.depth -= 1;
        Ok(match tail {
            Some(tail) => with_tail(items, tail),
            None => Term::List(items),
        })
    }

    /// `{...}`, `{` read at `start`.
    fn tuple(&mut self, start: usize) -> Result<Term, SyntaxError> {
        self.enter(start)?;
        let mut items = Vec::new();
        if !self.eat("}")? {
            loop {
                items.push(self.term()?);
                if self.eat(",")? {
                    continue;
                }
                if self.eat("}")? {
                    break;
                }
                return Err(self.unexpected("expected ',' or '}'"));
            }
        }
        self.depth -= 1;
        Ok(Term::Tuple(items))
    }

    /// `#{...}`, `#{` read at `start`.
    fn map(&mut self, start: usize) -> Result<Term, SyntaxError> {
        self.enter(start)?;
        let mut pairs = Vec::new();
        if !self.eat("}")? {
            loop {
                let key = self.term()?;
                if self.next.tok == Tok::Punct(":=") {
                    return Err(self.error(
                        self.next.start,
                        "':=' updates an existing map; write '=>' to build one",
                    ));
                }
                if !self.eat("=>")? {
                    return Err(self.unexpected("expected '=>' after a map key"));
                }
                let value = self.term()?;
                pairs.push((key, value));
                if self.eat(",")? {
                    continue;
                }
                if self.eat("}")? {
                    break;
                }
                return Err(self.unexpected("expected ',' or '}'"));
            }
        }
        self.depth -= 1;
        Ok(Term::Map(last_of_each_key(pairs)))
    }

    /// `<<...>>`, `<<` read at `start`.
    fn binary(&mut self, start: usize) -> Result<Term, SyntaxError> {
        self.enter(start)?;
        let mut bits = BitWriter::default();
        if !self.eat(">>")? {
            loop {
                self.segment(&mut bits)?;
                if self.eat(",")? {
                    continue;
                }
                if self.eat(">>")? {
                    break;
                }
                return Err(self.unexpected("expected ',' or '>>'"));
            }
        }
        self.depth -= 1;
        Ok(bits.finish())
    }

    /// One segment of a binary: a string (optionally `/utf8`), or an integer (optionally
    /// `:Size` in bits).
    fn segment(&mut self, bits: &mut BitWriter) -> Result<(), SyntaxError> {
        let start = self.next.start;
        if let Tok::Str(first) = &self.next.tok {
            let mut codes = first.clone();
            self.advance()?;
            while let Tok::Str(more) = &self.next.tok {
                codes.extend_from_slice(more);
                self.advance()?;
            }
            if self.eat("/")? {
                match &self.next.tok {
                    Tok::Atom { name, .. } if name == "utf8" => {
                        self.advance()?;
                    }
                    _ => {
                        return Err(
                            self.unexpected("expected utf8 after '/' (the one type supported)")
                        )
                    }
                }
                for code in codes {
                    let c = char::from_u32(code).expect("the lexer checks characters");
                    let mut buffer = [0u8; 4];
                    for &byte in c.encode_utf8(&mut buffer).as_bytes() {
                        bits.push(byte as u64, 8);
                    }
                }
            } else {
                if let Some(&wide) = codes.iter().find(|&&c| c > 255) {
                    return Err(self.error(
                        start,
                        format!(
                            "character {wide} does not fit in a byte; write \"...\"/utf8 for UTF-8"
                        ),
                    ));
                }
                for code in codes {
                    bits.push(code as u64, 8);
                }
            }
            if self.next.tok == Tok::Punct(":") {
                return Err(self.error(self.next.start, "a string segment takes no size"));
            }
            return Ok(());
        }
        let negative = match self.next.tok {
            Tok::Punct("-") => {
                self.advance()?;
                true
            }
            Tok::Punct("+") => {
                self.advance()?;
                false
            }
            _ => false,
        };
        let value = match &self.next.tok {
            Tok::Int(n) => n.clone(),
            Tok::Float(_) => {
                return Err(self.error(
                    self.next.start,
                    "float segments are not supported, only integers and strings",
                ))
            }
            _ => return Err(self.unexpected("expected an integer or a string in a binary")),
        };
        self.advance()?;
        let size = if self.eat(":")? {
            let size = match &self.next.tok {
                Tok::Int(n) => n.to_u64().filter(|&s| s <= MAX_SEGMENT_BITS),
                _ => return Err(self.unexpected("expected a size in bits after ':'")),
            };
            let size = size.ok_or_else(|| {
                self.error(
                    self.next.start,
                    format!("a segment size must be at most {MAX_SEGMENT_BITS} bits"),
                )
            })?;
            self.advance()?;
            size
        } else {
            8
        };
        if self.next.tok == Tok::Punct("/") {
            return Err(self.error(
                self.next.start,
                "type specifiers are not supported on integer segments",
            ));
        }
        let written = if negative { "-" } else { "" };
        let bytes = twos_complement(negative, &value, size).ok_or_else(|| {
            self.error(
                start,
                format!(
                    "{written}{} does not fit in {size} bits",
                    value.to_decimal()
                ),
            )
        })?;
        // The low `size` bits, most significant first.
        for bit in (0..size).rev() {
            let byte = bytes[(bit / 8) as usize];
            bits.push(((byte >> (bit % 8)) & 1) as u64, 1);
        }
        Ok(())
    }
}

/// The largest size an integer segment may have (bits).
const MAX_SEGMENT_BITS: u64 = 1 << 20;

/// What a token is, for error messages.
fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Atom { name, quoted: true } => format!("the atom '{name}'"),
        Tok::Atom { name, .. } if RESERVED.contains(&name.as_str()) => {
            format!("the reserved word {name}")
        }
        Tok::Atom { name, .. } => format!("the atom {name}"),
        Tok::Var(name) => format!("the variable {name} (only literal terms are allowed)"),
        Tok::Int(n) => {
            let digits = n.to_decimal();
            if digits.len() > 20 {
                "an integer".to_string()
            } else {
                format!("the integer {digits}")
            }
        }
        Tok::Float(_) => "a float".to_string(),
        Tok::Str(_) => "a string".to_string(),
        Tok::Pid { .. } => "a pid".to_string(),
        Tok::Port { .. } => "a port".to_string(),
        Tok::Ref { .. } => "a reference".to_string(),
        Tok::Punct(
            p @ ("(" | ")" | "[" | "]" | "{" | "}" | "#{" | "<<" | ">>" | "," | "|" | "." | "=>"
            | ":"),
        ) => {
            format!("'{p}'")
        }
        Tok::Punct(p) => format!("the operator '{p}' (only literal terms are allowed)"),
        Tok::End => "end of input".to_string(),
    }
}

/// An integer term from sign and magnitude.
fn integer(negative: bool, magnitude: &Natural) -> Term {
    big_to_term(negative, &magnitude.to_le_bytes())
}

/// A string literal: bytes when every character is below 256, else a list of integers;
/// `""` is `[]`.
fn string(codes: Vec<u32>) -> Term {
    if codes.iter().all(|&c| c < 256) && !codes.is_empty() {
        Term::String(codes.into_iter().map(|c| c as u8).collect())
    } else {
        Term::List(codes.into_iter().map(|c| Term::Int(c as i64)).collect())
    }
}

/// `[items | tail]`: one list when the tail is a list, as in Erlang.
fn with_tail(mut items: Vec<Term>, tail: Term) -> Term {
    match tail {
        Term::List(rest) => {
            items.extend(rest);
            Term::List(items)
        }
        Term::String(bytes) => {
            items.extend(bytes.into_iter().map(|b| Term::Int(b as i64)));
            Term::List(items)
        }
        Term::ImproperList(rest, tail) => {
            items.extend(rest);
            Term::ImproperList(items, tail)
        }
        tail => Term::ImproperList(items, Box::new(tail)),
    }
}

/// The pairs of a map literal with each repeated key's last value (as Erlang evaluates
/// `#{a => 1, a => 2}`), in the order written.
fn last_of_each_key(pairs: Vec<(Term, Term)>) -> Vec<(Term, Term)> {
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by(|&a, &b| term_order(&pairs[a].0, &pairs[b].0).then(a.cmp(&b)));
    let mut keep = vec![true; pairs.len()];
    for window in order.windows(2) {
        if exactly_equal(&pairs[window[0]].0, &pairs[window[1]].0) {
            keep[window[0]] = false;
        }
    }
    pairs
        .into_iter()
        .zip(keep)
        .filter_map(|(pair, keep)| keep.then_some(pair))
        .collect()
}

/// The low `size` bits of `±magnitude` in two's complement, as little-endian bytes, or `None`
/// when the value does not fit (a negative value needs `-2^(size-1) <= value`, a positive one
/// `value < 2^size`).
fn twos_complement(negative: bool, magnitude: &Natural, size: u64) -> Option<Vec<u8>> {
    let len = size.div_ceil(8) as usize;
    let mut bytes = magnitude.to_le_bytes();
    let magnitude_bits = match bytes.last() {
        None => 0,
        Some(&high) => (bytes.len() as u64 - 1) * 8 + (8 - high.leading_zeros() as u64),
    };
    let is_power_of_two = magnitude_bits > 0
        && bytes[..bytes.len() - 1].iter().all(|&b| b == 0)
        && bytes[bytes.len() - 1].is_power_of_two();
    let fits = if negative && magnitude_bits > 0 {
        // -2^(size-1) needs size bits; any other negative value one more than its magnitude.
        magnitude_bits < size || (is_power_of_two && magnitude_bits == size)
    } else {
        magnitude_bits <= size
    };
    if !fits {
        return None;
    }
    bytes.resize(len, 0);
    if negative {
        let mut carry = true;
        for byte in &mut bytes {
            let (sum, overflow) = (!*byte).overflowing_add(carry as u8);
            *byte = sum;
            carry = overflow;
        }
    }
    Some(bytes)
}

/// Bits appended one segment at a time.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 = it is full, or there is none).
    used: u8,
}

impl BitWriter {
    /// Appends the low `count` (1..=8) bits of `value`, most significant first.
    fn push(&mut self, value: u64, count: u8) {
        for i in (0..count).rev() {
            let bit = ((value >> i) & 1) as u8;
            if self.used == 0 {
                self.bytes.push(0);
            }
            let last = self.bytes.last_mut().expect("pushed above");
            *last |= bit << (7 - self.used);
            self.used = (self.used + 1) % 8;
        }
    }

    fn finish(self) -> Term {
        if self.used == 0 {
            Term::Binary(Bytes::from(self.bytes))
        } else {
            Term::BitBinary {
                data: Bytes::from(self.bytes),
                bits: self.used,
            }
        }
    }
}
