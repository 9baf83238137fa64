//! `Accept` and `Accept-Encoding` negotiation never panics and only picks allowed formats.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::image::ImageFormat;
use shared::negotiate::{content_encoding, image_format};

fuzz_target!(|text: &str| {
    let allowed = [ImageFormat::Webp, ImageFormat::Jpeg];
    let chosen = image_format(Some(text), ImageFormat::Jpeg, &allowed);
    assert!(allowed.contains(&chosen));
    let _ = content_encoding(Some(text));
});
