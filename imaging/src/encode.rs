//! Encoders, all permissively licensed so that they can ship in the Worker: AVIF through libaom
//! ([`crate::avif`]), lossy WebP through libwebp ([`crate::webp`]), JPEG and PNG through the
//! `image` crate. Every output is written without metadata.
//!
//! AVIF is the costly one: its speed preset is picked from the output's pixel count, so that a
//! large image is encoded quickly rather than slowly and well (see [`avif_speed`]).

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::DynamicImage;
use shared::image::ImageFormat;

use crate::TransformError;

/// libaom's speed (`cpu-used`, 0 slowest … 9 fastest) for an output of `pixels`, keeping the
/// encode within a few seconds of Worker CPU. Speed 5 (sharp's default effort) makes photographs
/// about 8% smaller than speed 6 at the same DSSIM, for three times the time, so it is kept for
/// outputs up to half a megapixel; speeds 7 and 8 save little time over 6 on still pictures.
pub fn avif_speed(pixels: u64) -> u8 {
    if pixels <= 500_000 {
        5
    } else {
        6
    }
}

/// The most output pixels `format` is encoded at within one request's CPU budget (a few
/// seconds of Worker CPU, measured in workerd by `scripts/bench-images.sh`).
pub fn pixel_budget(format: ImageFormat) -> u64 {
    match format {
        ImageFormat::Avif => 2_000_000,
        ImageFormat::Webp => 6_000_000,
        ImageFormat::Jpeg | ImageFormat::Png => u64::MAX,
    }
}

/// The format to encode `pixels` in when `wanted` is asked for: AVIF beyond its budget becomes
/// WebP, WebP beyond its budget becomes `fallback` (the source's kind).
pub fn affordable(wanted: ImageFormat, pixels: u64, fallback: ImageFormat) -> ImageFormat {
    let fits = |format| pixels <= pixel_budget(format);
    match wanted {
        format if fits(format) => format,
        ImageFormat::Avif if fits(ImageFormat::Webp) => ImageFormat::Webp,
        _ => fallback,
    }
}

/// Encodes `image` as `format` at `quality` (1–100, one scale for every format: see
/// [`crate::quality`]).
pub fn encode(
    image: &DynamicImage,
    format: ImageFormat,
    quality: u8,
) -> Result<Vec<u8>, TransformError> {
    let encoder_quality = match format {
        ImageFormat::Webp | ImageFormat::Avif => {
            let bits = jpeg_bits_per_pixel(image, quality)?;
            crate::quality::for_encoder(format, quality, bits)
        }
        ImageFormat::Jpeg | ImageFormat::Png => quality,
    };
    encode_at(image, format, encoder_quality)
}

/// How much detail `image` holds, as JPEG sees it: the bits per pixel of its JPEG at `quality`
/// (a fast encode beside WebP's or AVIF's).
pub fn jpeg_bits_per_pixel(image: &DynamicImage, quality: u8) -> Result<f64, TransformError> {
    let bytes = jpeg(image, quality.clamp(1, 100))?;
    let pixels = (u64::from(image.width()) * u64::from(image.height())).max(1);
    Ok(bytes.len() as f64 * 8.0 / pixels as f64)
}

/// Encodes `image` as `format` at the encoder's own quality (1–100 on that encoder's scale:
/// libjpeg's, libwebp's, libheif's for libaom), without the mapping [`encode`] applies.
pub fn encode_at(
    image: &DynamicImage,
    format: ImageFormat,
    encoder_quality: u8,
) -> Result<Vec<u8>, TransformError> {
    let quality = encoder_quality.clamp(1, 100);
    match format {
        ImageFormat::Avif => avif(image, quality),
        ImageFormat::Webp => crate::webp::encode(image, quality),
        ImageFormat::Jpeg => jpeg(image, quality),
        ImageFormat::Png => png(image),
    }
}

fn avif(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, TransformError> {
    let rgba = image.to_rgba8();
    let pixels = u64::from(rgba.width()) * u64::from(rgba.height());
    crate::avif::encode(&rgba, quality, avif_speed(pixels))
}

fn jpeg(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, TransformError> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&image.to_rgb8())
        .map_err(|error| TransformError::Encode(error.to_string()))?;
    Ok(out)
}

fn png(image: &DynamicImage) -> Result<Vec<u8>, TransformError> {
    let mut out = Vec::new();
    image
        .write_with_encoder(PngEncoder::new(&mut out))
        .map_err(|error| TransformError::Encode(error.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costly_formats_give_way_beyond_their_budget() {
        let (avif, webp, jpeg) = (ImageFormat::Avif, ImageFormat::Webp, ImageFormat::Jpeg);
        assert_eq!(affordable(avif, 1_000_000, jpeg), avif);
        assert_eq!(affordable(avif, 3_000_000, jpeg), webp);
        assert_eq!(affordable(avif, 9_000_000, jpeg), jpeg);
        assert_eq!(
            affordable(webp, 9_000_000, ImageFormat::Png),
            ImageFormat::Png
        );
        assert_eq!(affordable(jpeg, u64::MAX, ImageFormat::Png), jpeg);
        assert!(avif_speed(640 * 480) < avif_speed(1920 * 1080));
    }
}
