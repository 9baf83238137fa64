//! The subset of RFC 8941 Structured Field Values that caching headers use: Dictionaries
//! (`CDN-Cache-Control`, RFC 9213) and Lists with parameters (`Cache-Status`, RFC 9211).
//!
//! Inner lists are not supported (no caching field uses them); a field holding one fails to
//! parse, and RFC 8941 §4.2 says a field that fails to parse is ignored as a whole.

/// A bare item, reduced to what caching fields can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Boolean(bool),
    Integer(i64),
    String(String),
    Token(String),
    /// A decimal or byte sequence: valid syntax, never a valid caching argument.
    Other,
}

/// Parameters of an item, in order (a later duplicate key overrides an earlier one).
pub(crate) type Parameters = Vec<(String, Item)>;

/// Parses a Dictionary (§4.2.2). Parameters are parsed and dropped; a later duplicate key
/// overrides an earlier one (§3.2).
pub(crate) fn parse_dictionary(input: &str) -> Option<Vec<(String, Item)>> {
    let mut members: Vec<(String, Item)> = Vec::new();
    parse_members(input, |parser| {
        let key = parser.key()?;
        let item = if parser.eat(b'=') {
            parser.bare_item()?
        } else {
            Item::Boolean(true)
        };
        parser.parameters()?;
        members.retain(|(existing, _)| *existing != key);
        members.push((key, item));
        Some(())
    })?;
    Some(members)
}

/// Parses a List of items with parameters (§4.2.1).
pub(crate) fn parse_list(input: &str) -> Option<Vec<(Item, Parameters)>> {
    let mut members = Vec::new();
    parse_members(input, |parser| {
        let item = parser.bare_item()?;
        let parameters = parser.parameters()?;
        members.push((item, parameters));
        Some(())
    })?;
    Some(members)
}

/// Runs `member` for each comma-separated member, enforcing the separators of §4.2.1/§4.2.2.
fn parse_members(input: &str, mut member: impl FnMut(&mut Parser<'_>) -> Option<()>) -> Option<()> {
    let mut parser = Parser {
        input: input.trim_matches([' ', '\t']).as_bytes(),
        pos: 0,
    };
    while !parser.done() {
        member(&mut parser)?;
        parser.skip_ows();
        if parser.done() {
            break;
        }
        if !parser.eat(b',') {
            return None;
        }
        parser.skip_ows();
        if parser.done() {
            return None; // trailing comma
        }
    }
    Some(())
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn key(&mut self) -> Option<String> {
        let start = self.pos;
        match self.peek()? {
            b'a'..=b'z' | b'*' => self.pos += 1,
            _ => return None,
        }
        while let Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*') = self.peek() {
            self.pos += 1;
        }
        Some(String::from_utf8_lossy(&self.input[start..self.pos]).into_owned())
    }

    fn parameters(&mut self) -> Option<Parameters> {
        let mut parameters: Parameters = Vec::new();
        while self.eat(b';') {
            while self.eat(b' ') {}
            let key = self.key()?;
            let value = if self.eat(b'=') {
                self.bare_item()?
            } else {
                Item::Boolean(true)
            };
            parameters.retain(|(existing, _)| *existing != key);
            parameters.push((key, value));
        }
        Some(parameters)
    }

    fn bare_item(&mut self) -> Option<Item> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string().map(Item::String),
            b'?' => {
                self.pos += 1;
                let value = match self.peek()? {
                    b'0' => false,
                    b'1' => true,
                    _ => return None,
                };
                self.pos += 1;
                Some(Item::Boolean(value))
            }
            b':' => self.byte_sequence(),
            b'A'..=b'Z' | b'a'..=b'z' | b'*' => Some(Item::Token(self.token())),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Item> {
        let start = self.pos;
        self.eat(b'-');
        let digits_start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        let integer_digits = self.pos - digits_start;
        if integer_digits == 0 {
            return None;
        }
        if self.eat(b'.') {
            let fraction_start = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            let fraction = self.pos - fraction_start;
            return (integer_digits <= 12 && (1..=3).contains(&fraction)).then_some(Item::Other);
        }
        if integer_digits > 15 {
            return None;
        }
        let text = std::str::from_utf8(&self.input[start..self.pos]).ok()?;
        text.parse().ok().map(Item::Integer)
    }

    fn string(&mut self) -> Option<String> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let b = self.peek()?;
            self.pos += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
                    let escaped = self.peek().filter(|e| *e == b'"' || *e == b'\\')?;
                    self.pos += 1;
                    out.push(escaped as char);
                }
                0x20..=0x7e => out.push(b as char),
                _ => return None,
            }
        }
    }

    fn byte_sequence(&mut self) -> Option<Item> {
        self.pos += 1;
        while let Some(b) = self.peek() {
            self.pos += 1;
            if b == b':' {
                return Some(Item::Other);
            }
            if !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
                return None;
            }
        }
        None
    }

    fn token(&mut self) -> String {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if crate::cache_control::is_tchar(b) || b == b':' || b == b'/' {
                self.pos += 1;
            } else {
                break;
            }
        }
        String::from_utf8_lossy(&self.input[start..self.pos]).into_owned()
    }
}

/// Writes `text` as an sf-string (printable ASCII; `"` and `\` escaped, anything else dropped).
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionaries() {
        let parsed = parse_dictionary("a=1, b, c=?0;x, d=\"s,;\\\"\", e=tok/en:x").expect("valid");
        assert_eq!(
            parsed,
            vec![
                ("a".into(), Item::Integer(1)),
                ("b".into(), Item::Boolean(true)),
                ("c".into(), Item::Boolean(false)),
                ("d".into(), Item::String("s,;\"".into())),
                ("e".into(), Item::Token("tok/en:x".into())),
            ]
        );
        assert_eq!(
            parse_dictionary("a=1, a=2"),
            Some(vec![("a".into(), Item::Integer(2))])
        );
        for invalid in [
            "a=1,",
            "A=1",
            "a=(1 2)",
            "a=\"\u{e9}\"",
            "a=1 b=2",
            "a=1234567890123456",
        ] {
            assert_eq!(parse_dictionary(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn lists_keep_parameters() {
        let parsed =
            parse_list("Cache; hit; key=\"a;b,c\", \"Other Cache\"; fwd=uri-miss").expect("valid");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].0, Item::Token("Cache".into()));
        assert_eq!(
            parsed[0].1,
            vec![
                ("hit".into(), Item::Boolean(true)),
                ("key".into(), Item::String("a;b,c".into()))
            ]
        );
        assert_eq!(parsed[1].0, Item::String("Other Cache".into()));
    }

    #[test]
    fn quoting_round_trips() {
        let text = "GET https://a.com/x?q=\"1\"\\;,";
        let parsed = parse_list(&format!("c; key={}", quote(text))).expect("valid");
        assert_eq!(parsed[0].1[0].1, Item::String(text.into()));
    }
}
