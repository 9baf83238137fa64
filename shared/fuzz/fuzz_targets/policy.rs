//! Policy files (TOML and JSON) never panic: they load or fail with an error; loaded policies
//! decide any path without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::policy::{Policy, RequestFacts};

fuzz_target!(|text: &str| {
    for policy in [Policy::from_toml(text), Policy::from_json(text)].into_iter().flatten() {
        let _ = policy.decide(&RequestFacts { method: "GET", path: "/a/b", ..RequestFacts::default() });
    }
    let _ = text.parse::<shared::duration::Seconds>();
});
