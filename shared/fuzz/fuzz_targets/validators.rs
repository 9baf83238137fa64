//! Entity tags, `If-None-Match` and `If-Modified-Since` never panic; parsed tags re-emit exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::validators::{if_none_match_matches, Conditions, EntityTag};

fuzz_target!(|text: &str| {
    if let Some(tag) = EntityTag::parse(text) {
        assert_eq!(EntityTag::parse(&tag.to_string()), Some(tag));
    }
    let current = EntityTag::strong("abc");
    let _ = if_none_match_matches(text, Some(&current));
    let conditions = Conditions { if_none_match: None, if_modified_since: Some(text) };
    let _ = conditions.not_modified(Some(&current), Some(text));
    let _ = shared::freshness::parse_http_date(text);
});
