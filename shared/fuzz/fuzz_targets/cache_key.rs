//! Cache keys: never panic, and canonical output is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::key::{CacheKey, KeyConfig};

fuzz_target!(|input: (&str, &str)| {
    let (host, target) = input;
    let config = KeyConfig::default();
    if let Ok(key) = CacheKey::new("GET", host, target, &config) {
        let again = CacheKey::new("GET", key.host(), &key.target(), &config).expect("canonical keys re-parse");
        assert_eq!(again, key);
    }
});
