//! Transformations on synthetic images and on the team's photographs (`../shared/data/images/`,
//! skipped with a message when absent).

use std::path::PathBuf;

use image::codecs::jpeg::JpegEncoder;
use image::{ImageEncoder, RgbImage};
use imaging::{inspect, transform, Limits, TransformError};
use shared::image::{ImageFormat, ImageRequest, SourceFormat};

fn request(options: &str) -> ImageRequest {
    ImageRequest::parse(&format!("/cdn-cgi/image/{options}/images/x")).expect("valid options")
}

/// A `width` × `height` JPEG of a gradient, with an EXIF orientation when given.
fn jpeg(width: u32, height: u32, orientation: Option<u16>) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, 90);
    if let Some(value) = orientation {
        // A little-endian TIFF block with one IFD entry: Orientation (0x0112), SHORT, 1.
        let mut exif = vec![0x49, 0x49, 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00];
        exif.extend_from_slice(&[0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00]);
        exif.extend_from_slice(&value.to_le_bytes());
        exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        encoder.set_exif_metadata(exif).expect("JPEG takes EXIF");
    }
    encoder
        .write_image(
            image.as_raw(),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        )
        .expect("encodes");
    out
}

/// A PNG whose header claims `width` × `height`: a few bytes that would decode to gigabytes.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
    png.extend_from_slice(b"IHDR");
    png.extend_from_slice(&width.to_be_bytes());
    png.extend_from_slice(&height.to_be_bytes());
    png.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    png
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let decoded = image::load_from_memory(bytes).expect("output decodes");
    (decoded.width(), decoded.height())
}

#[test]
fn resizes_and_encodes_without_metadata() {
    let source = jpeg(600, 400, None);
    let out = transform(
        &source,
        &request("width=300"),
        ImageFormat::Jpeg,
        &Limits::default(),
    )
    .expect("transforms");
    assert_eq!((out.width, out.height), (300, 200));
    assert_eq!(dimensions(&out.bytes), (300, 200));
    assert_eq!(SourceFormat::sniff(&out.bytes), Some(SourceFormat::Jpeg));
    let png = transform(
        &source,
        &request("width=60,height=60,fit=pad"),
        ImageFormat::Png,
        &Limits::default(),
    )
    .expect("transforms");
    assert_eq!(dimensions(&png.bytes), (60, 60));
    assert_eq!(SourceFormat::sniff(&png.bytes), Some(SourceFormat::Png));
}

#[test]
fn exif_orientation_turns_the_image_upright() {
    // Orientation 6: the camera was turned; displayed, the 600×400 sensor image is 400×600.
    let source = jpeg(600, 400, Some(6));
    let out = transform(
        &source,
        &request("quality=80"),
        ImageFormat::Jpeg,
        &Limits::default(),
    )
    .expect("transforms");
    assert_eq!((out.width, out.height), (400, 600));
    let again = transform(
        &out.bytes,
        &request("quality=80"),
        ImageFormat::Jpeg,
        &Limits::default(),
    )
    .expect("transforms");
    assert_eq!(
        (again.width, again.height),
        (400, 600),
        "the output carries no orientation tag"
    );
}

#[test]
fn bombs_and_junk_are_refused_before_decoding() {
    let limits = Limits::default();
    let bomb = png_header(50_000, 50_000);
    let refused = inspect(&bomb, &limits).expect_err("refused");
    assert!(
        matches!(refused, TransformError::TooManyPixels { .. }),
        "{refused:?}"
    );
    assert_eq!(
        (refused.status(), refused.code().as_str()),
        (422, "IMAGE_TOO_MANY_PIXELS")
    );
    let tall = png_header(100, 20_000);
    assert!(matches!(
        inspect(&tall, &limits),
        Err(TransformError::TooManyPixels { .. })
    ));
    assert_eq!(
        transform(
            b"not an image at all",
            &request("width=10"),
            ImageFormat::Jpeg,
            &limits
        ),
        Err(TransformError::Unsupported)
    );
    let small = Limits {
        max_source_bytes: 100,
        ..limits
    };
    assert!(matches!(
        inspect(&jpeg(64, 64, None), &small),
        Err(TransformError::SourceTooLarge { .. })
    ));
    let mut truncated = jpeg(64, 64, None);
    truncated.truncate(300);
    let error =
        transform(&truncated, &request("width=10"), ImageFormat::Jpeg, &limits).expect_err("fails");
    assert_eq!(error.code().as_str(), "IMAGE_UNDECODABLE", "{error:?}");
}

#[test]
fn encodes_avif_and_lossy_webp() {
    let source = jpeg(320, 200, None);
    let limits = Limits::default();
    let avif = transform(&source, &request("width=160"), ImageFormat::Avif, &limits)
        .expect("encodes AVIF");
    assert_eq!(&avif.bytes[4..12], b"ftypavif", "an AVIF file");
    let size = imagesize::blob_size(&avif.bytes).expect("AVIF header readable");
    assert_eq!((size.width, size.height), (160, 100));

    let webp = transform(&source, &request("width=160"), ImageFormat::Webp, &limits)
        .expect("encodes WebP");
    assert_eq!(
        (&webp.bytes[..4], &webp.bytes[8..12]),
        (&b"RIFF"[..], &b"WEBP"[..])
    );
    assert!(
        webp.bytes.windows(4).any(|w| w == b"VP8 "),
        "a lossy (VP8) bitstream"
    );
    assert_eq!(dimensions(&webp.bytes), (160, 100));
    // Lower quality, fewer bytes: the quality option reaches both encoders.
    for format in [ImageFormat::Avif, ImageFormat::Webp] {
        let low =
            transform(&source, &request("width=160,quality=20"), format, &limits).expect("encodes");
        let high =
            transform(&source, &request("width=160,quality=95"), format, &limits).expect("encodes");
        assert!(
            low.bytes.len() < high.bytes.len(),
            "{format:?}: {} vs {}",
            low.bytes.len(),
            high.bytes.len()
        );
    }
}

#[test]
fn transparency_survives_into_avif_and_webp() {
    let image = image::RgbaImage::from_fn(64, 64, |x, _| {
        image::Rgba([200, 30, 30, if x < 32 { 0 } else { 255 }])
    });
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(image.as_raw(), 64, 64, image::ExtendedColorType::Rgba8)
        .expect("encodes");
    let limits = Limits::default();
    let webp = transform(&png, &request("width=32"), ImageFormat::Webp, &limits).expect("WebP");
    let decoded = image::load_from_memory(&webp.bytes)
        .expect("decodes")
        .to_rgba8();
    assert!(
        decoded.get_pixel(2, 5)[3] < 16,
        "transparent half stays transparent"
    );
    assert!(
        decoded.get_pixel(30, 5)[3] > 240,
        "opaque half stays opaque"
    );
    let avif = transform(&png, &request("width=32"), ImageFormat::Avif, &limits).expect("AVIF");
    let text = String::from_utf8_lossy(&avif.bytes);
    assert!(
        text.contains("auxC") || text.contains("auxl"),
        "an alpha plane is stored"
    );
}

#[test]
fn photographs_shrink_to_the_requested_width() {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/images");
    let Ok(entries) = std::fs::read_dir(&folder) else {
        eprintln!("SKIPPED: {} is absent", folder.display());
        return;
    };
    let mut seen = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(format) = std::fs::read(&path)
            .ok()
            .and_then(|b| SourceFormat::sniff(&b))
        else {
            continue;
        };
        let source = std::fs::read(&path).expect("readable");
        let output = format.fallback_output();
        let out = transform(&source, &request("width=640"), output, &Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(out.width <= 640, "{}", path.display());
        assert!(
            out.bytes.len() < source.len(),
            "{}: {} ≥ {}",
            path.display(),
            out.bytes.len(),
            source.len()
        );
        seen += 1;
    }
    assert!(seen >= 3, "photographs found: {seen}");
}
