//! AVIF encoding with rav1e: 10-bit colour with 4:2:0 chroma (BT.601, full range, as sharp
//! and libvips write AVIF), and transparency as a separate monochrome plane.
//!
//! Against 4:4:4 (what `ravif` writes), halving the chroma resolution makes photographs about
//! a tenth smaller at the same DSSIM and saves the encoder half of its samples; 10 bits rather
//! than 8 make them smaller again at no visible cost (`scripts/bench-images.sh` measures both).

use image::RgbaImage;
use rav1e::prelude::{
    ChromaSamplePosition, ChromaSampling, ColorDescription, ColorPrimaries, Config, Context,
    EncoderConfig, EncoderStatus, FrameType, MatrixCoefficients, PixelRange, SpeedSettings,
    TransferCharacteristics, Tune,
};

use crate::TransformError;

/// Bits per sample of every plane.
const DEPTH: usize = 10;
/// The largest 10-bit sample.
const MAX: f32 = 1023.0;

/// Encodes `image` at `quality` (1–100) with rav1e's `speed` preset (1 slowest … 10 fastest).
/// Opaque images get no alpha plane.
pub fn encode(image: &RgbaImage, quality: u8, speed: u8) -> Result<Vec<u8>, TransformError> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let quantizer = quantizer(quality);
    let color = encode_frame(
        settings(width, height, ChromaSampling::Cs420, quantizer, speed),
        |planes| fill_color(image, planes),
    )?;
    let opaque = image.pixels().all(|pixel| pixel[3] == u8::MAX);
    let alpha = if opaque {
        None
    } else {
        Some(encode_frame(
            settings(width, height, ChromaSampling::Cs400, quantizer, speed),
            |planes| fill_alpha(image, planes),
        )?)
    };
    let mut container = avif_serialize::Aviffy::new();
    container
        .set_matrix_coefficients(avif_serialize::constants::MatrixCoefficients::Bt601)
        .set_full_color_range(true)
        .set_chroma_subsampling((true, true))
        // The main profile: 4:2:0 and monochrome.
        .set_seq_profile(0);
    Ok(container.to_vec(
        &color,
        alpha.as_deref(),
        width as u32,
        height as u32,
        DEPTH as u8,
    ))
}

/// rav1e's quantizer (0 best … 255) for a quality of 1–100: the scale `ravif` and `cavif` use,
/// so that a quality means what it meant before.
fn quantizer(quality: u8) -> usize {
    let q = f32::from(quality.clamp(1, 100)) / 100.0;
    let x = if q >= 0.82 {
        (1.0 - q) * 2.6
    } else if q > 0.25 {
        q.mul_add(-0.5, 1.0 - 0.125)
    } else {
        1.0 - q
    };
    (x * 255.0).round() as usize
}

fn settings(
    width: usize,
    height: usize,
    chroma_sampling: ChromaSampling,
    quantizer: usize,
    speed: u8,
) -> Config {
    let mut speed_settings = SpeedSettings::from_preset(speed);
    // One frame: nothing to look ahead to.
    speed_settings.rdo_lookahead_frames = 1;
    let color = chroma_sampling != ChromaSampling::Cs400;
    Config::new()
        // A Worker has one thread.
        .with_threads(1)
        .with_encoder_config(EncoderConfig {
            width,
            height,
            bit_depth: DEPTH,
            chroma_sampling,
            chroma_sample_position: ChromaSamplePosition::Unknown,
            pixel_range: PixelRange::Full,
            color_description: color.then_some(ColorDescription {
                transfer_characteristics: TransferCharacteristics::SRGB,
                color_primaries: ColorPrimaries::BT709,
                matrix_coefficients: MatrixCoefficients::BT601,
            }),
            still_picture: true,
            quantizer,
            min_quantizer: u8::try_from(quantizer).unwrap_or(u8::MAX),
            tune: Tune::Psychovisual,
            speed_settings,
            ..EncoderConfig::default()
        })
}

/// The frame's planes, in order (Y, Cb, Cr; or the one plane of a monochrome frame).
type Planes = [rav1e::prelude::Plane<u16>];

fn encode_frame(config: Config, fill: impl FnOnce(&mut Planes)) -> Result<Vec<u8>, TransformError> {
    let failed = |error: &dyn std::fmt::Display| TransformError::Encode(error.to_string());
    let mut context: Context<u16> = config.new_context().map_err(|e| failed(&e))?;
    let mut frame = context.new_frame();
    fill(&mut frame.planes[..]);
    context.send_frame(frame).map_err(|e| failed(&e))?;
    context.flush();
    let mut out = Vec::new();
    loop {
        match context.receive_packet() {
            Ok(mut packet) if packet.frame_type == FrameType::KEY => out.append(&mut packet.data),
            Ok(_) => {}
            Err(EncoderStatus::Encoded | EncoderStatus::LimitReached) => return Ok(out),
            Err(error) => return Err(failed(&error)),
        }
    }
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
fn fill_color(image: &RgbaImage, planes: &mut Planes) {
    let (width, height) = (image.width(), image.height());
    if let Some(luma) = planes.first_mut() {
        let mut rows = luma.mut_slice(Default::default());
        for (y, row) in rows.rows_iter_mut().take(height as usize).enumerate() {
            for (x, out) in row.iter_mut().take(width as usize).enumerate() {
                *out = sample(ycbcr(image.get_pixel(x as u32, y as u32))[0], 0.0);
            }
        }
    }
    let (chroma_width, chroma_height) = (width.div_ceil(2), height.div_ceil(2));
    for (channel, plane) in planes.iter_mut().enumerate().skip(1).take(2) {
        let mut rows = plane.mut_slice(Default::default());
        for (cy, row) in rows
            .rows_iter_mut()
            .take(chroma_height as usize)
            .enumerate()
        {
            for (cx, out) in row.iter_mut().take(chroma_width as usize).enumerate() {
                let (mut sum, mut count) = (0.0, 0.0);
                for (x, y) in block(cx as u32, cy as u32, width, height) {
                    sum += ycbcr(image.get_pixel(x, y))[channel];
                    count += 1.0;
                }
                *out = sample(sum / count, CHROMA_CENTRE);
            }
        }
    }
}

/// The pixels of the 2×2 block at chroma position (`cx`, `cy`) that lie inside the image.
fn block(cx: u32, cy: u32, width: u32, height: u32) -> impl Iterator<Item = (u32, u32)> {
    [(0, 0), (1, 0), (0, 1), (1, 1)]
        .into_iter()
        .map(move |(dx, dy)| (2 * cx + dx, 2 * cy + dy))
        .filter(move |&(x, y)| x < width && y < height)
}

fn fill_alpha(image: &RgbaImage, planes: &mut Planes) {
    let Some(plane) = planes.first_mut() else {
        return;
    };
    let mut rows = plane.mut_slice(Default::default());
    for (y, row) in rows
        .rows_iter_mut()
        .take(image.height() as usize)
        .enumerate()
    {
        for (x, out) in row.iter_mut().take(image.width() as usize).enumerate() {
            *out = sample(f32::from(image.get_pixel(x as u32, y as u32)[3]), 0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_maps_onto_the_quantizer_scale() {
        assert!(quantizer(100) < quantizer(85));
        assert!(quantizer(85) < quantizer(50));
        assert!(quantizer(50) < quantizer(1));
        assert!(quantizer(1) <= 255);
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
