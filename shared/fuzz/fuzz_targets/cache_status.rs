//! `Cache-Status` parsing never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::cache_status::CacheStatus;

fuzz_target!(|text: &str| {
    for member in CacheStatus::parse_list(text) {
        let _ = member.to_string();
    }
});
