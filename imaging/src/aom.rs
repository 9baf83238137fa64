//! AV1 still pictures through libaom, the reference AV1 encoder (BSD-2-Clause, the encoder
//! sharp and libavif use), built from source by `libaom-sys`: in the Worker it is portable C
//! compiled to wasm32 (see `imaging/wasm32/`).
//!
//! This module only speaks to libaom: every frame is one intra-only, one-pass encode at a
//! constant quality, and every resource libaom hands out is released by a guard's `Drop`.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::mem::MaybeUninit;

use libaom_sys as ffi;

use crate::TransformError;

/// libaom's flag for 16-bit input samples (1 << 18; `aom_codec_flags_t` is a C `long`, 32 bits
/// on wasm32 and 64 natively).
const HIGH_BIT_DEPTH: ffi::aom_codec_flags_t =
    ffi::AOM_CODEC_USE_HIGHBITDEPTH as ffi::aom_codec_flags_t;

/// One frame of 10-bit samples, plane by plane: Y at full resolution, then Cb and Cr at half
/// resolution in each direction (4:2:0), or Y alone for a monochrome frame.
#[derive(Debug)]
pub struct Frame {
    /// Luma width.
    pub width: u32,
    /// Luma height.
    pub height: u32,
    /// Each plane's samples, row after row, without padding.
    pub planes: Vec<Vec<u16>>,
}

/// How to encode a frame.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// libaom's constant-quality level: 0 best … 63.
    pub cq_level: u32,
    /// libaom's `cpu-used`: 0 slowest … 9 fastest for intra-only encodes.
    pub speed: u8,
    /// The frame has one plane (an alpha channel).
    pub monochrome: bool,
    /// Colour metadata for the sequence header; none for alpha.
    pub color: Option<Color>,
}

/// The H.273 colour description written into the sequence header.
#[derive(Debug, Clone, Copy)]
pub struct Color {
    /// Colour primaries.
    pub primaries: u32,
    /// Transfer characteristics.
    pub transfer: u32,
    /// Matrix coefficients.
    pub matrix: u32,
}

/// Encodes `frame` as one AV1 key frame and returns its OBUs.
pub fn encode(frame: &Frame, settings: &Settings) -> Result<Vec<u8>, TransformError> {
    let mut encoder = Encoder::new(frame, settings)?;
    let image = Image::from_frame(frame)?;
    encoder.encode(&image)
}

/// An initialised libaom encoder. The context is boxed: libaom is handed its address at
/// initialisation, so it never moves afterwards.
struct Encoder {
    context: Box<ffi::aom_codec_ctx_t>,
}

impl Encoder {
    fn new(frame: &Frame, settings: &Settings) -> Result<Self, TransformError> {
        // SAFETY: both structs are plain C data for which all-zero is a valid (empty) value;
        // libaom fills the configuration and initialises the context before either is read.
        let (mut config, mut context) = unsafe {
            (
                MaybeUninit::<ffi::aom_codec_enc_cfg_t>::zeroed().assume_init(),
                Box::new(MaybeUninit::<ffi::aom_codec_ctx_t>::zeroed().assume_init()),
            )
        };
        // SAFETY: the interface is a static table; `config` is writable.
        check(unsafe {
            ffi::aom_codec_enc_config_default(
                ffi::aom_codec_av1_cx(),
                &mut config,
                ffi::AOM_USAGE_ALL_INTRA,
            )
        })?;
        config.g_w = frame.width;
        config.g_h = frame.height;
        config.g_threads = 1;
        config.g_limit = 1; // a still picture
        config.g_lag_in_frames = 0;
        config.rc_end_usage = ffi::AOM_Q;
        config.g_bit_depth = ffi::AOM_BITS_10;
        config.g_input_bit_depth = 10;
        config.monochrome = u32::from(settings.monochrome);
        // SAFETY: `config` is complete (libaom copies it); on failure libaom leaves nothing to
        // release.
        check(unsafe {
            ffi::aom_codec_enc_init_ver(
                &mut *context,
                ffi::aom_codec_av1_cx(),
                &config,
                HIGH_BIT_DEPTH,
                ffi::AOM_ENCODER_ABI_VERSION as c_int,
            )
        })?;
        let mut encoder = Self { context };
        encoder.configure(settings)?;
        Ok(encoder)
    }

    fn configure(&mut self, settings: &Settings) -> Result<(), TransformError> {
        let mut controls = vec![
            (ffi::AOME_SET_CPUUSED, u32::from(settings.speed)),
            (ffi::AOME_SET_CQ_LEVEL, settings.cq_level.min(63)),
            (ffi::AOME_SET_TUNING, ffi::AOM_TUNE_SSIM),
            (ffi::AV1E_SET_COLOR_RANGE, ffi::AOM_CR_FULL_RANGE),
        ];
        if let Some(color) = settings.color {
            controls.extend([
                (ffi::AV1E_SET_COLOR_PRIMARIES, color.primaries),
                (ffi::AV1E_SET_TRANSFER_CHARACTERISTICS, color.transfer),
                (ffi::AV1E_SET_MATRIX_COEFFICIENTS, color.matrix),
            ]);
        }
        for (control, value) in controls {
            let value = c_int::try_from(value).map_err(|_| failed("control value out of range"))?;
            // SAFETY: the context is initialised; each of these controls takes one int.
            check(unsafe { ffi::aom_codec_control(&mut *self.context, control as c_int, value) })?;
        }
        Ok(())
    }

    fn encode(&mut self, image: &Image) -> Result<Vec<u8>, TransformError> {
        let mut out = Vec::new();
        // SAFETY: the context is initialised and `image` matches its configuration; a null
        // image flushes the encoder.
        check(unsafe { ffi::aom_codec_encode(&mut *self.context, image.raw, 0, 1, 0) })?;
        self.drain(&mut out);
        // SAFETY: as above.
        check(unsafe { ffi::aom_codec_encode(&mut *self.context, std::ptr::null(), 0, 1, 0) })?;
        self.drain(&mut out);
        if out.is_empty() {
            return Err(failed("libaom produced no frame"));
        }
        Ok(out)
    }

    /// Appends the encoded frames libaom has ready to `out`.
    fn drain(&mut self, out: &mut Vec<u8>) {
        let mut iterator: ffi::aom_codec_iter_t = std::ptr::null();
        loop {
            // SAFETY: the context is initialised; packets stay valid until the next call.
            let packet = unsafe { ffi::aom_codec_get_cx_data(&mut *self.context, &mut iterator) };
            // SAFETY: a non-null packet is libaom's, valid for this iteration.
            let Some(packet) = (unsafe { packet.as_ref() }) else {
                return;
            };
            if packet.kind == ffi::AOM_CODEC_CX_FRAME_PKT {
                // SAFETY: a frame packet's data is the `frame` member of the union, and its
                // buffer holds `sz` bytes.
                let bytes = unsafe {
                    let frame = packet.data.frame;
                    std::slice::from_raw_parts(frame.buf.cast::<u8>(), frame.sz)
                };
                out.extend_from_slice(bytes);
            }
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised by aom_codec_enc_init_ver.
        unsafe { ffi::aom_codec_destroy(&mut *self.context) };
    }
}

/// The 10-bit sample chroma is centred on.
const NEUTRAL: u16 = 512;

/// A 16-bit-per-sample libaom image holding a frame's samples.
struct Image {
    raw: *mut ffi::aom_image_t,
}

impl Image {
    fn from_frame(frame: &Frame) -> Result<Self, TransformError> {
        // SAFETY: a null image asks libaom to allocate one of the given format and size.
        let raw = unsafe {
            ffi::aom_img_alloc(
                std::ptr::null_mut(),
                ffi::AOM_IMG_FMT_I42016,
                frame.width,
                frame.height,
                16,
            )
        };
        if raw.is_null() {
            return Err(failed("cannot allocate the image"));
        }
        let image = Self { raw };
        // SAFETY: `raw` is a live image just allocated, and owned by `image`.
        let header = unsafe { &mut *raw };
        header.bit_depth = 10;
        for index in 0..3 {
            let shift = u32::from(index > 0);
            let width = ((frame.width + shift) >> shift) as usize;
            let rows = ((frame.height + shift) >> shift) as usize;
            let stride = usize::try_from(header.stride[index]).unwrap_or(0);
            let samples = frame.planes.get(index);
            for row in 0..rows {
                // SAFETY: plane `index` has `rows` rows of `stride` bytes, each with room for
                // `width` 16-bit samples.
                let line = unsafe {
                    let start = header.planes[index].add(row * stride).cast::<u16>();
                    std::slice::from_raw_parts_mut(start, width)
                };
                match samples.and_then(|s| s.get(row * width..(row + 1) * width)) {
                    Some(source) => line.copy_from_slice(source),
                    // A plane the frame does not have (chroma of a monochrome frame): neutral.
                    None => line.fill(NEUTRAL),
                }
            }
        }
        Ok(image)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: `raw` came from aom_img_alloc and is freed once.
        unsafe { ffi::aom_img_free(self.raw) };
    }
}

fn check(status: ffi::aom_codec_err_t) -> Result<(), TransformError> {
    if status == ffi::AOM_CODEC_OK {
        Ok(())
    } else {
        Err(failed(&format!("libaom error {status}")))
    }
}

fn failed(reason: &str) -> TransformError {
    TransformError::Encode(format!("AVIF: {reason}"))
}
