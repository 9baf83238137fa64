//! The tag index: which stored entries carry each `Cache-Tag`, so that a purge by tag can find
//! them. The Workers Cache API cannot list or search, so the index lives in the same cache, one
//! entry per tag holding its cache URLs one per line. Like the cache itself, the index is local
//! to one data centre; in production, Cloudflare's purge-by-tag API reaches them all.

use worker::{Cache, Headers, Response, Result};

/// Where tag entries live (never a request's URL: the host cannot be reached).
const INDEX_ORIGIN: &str = "https://tag-index.rampart.invalid/";

/// Most URLs kept per tag; the oldest are forgotten first (they expire from the cache anyway).
const MAX_URLS_PER_TAG: usize = 2_000;

/// How long a tag entry is kept (a year: longer than any stored entry).
const INDEX_RETENTION_SECONDS: u32 = 31_536_000;

/// The tags of a `Cache-Tag` header value (comma-separated, trimmed, empty ones dropped).
pub fn parse(header: &str) -> impl Iterator<Item = &str> {
    header
        .split(',')
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
}

fn index_url(tag: &str) -> String {
    let encoded: String = tag
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{INDEX_ORIGIN}{encoded}")
}

/// The cache URLs recorded for `tag`.
pub async fn urls(cache: &Cache, tag: &str) -> Result<Vec<String>> {
    let Some(mut entry) = cache.get(index_url(tag), false).await? else {
        return Ok(Vec::new());
    };
    Ok(entry.text().await?.lines().map(str::to_owned).collect())
}

/// Records that `cache_url` carries each of `tags`.
pub async fn record(cache: &Cache, tags: &[String], cache_url: &str) -> Result<()> {
    for tag in tags {
        let mut known = urls(cache, tag).await?;
        if known.iter().any(|url| url == cache_url) {
            continue;
        }
        known.push(cache_url.to_owned());
        let excess = known.len().saturating_sub(MAX_URLS_PER_TAG);
        known.drain(..excess);
        write(cache, tag, &known.join("\n")).await?;
    }
    Ok(())
}

async fn write(cache: &Cache, tag: &str, body: &str) -> Result<()> {
    let headers = Headers::new();
    headers.set(
        "cache-control",
        &format!("public, max-age={INDEX_RETENTION_SECONDS}"),
    )?;
    headers.set("content-type", "text/plain")?;
    let entry = Response::ok(body)?.with_headers(headers);
    cache.put(index_url(tag), entry).await
}

/// Forgets `tag`.
pub async fn forget(cache: &Cache, tag: &str) -> Result<()> {
    cache.delete(index_url(tag), false).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_and_encode() {
        assert_eq!(
            parse(" task:1, comments:1,,html ").collect::<Vec<_>>(),
            ["task:1", "comments:1", "html"]
        );
        assert_eq!(
            index_url("task:1/x"),
            "https://tag-index.rampart.invalid/task%3A1%2Fx"
        );
    }
}
