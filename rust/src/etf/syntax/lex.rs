//! Text to tokens: Erlang's tokens for literals, and the pid, port and reference forms of
//! erlnode. Operators are recognised only to name them in errors.

use super::natural::Natural;
use super::SyntaxError;

/// Erlang's reserved words: as atoms they must be quoted.
pub(super) const RESERVED: &[&str] = &[
    "after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor", "case",
    "catch", "cond", "div", "end", "fun", "if", "let", "not", "of", "or", "orelse", "receive",
    "rem", "try", "when", "xor",
];

/// Reserved from OTP 27 (the `maybe` expression): printed quoted, which every release reads,
/// and read bare too, as OTP 25 and 26 print them.
pub(super) const RESERVED_FROM_OTP_27: &[&str] = &["else", "maybe"];

/// Punctuation and operators, longest first so that `=:=` is not read as `=` then `:=`.
/// `<` and `#` are handled before this table (pids, `#Ref<...>`, `#{`).
const PUNCTUATION: &[&str] = &[
    "=:=", "=/=", "...", "<<", ">>", "#{", "=>", ":=", "::", "||", "==", "/=", "=<", ">=", "->",
    "<-", "<=", "++", "--", "(", ")", "[", "]", "{", "}", ",", "|", ":", "/", "-", "+", ".", "*",
    "=", ">", "<", "!", "?", ";", "#",
];

/// Whether an unquoted atom may start with `c` (a lowercase Latin-1 letter).
pub(super) fn is_atom_start(c: char) -> bool {
    c.is_ascii_lowercase() || (('ß'..='ÿ').contains(&c) && c != '÷')
}

/// Whether a variable starts with `c` (an uppercase Latin-1 letter or `_`).
fn is_variable_start(c: char) -> bool {
    c.is_ascii_uppercase() || (('À'..='Þ').contains(&c) && c != '×') || c == '_'
}

/// Whether `c` may follow the first character of an unquoted atom or a variable.
pub(super) fn is_name_char(c: char) -> bool {
    is_atom_start(c) || is_variable_start(c) || c.is_ascii_digit() || c == '@'
}

/// Whether `c` may appear in a node name written bare in a pid, port or reference.
fn is_bare_node_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '@' | '.')
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    /// An atom. `quoted` tells `'fun'` (an atom) from `fun` (a reserved word).
    Atom {
        name: String,
        quoted: bool,
    },
    Var(String),
    /// An integer without its sign (a separate `-` token); a character literal is one too.
    Int(Natural),
    Float(f64),
    /// A string literal's characters.
    Str(Vec<u32>),
    Pid {
        node: String,
        id: u32,
        serial: u32,
    },
    Port {
        node: String,
        id: u64,
    },
    /// The words as written: most significant first.
    Ref {
        node: String,
        words: Vec<u32>,
    },
    Punct(&'static str),
    End,
}

/// A token and the byte offset where it starts.
#[derive(Clone, Debug)]
pub(super) struct Token {
    pub tok: Tok,
    pub start: usize,
}

/// What a pid-like form is: how many numbers follow its node name.
#[derive(Clone, Copy, PartialEq)]
enum Identifier {
    Pid,
    Port,
    Ref,
}

pub(super) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(text: &'a str) -> Lexer<'a> {
        Lexer { text, pos: 0 }
    }

    pub(super) fn error(&self, offset: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError::at(self.text, offset, message)
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// The character after the next one.
    fn peek_second(&self) -> Option<char> {
        let mut chars = self.rest().chars();
        chars.next();
        chars.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_blanks(&mut self) {
        while let Some(c) = self.peek() {
            if c == '%' {
                let end = self
                    .rest()
                    .find('\n')
                    .map_or(self.text.len(), |i| self.pos + i);
                self.pos = end;
            } else if c.is_whitespace() || c.is_control() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    pub(super) fn next_token(&mut self) -> Result<Token, SyntaxError> {
        self.skip_blanks();
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(Token {
                tok: Tok::End,
                start,
            });
        };
        let tok = if c.is_ascii_digit() {
            self.number(start)?
        } else if is_atom_start(c) {
            let name = self.name();
            Tok::Atom {
                name: name.to_string(),
                quoted: false,
            }
        } else if is_variable_start(c) {
            Tok::Var(self.name().to_string())
        } else {
            match c {
                '\'' => {
                    self.bump();
                    let name = self.quoted_atom(start)?;
                    Tok::Atom { name, quoted: true }
                }
                '"' => {
                    self.bump();
                    Tok::Str(self.quoted(start, '"')?)
                }
                '$' => {
                    self.bump();
                    let code = match self.bump() {
                        Some('\\') => self.escape(self.pos - 1)?,
                        Some(c) => c as u32,
                        None => return Err(self.error(start, "expected a character after '$'")),
                    };
                    Tok::Int(Natural::from_u64(code as u64))
                }
                '<' if !self.rest().starts_with("<<")
                    && !self.rest().starts_with("<=")
                    && !self.rest().starts_with("<-") =>
                {
                    self.bump();
                    self.identifier(start, Identifier::Pid)?
                }
                '#' => self.hash(start)?,
                _ => match PUNCTUATION.iter().find(|p| self.rest().starts_with(**p)) {
                    Some(p) => {
                        self.pos += p.len();
                        Tok::Punct(p)
                    }
                    None => {
                        return Err(self.error(start, format!("unexpected character {c:?}")));
                    }
                },
            }
        };
        Ok(Token { tok, start })
    }

    /// Name characters from here (the first one already known to start a name).
    fn name(&mut self) -> &'a str {
        let start = self.pos;
        self.bump();
        while self.peek().is_some_and(is_name_char) {
            self.bump();
        }
        &self.text[start..self.pos]
    }

    /// `#{`, `#Ref<...>`, `#Port<...>`; records, closures and the rest are errors.
    fn hash(&mut self, start: usize) -> Result<Tok, SyntaxError> {
        let rest = &self.rest()[1..];
        if rest.starts_with('{') {
            self.pos += 2;
            return Ok(Tok::Punct("#{"));
        }
        if rest.starts_with("Ref<") {
            self.pos += 5;
            return self.identifier(start, Identifier::Ref);
        }
        if rest.starts_with("Port<") {
            self.pos += 6;
            return self.identifier(start, Identifier::Port);
        }
        if rest.starts_with("Fun<") {
            return Err(self.error(start, "a closure (#Fun<...>) cannot be written as text"));
        }
        if rest.starts_with("Float<") {
            return Err(self.error(start, "Erlang has no NaN or infinite floats"));
        }
        if rest.starts_with(is_atom_start) || rest.starts_with('\'') {
            return Err(self.error(start, "records (#name{...}) are not supported"));
        }
        self.pos += 1;
        Ok(Tok::Punct("#"))
    }

    /// The rest of a pid (`<` read), port or reference (`#Port<`, `#Ref<` read): a node name,
    /// bare or quoted, its numbers, then `>`.
    fn identifier(&mut self, start: usize, kind: Identifier) -> Result<Tok, SyntaxError> {
        let example = match kind {
            Identifier::Pid => "<node@host.42.0>",
            Identifier::Port => "#Port<node@host.5>",
            Identifier::Ref => "#Ref<node@host.3.2.1>",
        };
        let (node, numbers) = if self.peek() == Some('\'') {
            let quote = self.pos;
            self.bump();
            let node = self.quoted_atom(quote)?;
            let mut numbers = Vec::new();
            while self.peek() == Some('.') {
                self.bump();
                let digits_start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
                if self.pos == digits_start {
                    return Err(self.error(self.pos, format!("expected a number, as in {example}")));
                }
                numbers.push(&self.text[digits_start..self.pos]);
            }
            (node, numbers)
        } else {
            let run_start = self.pos;
            while self.peek().is_some_and(is_bare_node_char) {
                self.bump();
            }
            let run = &self.text[run_start..self.pos];
            if run.is_empty() {
                let what = if kind == Identifier::Pid {
                    "'<' starts a pid here; "
                } else {
                    ""
                };
                return Err(self.error(start, format!("{what}expected a form such as {example}")));
            }
            split_bare(run, kind).map_err(|message| self.error(start, message))?
        };
        if self.peek() != Some('>') {
            return Err(self.error(self.pos, format!("expected '>' to end the form {example}")));
        }
        self.bump();
        let number = |text: &str| -> Result<u64, SyntaxError> {
            text.parse()
                .map_err(|_| self.error(start, format!("the number {text} is too large")))
        };
        let word = |text: &str| -> Result<u32, SyntaxError> {
            number(text)?
                .try_into()
                .map_err(|_| self.error(start, format!("{text} does not fit in 32 bits")))
        };
        let wrong_count = || self.error(start, format!("expected a form such as {example}"));
        Ok(match kind {
            Identifier::Pid => match numbers.as_slice() {
                [id, serial] => Tok::Pid {
                    node,
                    id: word(id)?,
                    serial: word(serial)?,
                },
                _ => return Err(wrong_count()),
            },
            Identifier::Port => match numbers.as_slice() {
                [id] => Tok::Port {
                    node,
                    id: number(id)?,
                },
                _ => return Err(wrong_count()),
            },
            Identifier::Ref => {
                if numbers.is_empty() || numbers.len() > 5 {
                    return Err(self.error(
                        start,
                        format!("a reference has 1 to 5 words, as in {example}"),
                    ));
                }
                Tok::Ref {
                    node,
                    words: numbers.iter().map(|n| word(n)).collect::<Result<_, _>>()?,
                }
            }
        })
    }

    /// An unsigned integer or a float, first digit next.
    fn number(&mut self, start: usize) -> Result<Tok, SyntaxError> {
        let digits = self.digits(10);
        if self.peek() == Some('#') {
            let base = digits
                .iter()
                .try_fold(0u32, |acc, &d| acc.checked_mul(10)?.checked_add(d as u32))
                .filter(|b| (2..=36).contains(b))
                .ok_or_else(|| self.error(start, "the base of an integer must be 2 to 36"))?;
            self.bump();
            let value = self.digits(base);
            if value.is_empty() {
                return Err(self.error(self.pos, format!("expected digits in base {base}")));
            }
            self.check_number_end(base)?;
            return Ok(Tok::Int(Natural::from_digits(&value, base)));
        }
        let fraction_follows =
            self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit());
        if !fraction_follows {
            self.check_number_end(10)?;
            return Ok(Tok::Int(Natural::from_digits(&digits, 10)));
        }
        self.bump();
        let fraction = self.digits(10);
        let mut text = decimal(&digits);
        text.push('.');
        text.push_str(&decimal(&fraction));
        if matches!(self.peek(), Some('e' | 'E')) {
            let mut after = self.rest().chars().skip(1);
            let exponent_follows = match after.next() {
                Some('+' | '-') => after.next().is_some_and(|c| c.is_ascii_digit()),
                Some(c) => c.is_ascii_digit(),
                None => false,
            };
            if exponent_follows {
                self.bump();
                text.push('e');
                if let Some(sign @ ('+' | '-')) = self.peek() {
                    self.bump();
                    text.push(sign);
                }
                text.push_str(&decimal(&self.digits(10)));
            }
        }
        self.check_number_end(10)?;
        let value: f64 = text.parse().expect("digits, a point, digits, an exponent");
        if !value.is_finite() {
            return Err(self.error(start, "the float is too large"));
        }
        Ok(Tok::Float(value))
    }

    /// Digit values in `base`, with `_` allowed between two digits.
    fn digits(&mut self, base: u32) -> Vec<u8> {
        let mut digits = Vec::new();
        loop {
            match self.peek() {
                Some(c) if c.is_digit(base) => {
                    digits.push(c.to_digit(base).expect("checked") as u8);
                    self.bump();
                }
                Some('_')
                    if !digits.is_empty()
                        && self.peek_second().is_some_and(|c| c.is_digit(base)) =>
                {
                    self.bump();
                }
                _ => return digits,
            }
        }
    }

    /// A number must not run into a name (`12ab`, `2#102`).
    fn check_number_end(&self, base: u32) -> Result<(), SyntaxError> {
        match self.peek() {
            Some('_') => Err(self.error(self.pos, "'_' in a number must stand between two digits")),
            Some(c) if c.is_alphanumeric() => Err(self.error(
                self.pos,
                if c.is_ascii_alphanumeric() && base != 10 {
                    format!("{c:?} is not a digit in base {base}")
                } else {
                    format!("{c:?} cannot follow a number")
                },
            )),
            _ => Ok(()),
        }
    }

    /// The characters of a quoted atom (the quote at `start` read) as a string.
    fn quoted_atom(&mut self, start: usize) -> Result<String, SyntaxError> {
        let codes = self.quoted(start, '\'')?;
        Ok(codes
            .into_iter()
            .map(|c| char::from_u32(c).expect("escapes give Unicode scalar values"))
            .collect())
    }

    /// The characters up to the closing `quote` (the opening one, at `start`, read).
    fn quoted(&mut self, start: usize, quote: char) -> Result<Vec<u32>, SyntaxError> {
        let mut codes = Vec::new();
        loop {
            match self.bump() {
                None => {
                    let what = if quote == '"' {
                        "string"
                    } else {
                        "quoted atom"
                    };
                    return Err(self.error(start, format!("unterminated {what}")));
                }
                Some(c) if c == quote => return Ok(codes),
                Some('\\') => codes.push(self.escape(self.pos - 1)?),
                Some(c) => codes.push(c as u32),
            }
        }
    }

    /// The character an escape stands for (the backslash, at `start`, read).
    fn escape(&mut self, start: usize) -> Result<u32, SyntaxError> {
        let Some(c) = self.bump() else {
            return Err(self.error(start, "unterminated escape sequence"));
        };
        let code = match c {
            '0'..='7' => {
                let mut value = c.to_digit(8).expect("octal");
                for _ in 0..2 {
                    match self.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                value
            }
            'x' if self.peek() == Some('{') => {
                self.bump();
                let digits_start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                    self.bump();
                }
                let hex = &self.text[digits_start..self.pos];
                if hex.is_empty() || self.peek() != Some('}') {
                    return Err(self.error(start, "expected hexadecimal digits and '}' after \\x{"));
                }
                self.bump();
                u32::from_str_radix(hex, 16).unwrap_or(u32::MAX)
            }
            'x' => {
                let hex: String = self.rest().chars().take(2).collect();
                if hex.len() != 2 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(self.error(start, "expected two hexadecimal digits after \\x"));
                }
                self.pos += 2;
                u32::from_str_radix(&hex, 16).expect("two hex digits")
            }
            '^' => match self.bump() {
                Some(c) => c as u32 & 31,
                None => return Err(self.error(start, "unterminated escape sequence")),
            },
            'b' => 8,
            'd' => 127,
            'e' => 27,
            'f' => 12,
            'n' => 10,
            'r' => 13,
            's' => 32,
            't' => 9,
            'v' => 11,
            other => other as u32,
        };
        if char::from_u32(code).is_none() {
            return Err(self.error(start, format!("\\x{{{code:X}}} is not a Unicode character")));
        }
        Ok(code)
    }
}

/// Splits the bare text of a pid (`node@host.42.0`), port (`node@host.5`) or reference
/// (`node@host.3.2.1`) into its node name and numbers.
///
/// A pid has two numbers and a port one, so the node name is what precedes them. A reference
/// has one to five words: its node's host ends before the trailing number parts, except that
/// a host of four number parts (an IPv4 address) keeps them.
fn split_bare(run: &str, kind: Identifier) -> Result<(String, Vec<&str>), String> {
    let Some(at) = run.find('@') else {
        let looks_local = run
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        return Err(if looks_local {
            "this is how erl prints an identifier, without its node name; erlnode writes \
             <node@host.42.0>, #Port<node@host.5>, #Ref<node@host.3.2.1>"
                .to_string()
        } else {
            "a node name needs an '@' (name@host); quote any other: <'name'.42.0>".to_string()
        });
    };
    let numeric = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = run.split('.').collect();
    let count = match kind {
        Identifier::Pid => 2,
        Identifier::Port => 1,
        Identifier::Ref => {
            let host: Vec<&str> = run[at + 1..].split('.').collect();
            if host.len() > 4 && host.iter().all(|p| numeric(p)) {
                host.len() - 4
            } else {
                parts.iter().rev().take_while(|p| numeric(p)).count()
            }
        }
    };
    if count == 0
        || parts.len() <= count
        || !parts[parts.len() - count..].iter().all(|p| numeric(p))
    {
        return Err("expected the node name, then its numbers separated by '.'".to_string());
    }
    let node = parts[..parts.len() - count].join(".");
    if node.ends_with('@') || node.starts_with('@') {
        return Err("expected a node name such as name@host".to_string());
    }
    Ok((node, parts[parts.len() - count..].to_vec()))
}

/// Decimal digit values as text.
fn decimal(digits: &[u8]) -> String {
    digits.iter().map(|&d| char::from(b'0' + d)).collect()
}
