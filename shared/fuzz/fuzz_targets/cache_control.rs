//! `Cache-Control` and `CDN-Cache-Control` parsing: never panics, and whatever parses re-emits
//! to a value that parses to the same directives (idempotent after one round).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::cache_control::CacheControl;
use shared::freshness::{Freshness, ResponseFacts};

fuzz_target!(|text: &str| {
    let parsed = CacheControl::parse(text);
    let emitted = parsed.to_string();
    let again = CacheControl::parse(&emitted);
    assert_eq!(CacheControl::parse(&again.to_string()), again);
    let _ = CacheControl::parse_targeted(text);
    let facts = ResponseFacts { status: 200, cache_control: Some(text), cdn_cache_control: Some(text), expires: Some(text), date: Some(text), age: Some(text), last_modified: Some(text), ..ResponseFacts::default() };
    let freshness = Freshness::of(&facts, 1_700_000_000);
    let _ = freshness.state(u64::from(freshness.lifetime) + 1);
    let _ = shared::freshness::current_age(&facts, 0, 1_700_000_000, 1_800_000_000);
});
