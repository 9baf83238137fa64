//! Image transformations for the edge: bounded before any pixel is decoded, then decoded
//! (JPEG, PNG, GIF's first frame, WebP), turned upright by its EXIF orientation, fitted to the
//! requested box, and encoded without metadata (AVIF, lossy WebP, JPEG, PNG). Rust, and C for
//! the reference encoders libaom and libwebp, which build for wasm32 with clang.
//!
//! The limits keep a decompression bomb from reaching the decoder: a 50 000 × 50 000 PNG of a
//! few kilobytes is refused from its header, before it could ask for gigabytes.

mod aom;
mod avif;
#[cfg(any(target_arch = "wasm32", test))]
mod c_runtime;
mod encode;
mod geometry;
pub mod quality;
mod webp;

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader};
use shared::error_body::ErrorCode;
use shared::image::{ImageFormat, ImageRequest, SourceFormat};

pub use encode::{affordable, avif_speed, encode_at, jpeg_bits_per_pixel, pixel_budget};
pub use geometry::{plan, Plan};

/// Bounds on what a transformation accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest source, in bytes.
    pub max_source_bytes: usize,
    /// Most source pixels (width × height): decoded RGBA needs 4 bytes each, and a Worker
    /// isolate has 128 MB.
    pub max_source_pixels: u64,
    /// Longest source side.
    pub max_source_side: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_source_bytes: 20 * 1024 * 1024,
            max_source_pixels: 16_000_000,
            max_source_side: 12_000,
        }
    }
}

/// Why a transformation was refused or failed; each has a stable code and an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The source has more bytes than allowed.
    #[error("the source image has {bytes} bytes; at most {limit} are accepted")]
    SourceTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The source's header declares too many pixels (a decompression bomb, or just too big).
    #[error("the source image is {width}×{height}; at most {max_pixels} pixels and {max_side} px a side are accepted")]
    TooManyPixels {
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// Pixel limit.
        max_pixels: u64,
        /// Side limit.
        max_side: u32,
    },
    /// Not a JPEG, PNG, GIF or WebP.
    #[error("the source is not a JPEG, PNG, GIF or WebP image")]
    Unsupported,
    /// The bytes do not decode.
    #[error("the source image cannot be decoded: {0}")]
    Undecodable(String),
    /// Encoding failed.
    #[error("encoding failed: {0}")]
    Encode(String),
}

impl TransformError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::SourceTooLarge { .. } => ErrorCode::ImageSourceTooLarge,
            Self::TooManyPixels { .. } => ErrorCode::ImageTooManyPixels,
            Self::Unsupported => ErrorCode::ImageUnsupported,
            Self::Undecodable(_) => ErrorCode::ImageUndecodable,
            Self::Encode(_) => ErrorCode::ImageEncodeFailed,
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::SourceTooLarge { .. } => 413,
            Self::Unsupported => 415,
            Self::TooManyPixels { .. } | Self::Undecodable(_) => 422,
            Self::Encode(_) => 500,
        }
    }
}

/// A transformed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The encoded bytes.
    pub bytes: Vec<u8>,
    /// Their format.
    pub format: ImageFormat,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
}

/// What a source's header says, read before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceInfo {
    /// Its container.
    pub format: SourceFormat,
    /// Declared width.
    pub width: u32,
    /// Declared height.
    pub height: u32,
}

impl SourceInfo {
    /// How many pixels the output of `request` will have (EXIF rotation aside, which does not
    /// change the count of a box fit by more than the aspect ratio).
    pub fn output_pixels(&self, request: &ImageRequest) -> u64 {
        let plan = plan(self.width, self.height, request);
        let cropped = plan.crop.map(|(_, _, w, h)| (w, h));
        let (width, height) = plan.canvas.or(cropped).unwrap_or((plan.width, plan.height));
        u64::from(width) * u64::from(height)
    }
}

/// Checks `source` against `limits` from its header alone, and names its format.
pub fn inspect(source: &[u8], limits: &Limits) -> Result<SourceFormat, TransformError> {
    measure(source, limits).map(|info| info.format)
}

/// Checks `source` against `limits` from its header alone, and reads its format and size.
pub fn measure(source: &[u8], limits: &Limits) -> Result<SourceInfo, TransformError> {
    if source.len() > limits.max_source_bytes {
        return Err(TransformError::SourceTooLarge {
            bytes: source.len(),
            limit: limits.max_source_bytes,
        });
    }
    let format = SourceFormat::sniff(source)
        .filter(|format| *format != SourceFormat::Avif)
        .ok_or(TransformError::Unsupported)?;
    let size = imagesize::blob_size(source)
        .map_err(|error| TransformError::Undecodable(error.to_string()))?;
    let (width, height) = (size.width as u64, size.height as u64);
    let side = u64::from(limits.max_source_side);
    if width * height > limits.max_source_pixels || width > side || height > side {
        return Err(TransformError::TooManyPixels {
            width,
            height,
            max_pixels: limits.max_source_pixels,
            max_side: limits.max_source_side,
        });
    }
    Ok(SourceInfo {
        format,
        width: width as u32,
        height: height as u32,
    })
}

/// Transforms `source` as `request` asks, into `format`.
pub fn transform(
    source: &[u8],
    request: &ImageRequest,
    format: ImageFormat,
    limits: &Limits,
) -> Result<Output, TransformError> {
    inspect(source, limits)?;
    let image = decode_upright(source, limits)?;
    let plan = plan(image.width(), image.height(), request);
    let fitted = geometry::apply(image, &plan, format == ImageFormat::Png);
    let bytes = encode::encode(&fitted, format, request.quality)?;
    Ok(Output {
        bytes,
        format,
        width: fitted.width(),
        height: fitted.height(),
    })
}

fn decode_upright(source: &[u8], limits: &Limits) -> Result<DynamicImage, TransformError> {
    let undecodable = |error: image::ImageError| TransformError::Undecodable(error.to_string());
    let mut reader = ImageReader::new(Cursor::new(source))
        .with_guessed_format()
        .map_err(|error| TransformError::Undecodable(error.to_string()))?;
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_source_side);
    decoder_limits.max_image_height = Some(limits.max_source_side);
    decoder_limits.max_alloc = Some(limits.max_source_pixels * 4 + (16 << 20));
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let orientation = decoder.orientation().map_err(undecodable)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    image.apply_orientation(orientation);
    Ok(image)
}
