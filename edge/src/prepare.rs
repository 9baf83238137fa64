//! A response body made ready for storing, the same way on every path that stores one: a miss
//! answered and then stored in the background, a large response stored in the background while
//! it streams to the client, and a background refresh (stale-while-revalidate).
//!
//! Preparing is two steps, so that a miss is answered before its brotli copy is made:
//! [`for_answering`] minifies (what the client gets), [`Answerable::finish`] compresses (what
//! is stored).
//!
//! | step | applies to | gives |
//! | --- | --- | --- |
//! | minification ([`minify`]) | an HTML page | the body clients get (identity) |
//! | a brotli copy ([`precompress`]) | text of 1 KiB to 4 MiB, once minified | what is stored, served as it is to br clients |
//!
//! Both only on routes whose policy lets the edge compress, for `200` responses that carry no
//! `Content-Encoding` and no `no-transform` (RFC 9110 §7.7). A body the edge changes is no
//! longer the origin's bytes, so its strong `ETag` becomes weak (RFC 9110 §8.8.1: a strong
//! validator stands for the exact bytes) and the origin's `Content-Length` goes.

use worker::{Headers, Result};

use crate::{minify, precompress, respond};

/// A body ready for storing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// What clients that do not take br get: the minified page, or the origin's bytes.
    identity: Vec<u8>,
    /// The brotli copy of `identity`, stored in its place.
    brotli: Option<Vec<u8>>,
}

impl Prepared {
    /// `body`, stored as it is.
    pub fn as_is(body: Vec<u8>) -> Self {
        Self {
            identity: body,
            brotli: None,
        }
    }

    /// The body clients get when they do not take br.
    pub fn identity(&self) -> &[u8] {
        &self.identity
    }

    /// Whether what is stored is the brotli copy.
    pub fn is_brotli(&self) -> bool {
        self.brotli.is_some()
    }

    /// The bytes to store: the brotli copy if there is one, else the identity body.
    pub fn into_stored(self) -> Vec<u8> {
        self.brotli.unwrap_or(self.identity)
    }
}

/// A body ready to be answered with, its brotli copy not made yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answerable {
    /// What clients get: the minified page, or the origin's bytes.
    identity: Vec<u8>,
    /// It is text the edge may compress.
    compressible: bool,
}

impl Answerable {
    /// `body`, answered and stored as it is.
    fn as_is(body: Vec<u8>) -> Self {
        Self {
            identity: body,
            compressible: false,
        }
    }

    /// The body clients get.
    pub fn identity(&self) -> &[u8] {
        &self.identity
    }

    /// Makes the brotli copy, when one is worth storing.
    pub fn finish(self) -> Prepared {
        let brotli = self
            .compressible
            .then(|| precompress::brotli(&self.identity));
        Prepared {
            identity: self.identity,
            brotli,
        }
    }
}

/// Prepares `body`, sent with `status` and `headers`, for answering; `compress` is the route's
/// policy. `headers` (a mutable copy) are updated to describe the identity body: when the page
/// was minified, its `ETag` is weakened and its `Content-Length` dropped.
pub fn for_answering(
    status: u16,
    headers: &Headers,
    body: Vec<u8>,
    compress: bool,
) -> Result<Answerable> {
    let facts = BodyFacts::of(status, headers, compress)?;
    let (answerable, minified) = prepare(&facts, body);
    if minified {
        respond::body_changed(headers)?;
    }
    Ok(answerable)
}

/// [`for_answering`], then [`Answerable::finish`]: for paths that answer from elsewhere.
pub fn for_storing(
    status: u16,
    headers: &Headers,
    body: Vec<u8>,
    compress: bool,
) -> Result<Prepared> {
    Ok(for_answering(status, headers, body, compress)?.finish())
}

/// What a response says about changing its body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BodyFacts {
    /// The edge may change the body at all.
    changeable: bool,
    /// Its `Content-Type`, or `""`.
    content_type: String,
}

impl BodyFacts {
    fn of(status: u16, headers: &Headers, compress: bool) -> Result<Self> {
        let changeable = compress
            && status == 200
            && !headers.has("content-encoding")?
            && !respond::no_transform(headers)?;
        Ok(Self {
            changeable,
            content_type: headers.get("content-type")?.unwrap_or_default(),
        })
    }
}

/// The body to answer with, and whether minification changed it.
fn prepare(facts: &BodyFacts, body: Vec<u8>) -> (Answerable, bool) {
    if !facts.changeable {
        return (Answerable::as_is(body), false);
    }
    let (identity, minified) = if facts.content_type.starts_with("text/html") {
        minified(body)
    } else {
        (body, false)
    };
    let compressible = precompress::worthwhile(&facts.content_type, identity.len());
    let answerable = Answerable {
        identity,
        compressible,
    };
    (answerable, minified)
}

/// A page minified, if that makes it smaller (and it is UTF-8); whether it did.
fn minified(body: Vec<u8>) -> (Vec<u8>, bool) {
    let text = match String::from_utf8(body) {
        Ok(text) => text,
        Err(not_utf8) => return (not_utf8.into_bytes(), false),
    };
    let smaller = minify::html(&text);
    if smaller.len() >= text.len() {
        return (text.into_bytes(), false);
    }
    (smaller.into_bytes(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "<ul>\n    <li>a</li>  <!-- note -->\n    <li>b</li>\n</ul>\n";

    fn facts(content_type: &str) -> BodyFacts {
        BodyFacts {
            changeable: true,
            content_type: content_type.to_owned(),
        }
    }

    fn decoded(copy: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &copy[..], &mut out).expect("a brotli copy");
        out
    }

    #[test]
    fn a_small_page_is_minified_and_stored_as_it_is() {
        let (prepared, minified) = prepare(&facts("text/html; charset=utf-8"), PAGE.into());
        let prepared = prepared.finish();
        assert!(minified);
        assert_eq!(prepared.identity(), minify::html(PAGE).as_bytes());
        assert!(!prepared.is_brotli(), "under 1 KiB: no brotli copy");
        assert_eq!(prepared.into_stored(), minify::html(PAGE).into_bytes());
    }

    #[test]
    fn a_large_page_is_minified_then_stored_as_brotli() {
        let page = PAGE.repeat(100);
        let (prepared, minified) = prepare(&facts("text/html"), page.clone().into_bytes());
        let prepared = prepared.finish();
        assert!(minified);
        let identity = minify::html(&page).into_bytes();
        assert_eq!(prepared.identity(), &identity[..]);
        assert!(prepared.is_brotli());
        assert_eq!(decoded(&prepared.into_stored()), identity);
    }

    #[test]
    fn other_text_is_compressed_but_not_minified() {
        let json = br#"{"title":  "a task"}"#.repeat(100);
        let (prepared, minified) = prepare(&facts("application/json"), json.clone());
        let prepared = prepared.finish();
        assert!(!minified);
        assert_eq!(prepared.identity(), &json[..]);
        assert_eq!(decoded(&prepared.into_stored()), json);
    }

    #[test]
    fn what_may_not_change_is_stored_as_it_came() {
        let page = PAGE.repeat(100).into_bytes();
        let fixed = BodyFacts {
            changeable: false,
            ..facts("text/html")
        };
        assert_eq!(
            prepare(&fixed, page.clone()),
            (Answerable::as_is(page.clone()), false)
        );
        let image = vec![0u8; 4096];
        assert_eq!(
            prepare(&facts("image/png"), image.clone()),
            (Answerable::as_is(image), false)
        );
        let minimal = b"<p>a</p>".to_vec();
        assert_eq!(
            prepare(&facts("text/html"), minimal.clone()),
            (Answerable::as_is(minimal), false),
            "a page minification cannot shrink keeps its bytes and its ETag"
        );
    }
}
