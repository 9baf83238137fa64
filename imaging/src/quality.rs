//! One quality scale for every output format. A request's `quality` (1–100, default 85) means
//! JPEG's: the fidelity a JPEG of that quality keeps. WebP and AVIF are each asked for the
//! quality on their own encoder's scale (libwebp's; libheif's mapping onto libaom's quantizer)
//! that keeps about the same fidelity, measured by DSSIM against the fitted image.
//!
//! No single number per format does that: at the same JPEG quality, a smooth photograph needs a
//! far higher WebP or AVIF quality than a detailed one (a JPEG's blocks cost little on smooth
//! areas, which the other codecs blur first). So the picture's own detail is measured the way
//! JPEG sees it — the bits per pixel of a JPEG at the request's quality, a fast encode — and the
//! encoder quality is a straight line in its logarithm, fitted per request quality over
//! photographs (`scripts/bench-image-quality.sh` calibrates the table and checks it).

use shared::image::ImageFormat;

/// `(request quality, a, b)`: WebP's quality is `a + b·ln(JPEG bits per pixel)` at that request
/// quality; between two rows both are interpolated. Least squares over 22 photographs fitted to
/// 1200 px (`../shared/data/images` and 14 more from the same sources:
/// `BENCH_MORE_PHOTOS=1 scripts/bench-image-quality.sh calibrate`), 2026-12-06.
const WEBP: &[(u8, f32, f32)] = &[
    (30, 41.5, 9.6),
    (40, 54.8, 3.6),
    (50, 66.0, -6.4),
    (60, 74.1, -7.8),
    (70, 82.2, -8.3),
    (75, 86.1, -9.0),
    (80, 90.5, -9.0),
    (85, 95.5, -6.9),
    (90, 100.0, -3.9),
    (95, 100.1, -0.2),
];

/// The same for AVIF.
const AVIF: &[(u8, f32, f32)] = &[
    (30, 42.1, 4.9),
    (40, 46.9, 2.4),
    (50, 51.6, -1.0),
    (60, 55.6, -2.3),
    (70, 63.3, -5.5),
    (75, 68.5, -8.8),
    (80, 75.7, -10.7),
    (85, 82.6, -9.1),
    (90, 89.6, -4.7),
    (95, 94.0, -2.2),
];

/// JPEG bits per pixel outside this range are taken as its ends: the photographs fitted spanned
/// 0.28–5.6, and the lines are not to be trusted far beyond.
const DETAIL_RANGE: (f64, f64) = (0.25, 6.0);

/// The encoder's own quality for a request's `quality` (clamped to 1–100) in `format`, for a
/// picture whose JPEG at that quality takes `jpeg_bits_per_pixel`. A higher request quality
/// never maps to a lower encoder quality.
pub fn for_encoder(format: ImageFormat, quality: u8, jpeg_bits_per_pixel: f64) -> u8 {
    let quality = quality.clamp(1, 100);
    let table = match format {
        ImageFormat::Webp => WEBP,
        ImageFormat::Avif => AVIF,
        ImageFormat::Jpeg | ImageFormat::Png => return quality,
    };
    let bits = if jpeg_bits_per_pixel.is_finite() {
        jpeg_bits_per_pixel.clamp(DETAIL_RANGE.0, DETAIL_RANGE.1)
    } else {
        1.0
    };
    let detail = bits.ln() as f32;
    let lower_rows = table.iter().take_while(|row| row.0 < quality);
    let mapped = lower_rows
        .map(|row| line(table, detail, row.0))
        .fold(line(table, detail, quality), f32::max);
    mapped.round().clamp(1.0, 100.0) as u8
}

/// The encoder quality at request `quality` for `detail` (ln of JPEG bits per pixel): `table`'s
/// rows joined by straight lines, from (1, 1) to the first row and from the last to (100, 100).
fn line(table: &[(u8, f32, f32)], detail: f32, quality: u8) -> f32 {
    let at = |(_, a, b): (u8, f32, f32)| a + b * detail;
    let (first, last) = (table[0], table[table.len() - 1]);
    let q = f32::from(quality);
    if quality <= first.0 {
        // From (1, 1) to the first row.
        1.0 + (q - 1.0) * (at(first) - 1.0) / (f32::from(first.0) - 1.0)
    } else if quality >= last.0 {
        // From the last row to (100, 100).
        at(last) + (q - f32::from(last.0)) * (100.0 - at(last)) / (100.0 - f32::from(last.0))
    } else {
        let i = table.iter().position(|row| quality <= row.0).unwrap_or(1);
        let (low, high) = (table[i - 1], table[i]);
        let t = (q - f32::from(low.0)) / (f32::from(high.0) - f32::from(low.0));
        at(low) + t * (at(high) - at(low))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_is_the_scale() {
        for quality in [1, 50, 85, 100] {
            assert_eq!(for_encoder(ImageFormat::Jpeg, quality, 1.0), quality);
        }
    }

    #[test]
    fn a_smooth_picture_gets_a_higher_encoder_quality_than_a_detailed_one() {
        // Measured matches at quality 85: a smooth landscape (0.74 bits per pixel as JPEG)
        // needed AVIF 85 and WebP 98; a detailed photograph (2.4) AVIF 72 and WebP 88.
        let smooth = for_encoder(ImageFormat::Avif, 85, 0.74);
        let detailed = for_encoder(ImageFormat::Avif, 85, 2.4);
        assert!((84..=88).contains(&smooth), "{smooth}");
        assert!((70..=75).contains(&detailed), "{detailed}");
        let smooth = for_encoder(ImageFormat::Webp, 85, 0.74);
        let detailed = for_encoder(ImageFormat::Webp, 85, 2.4);
        assert!((97..=100).contains(&smooth), "{smooth}");
        assert!((87..=91).contains(&detailed), "{detailed}");
    }

    #[test]
    fn every_quality_maps_into_range_and_higher_never_maps_lower() {
        for format in [ImageFormat::Webp, ImageFormat::Avif] {
            for bpp in [0.0, 0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 100.0, f64::NAN] {
                let mapped: Vec<u8> = (0..=255).map(|q| for_encoder(format, q, bpp)).collect();
                assert!(
                    mapped.iter().all(|q| (1..=100).contains(q)),
                    "{format:?} {bpp}"
                );
                assert!(
                    mapped.windows(2).all(|p| p[0] <= p[1]),
                    "{format:?} at {bpp} bits per pixel: {mapped:?}"
                );
            }
        }
    }
}
