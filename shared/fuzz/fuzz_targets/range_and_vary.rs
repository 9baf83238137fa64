//! `Range` answers always lie inside the representation; `Vary` fields and secondary keys never
//! panic, and equivalent requests get equal keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::range::{answer, RangeAnswer};

fuzz_target!(|input: (&str, u32, &str)| {
    let (text, length, value) = input;
    let length = u64::from(length);
    match answer(text, length) {
        RangeAnswer::Partial { first, last } => assert!(first <= last && last < length),
        RangeAnswer::Full | RangeAnswer::Unsatisfiable => {}
    }
    let fields = shared::vary::fields(text).unwrap_or_default();
    let key = shared::vary::secondary_key(&fields, |_| Some(value.to_owned()));
    let padded = format!(" {value} ");
    assert_eq!(key, shared::vary::secondary_key(&fields, |_| Some(padded.clone())));
    let _ = shared::freshness::RequestDirectives::parse(Some(text), Some(value));
    let _ = shared::freshness::age_seconds(text);
});
