//! How entries are stored in Redis: a length-prefixed JSON header (times and tags) followed by
//! the value, LZ4-compressed when it is over [`COMPRESS_ABOVE`] bytes.
//!
//! Times are wall-clock milliseconds, since entries are shared between processes.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use super::entry::{CacheOptions, Entry};

/// Values larger than this are compressed.
pub const COMPRESS_ABOVE: usize = 1024;
/// Largest value accepted when decoding (a corrupt size prefix cannot exhaust memory).
const MAX_VALUE: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    stored_at_ms: u64,
    ttl_ms: u64,
    swr_ms: u64,
    #[serde(default)]
    sie_ms: u64,
    #[serde(default)]
    keep_ms: u64,
    #[serde(default)]
    unreachable: bool,
    tags: Vec<String>,
    lz4: bool,
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Encodes `entry`; `now` pairs the monotonic and wall clocks.
pub fn encode(entry: &Entry, now: (Instant, u64)) -> Vec<u8> {
    let age = now.0.saturating_duration_since(entry.stored_at).as_millis() as u64;
    let lz4 = entry.value.len() > COMPRESS_ABOVE;
    let header = Header {
        stored_at_ms: now.1.saturating_sub(age),
        ttl_ms: entry.options.ttl.as_millis() as u64,
        swr_ms: entry.options.stale_while_revalidate.as_millis() as u64,
        sie_ms: entry.options.stale_if_error.as_millis() as u64,
        keep_ms: entry.options.keep.as_millis() as u64,
        unreachable: entry.options.stale_if_unreachable,
        tags: entry.options.tags.to_vec(),
        lz4,
    };
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + header.len() + entry.value.len());
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(&header);
    if lz4 {
        out.extend_from_slice(&lz4_flex::compress_prepend_size(&entry.value));
    } else {
        out.extend_from_slice(&entry.value);
    }
    out
}

/// Decodes what [`encode`] wrote; `None` for anything else.
pub fn decode(bytes: &[u8], now: (Instant, u64)) -> Option<Entry> {
    let length = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let header: Header = serde_json::from_slice(bytes.get(4..4 + length)?).ok()?;
    let body = bytes.get(4 + length..)?;
    let value = if header.lz4 {
        let declared = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
        if declared > MAX_VALUE {
            return None;
        }
        Bytes::from(lz4_flex::decompress_size_prepended(body).ok()?)
    } else {
        Bytes::copy_from_slice(body)
    };
    let age = Duration::from_millis(now.1.saturating_sub(header.stored_at_ms));
    Some(Entry::new(
        value,
        now.0.checked_sub(age).unwrap_or(now.0),
        CacheOptions {
            ttl: Duration::from_millis(header.ttl_ms),
            stale_while_revalidate: Duration::from_millis(header.swr_ms),
            stale_if_error: Duration::from_millis(header.sie_ms),
            keep: Duration::from_millis(header.keep_ms),
            stale_if_unreachable: header.unreachable,
            tags: header.tags.into(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: Vec<u8>) -> Entry {
        Entry::new(
            Bytes::from(value),
            Instant::now(),
            CacheOptions {
                ttl: Duration::from_secs(60),
                stale_while_revalidate: Duration::from_secs(30),
                stale_if_error: Duration::from_secs(600),
                keep: Duration::from_secs(3600),
                stale_if_unreachable: true,
                tags: vec!["task:1".into(), "tasks".into()].into(),
            },
        )
    }

    #[test]
    fn round_trips_small_and_large_values() {
        let now = (Instant::now(), unix_ms());
        for value in [b"small".to_vec(), vec![b'a'; 10_000]] {
            let original = entry(value);
            let encoded = encode(&original, now);
            let decoded = decode(&encoded, now).expect("decodes");
            assert_eq!(decoded.value, original.value);
            assert_eq!(decoded.options, original.options);
        }
    }

    #[test]
    fn large_values_are_compressed() {
        let now = (Instant::now(), unix_ms());
        let encoded = encode(&entry(vec![b'a'; 10_000]), now);
        assert!(encoded.len() < 1_000, "{} bytes", encoded.len());
    }

    #[test]
    fn age_survives_the_trip() {
        let now = (Instant::now(), unix_ms());
        let encoded = encode(&entry(b"v".to_vec()), now);
        let later = (now.0 + Duration::from_secs(70), now.1 + 70_000);
        let decoded = decode(&encoded, later).expect("decodes");
        assert_eq!(decoded.state(later.0), super::super::State::Stale);
    }

    #[test]
    fn garbage_and_bombs_are_refused() {
        let now = (Instant::now(), unix_ms());
        assert!(decode(b"", now).is_none());
        assert!(decode(b"\x00\x00\x00\x05{oops", now).is_none());
        let mut bomb = encode(&entry(vec![b'a'; 10_000]), now);
        let header_len = u32::from_be_bytes([bomb[0], bomb[1], bomb[2], bomb[3]]) as usize;
        bomb[4 + header_len..8 + header_len].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&bomb, now).is_none());
    }
}
