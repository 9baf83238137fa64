//! `/cdn-cgi/image/` URLs: never panic, bounds always hold, canonical form is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::image::{ImageRequest, MAX_DIMENSION};

fuzz_target!(|text: &str| {
    if let Ok(request) = ImageRequest::parse(&format!("/cdn-cgi/image/{text}")) {
        assert!(request.device_width().is_none_or(|w| w <= MAX_DIMENSION));
        assert!(request.device_height().is_none_or(|h| h <= MAX_DIMENSION));
        assert!((1..=100).contains(&request.quality));
        let canonical = ImageRequest::parse(&request.to_string()).expect("canonical URL parses");
        assert_eq!(canonical.to_string(), request.to_string());
    }
});
