//! Safe HTML minification: comments dropped and runs of whitespace between tags collapsed to
//! one character, never inside `pre`, `textarea`, `script` or `style`, never inside a quoted
//! attribute value (whitespace between attributes becomes one space), and conditional comments
//! (`<!--[if …]>`) kept.
//!
//! A run of whitespace becomes a newline when it held one and a space otherwise, so inline
//! layout (the space between two words in different elements) renders exactly as before.

/// Elements whose content is copied verbatim.
const VERBATIM: [&str; 4] = ["pre", "textarea", "script", "style"];

/// The minified document.
pub fn html(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &input[i..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            let end = comment.find("-->").map_or(rest.len(), |at| at + 4 + 3);
            if comment.starts_with("[if") || comment.starts_with("<![endif") {
                out.push_str(&rest[..end]);
            }
            i += end;
        } else if bytes[i] == b'<' {
            let tag_end = tag_end(rest);
            push_tag(&mut out, &rest[..tag_end]);
            i += tag_end;
            if let Some(name) = verbatim_opening(&rest[..tag_end]) {
                let close = find_closing(&input[i..], name);
                out.push_str(&input[i..i + close]);
                i += close;
            }
        } else if bytes[i].is_ascii_whitespace() {
            let run = rest.bytes().take_while(u8::is_ascii_whitespace).count();
            out.push(if rest[..run].contains('\n') {
                '\n'
            } else {
                ' '
            });
            i += run;
        } else {
            let text = rest
                .find(|c: char| c == '<' || c.is_ascii_whitespace())
                .unwrap_or(rest.len());
            out.push_str(&rest[..text]);
            i += text;
        }
    }
    out
}

/// The length of the tag at the start of `rest`, quotes respected (`>` inside a quoted
/// attribute value does not end it).
fn tag_end(rest: &str) -> usize {
    let mut quote = None;
    for (at, byte) in rest.bytes().enumerate().skip(1) {
        match (quote, byte) {
            (None, b'"' | b'\'') => quote = Some(byte),
            (Some(q), _) if byte == q => quote = None,
            (None, b'>') => return at + 1,
            _ => {}
        }
    }
    rest.len()
}

/// Copies a tag, collapsing whitespace between attributes; quoted values are kept as they are.
fn push_tag(out: &mut String, tag: &str) {
    let mut quote = None;
    let mut in_space = false;
    for c in tag.chars() {
        match quote {
            None if c.is_ascii_whitespace() => {
                if !in_space {
                    out.push(' ');
                }
                in_space = true;
                continue;
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ => {}
        }
        in_space = false;
        out.push(c);
    }
}

/// The verbatim element a tag opens, if any.
fn verbatim_opening(tag: &str) -> Option<&'static str> {
    let name: String = tag[1..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    VERBATIM.into_iter().find(|element| *element == name)
}

/// Where `</name` starts in `rest` (ASCII case-insensitive), or the end.
fn find_closing(rest: &str, name: &str) -> usize {
    let lower = rest.to_ascii_lowercase();
    lower.find(&format!("</{name}")).unwrap_or(rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_whitespace_go() {
        assert_eq!(
            html("<ul>\n    <li>a</li>  <!-- note -->\n\n  <li>b</li>\n</ul>\n"),
            "<ul>\n<li>a</li> \n<li>b</li>\n</ul>\n"
        );
        assert_eq!(html("<p>two   words</p>"), "<p>two words</p>");
    }

    #[test]
    fn verbatim_elements_tags_and_conditional_comments_stay() {
        let pre = "<pre>  a\n\n   b <!-- kept --></pre>";
        assert_eq!(html(pre), pre);
        let script = "<script>if (a  <  b) { s = \"<!-- x -->\"; }</script>";
        assert_eq!(html(script), script);
        let upper = "<TEXTAREA>  x  </TEXTAREA>";
        assert_eq!(html(upper), upper);
        let style = "<style>\n  p > a { color: red }\n</style>";
        assert_eq!(html(style), style);
        let attribute = r#"<input value="a   b >  c"   title='x  y'>"#;
        assert_eq!(
            html(attribute),
            r#"<input value="a   b >  c" title='x  y'>"#
        );
        assert_eq!(
            html("<img\n     src=\"a\"\n     alt=\"b\">"),
            "<img src=\"a\" alt=\"b\">"
        );
        let conditional = "<!--[if IE]><p>old</p><![endif]-->";
        assert_eq!(html(conditional), conditional);
    }

    #[test]
    fn unterminated_input_is_kept_as_is() {
        assert_eq!(html("<p>a <!-- open"), "<p>a ");
        assert_eq!(html("<div class=\"x"), "<div class=\"x");
        assert_eq!(html("<pre> x"), "<pre> x");
    }
}
