//! AVIF encoding: libaom ([`crate::aom`]) for the AV1 picture, `avif-serialize` for the
//! container. Colour is 10-bit with 4:2:0 chroma (BT.601, full range) and transparency a
//! separate monochrome picture.
//!
//! sharp writes 4:4:4 at 8 bits by default. Halving the chroma resolution makes photographs
//! about a tenth smaller at the same DSSIM and saves the encoder half of its chroma samples;
//! 10 bits rather than 8 make them smaller again at no visible cost
//! (`scripts/bench-images.sh` measures the result against sharp).

use image::RgbaImage;

use crate::aom::{self, Color, Frame, Settings};
use crate::TransformError;

/// Bits per sample of every plane.
const DEPTH: u8 = 10;
/// The largest 10-bit sample.
const MAX: f32 = 1023.0;

/// H.273 code points: BT.709 primaries, sRGB transfer, BT.601 matrix.
const SRGB_BT601: Color = Color {
    primaries: 1,
    transfer: 13,
    matrix: 6,
};

/// Encodes `image` at `quality` (1–100) with libaom's `speed` (`cpu-used`, 0 slowest … 9
/// fastest). Opaque images get no alpha plane.
pub fn encode(image: &RgbaImage, quality: u8, speed: u8) -> Result<Vec<u8>, TransformError> {
    let (width, height) = (image.width(), image.height());
    let settings = Settings {
        cq_level: cq_level(quality),
        speed,
        monochrome: false,
        color: Some(SRGB_BT601),
    };
    let color = aom::encode(&color_frame(image), &settings)?;
    let opaque = image.pixels().all(|pixel| pixel[3] == u8::MAX);
    let alpha = if opaque {
        None
    } else {
        let alpha_settings = Settings {
            monochrome: true,
            color: None,
            ..settings
        };
        Some(aom::encode(&alpha_frame(image), &alpha_settings)?)
    };
    let mut container = avif_serialize::Aviffy::new();
    container
        .set_matrix_coefficients(avif_serialize::constants::MatrixCoefficients::Bt601)
        .set_full_color_range(true)
        .set_chroma_subsampling((true, true))
        // The main profile: 4:2:0 and monochrome.
        .set_seq_profile(0);
    Ok(container.to_vec(&color, alpha.as_deref(), width, height, DEPTH))
}

/// libaom's constant-quality level (0 best … 63) for a quality of 1–100: the mapping libheif
/// (and so sharp) uses, so that a quality means the same on both.
fn cq_level(quality: u8) -> u32 {
    let quality = u32::from(quality.clamp(1, 100));
    ((100 - quality) * 63 + 50) / 100
}

/// BT.601 Y, Cb and Cr of an sRGB pixel on the 8-bit scale: Y in 0–255, Cb and Cr centred on 0.
fn ycbcr(pixel: &image::Rgba<u8>) -> [f32; 3] {
    let [r, g, b] = [pixel[0], pixel[1], pixel[2]].map(f32::from);
    [
        0.299 * r + 0.587 * g + 0.114 * b,
        -0.168_736 * r - 0.331_264 * g + 0.5 * b,
        0.5 * r - 0.418_688 * g - 0.081_312 * b,
    ]
}

/// A full-range 10-bit sample of an 8-bit-scale value, offset by `centre` (H.273: 0 for luma
/// and alpha, 512 for chroma).
fn sample(value: f32, centre: f32) -> u16 {
    (value * (MAX / 255.0) + centre).round().clamp(0.0, MAX) as u16
}

/// The 10-bit value chroma is centred on.
const CHROMA_CENTRE: f32 = 512.0;

/// Luma at full resolution; each chroma sample the mean of a 2×2 block.
fn color_frame(image: &RgbaImage) -> Frame {
    let (width, height) = (image.width(), image.height());
    let luma = image
        .pixels()
        .map(|pixel| sample(ycbcr(pixel)[0], 0.0))
        .collect();
    let (chroma_width, chroma_height) = (width.div_ceil(2), height.div_ceil(2));
    let chroma = |channel: usize| -> Vec<u16> {
        (0..chroma_height)
            .flat_map(|cy| (0..chroma_width).map(move |cx| (cx, cy)))
            .map(|(cx, cy)| {
                let (mut sum, mut count) = (0.0, 0.0);
                for (x, y) in block(cx, cy, width, height) {
                    sum += ycbcr(image.get_pixel(x, y))[channel];
                    count += 1.0;
                }
                sample(sum / count, CHROMA_CENTRE)
            })
            .collect()
    };
    Frame {
        width,
        height,
        planes: vec![luma, chroma(1), chroma(2)],
    }
}

/// The pixels of the 2×2 block at chroma position (`cx`, `cy`) that lie inside the image.
fn block(cx: u32, cy: u32, width: u32, height: u32) -> impl Iterator<Item = (u32, u32)> {
    [(0, 0), (1, 0), (0, 1), (1, 1)]
        .into_iter()
        .map(move |(dx, dy)| (2 * cx + dx, 2 * cy + dy))
        .filter(move |&(x, y)| x < width && y < height)
}

fn alpha_frame(image: &RgbaImage) -> Frame {
    Frame {
        width: image.width(),
        height: image.height(),
        planes: vec![image
            .pixels()
            .map(|pixel| sample(f32::from(pixel[3]), 0.0))
            .collect()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_maps_onto_libheifs_scale() {
        assert_eq!(cq_level(100), 0);
        assert_eq!(cq_level(50), 32, "sharp's default quality");
        assert_eq!(cq_level(1), 62);
        assert!(cq_level(85) < cq_level(50));
    }

    #[test]
    fn grey_has_neutral_chroma_and_full_range_luma() {
        let [y, cb, cr] = ycbcr(&image::Rgba([255, 255, 255, 255]));
        let chroma = |v| sample(v, CHROMA_CENTRE);
        assert_eq!((sample(y, 0.0), chroma(cb), chroma(cr)), (1023, 512, 512));
        let [y, cb, cr] = ycbcr(&image::Rgba([0, 0, 0, 255]));
        assert_eq!((sample(y, 0.0), chroma(cb), chroma(cr)), (0, 512, 512));
        let [_, cb, _] = ycbcr(&image::Rgba([0, 0, 255, 255]));
        assert_eq!(chroma(cb), 1023, "pure blue is the top of Cb");
    }

    #[test]
    fn blocks_stop_at_odd_edges() {
        assert_eq!(block(0, 0, 3, 3).count(), 4);
        assert_eq!(block(1, 1, 3, 3).collect::<Vec<_>>(), vec![(2, 2)]);
    }
}
