//! Lossy WebP through libwebp, the reference encoder (BSD-3-Clause, the same library sharp and
//! every browser's own tools use), built from source by `libwebp-sys`: in the Worker it is C
//! compiled to wasm32, its few C library calls answered by [`crate::c_runtime`].
//!
//! This is the one module of the crate that calls C; every pointer handed to libwebp lives for
//! the whole call and every allocation libwebp makes is released by [`Encoding`]'s `Drop`.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use image::DynamicImage;
use libwebp_sys as ffi;

use crate::TransformError;

/// libwebp's `method`: 0 fastest … 6 smallest. 4 is libwebp's and sharp's default.
pub const METHOD: c_int = 4;

/// Encodes `image` as lossy WebP at `quality` (1–100), with an alpha plane only when the
/// image has one.
pub fn encode(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, TransformError> {
    let mut config =
        ffi::WebPConfig::new_with_preset(ffi::WebPPreset::WEBP_PRESET_DEFAULT, f32::from(quality))
            .map_err(|()| failed("this libwebp does not match its bindings"))?;
    config.method = METHOD;
    // SAFETY: `config` is an initialised WebPConfig.
    if unsafe { ffi::WebPValidateConfig(&config) } == 0 {
        return Err(failed("libwebp refused its configuration"));
    }
    let mut encoding = Encoding::new()?;
    encoding.import(image)?;
    encoding.run(&config)
}

/// One picture on its way through libwebp.
struct Encoding {
    picture: ffi::WebPPicture,
}

impl Encoding {
    fn new() -> Result<Self, TransformError> {
        let picture = ffi::WebPPicture::new()
            .map_err(|()| failed("this libwebp does not match its bindings"))?;
        Ok(Self { picture })
    }

    /// Copies the pixels into the picture (converted to YUV, as lossy WebP stores them).
    fn import(&mut self, image: &DynamicImage) -> Result<(), TransformError> {
        let too_large = || failed("the image is larger than WebP's 16383 px a side");
        self.picture.width = c_int::try_from(image.width()).map_err(|_| too_large())?;
        self.picture.height = c_int::try_from(image.height()).map_err(|_| too_large())?;
        let imported = if image.color().has_alpha() {
            let rgba = image.to_rgba8();
            let stride = self.picture.width * 4;
            // SAFETY: `rgba` holds width × height pixels of 4 bytes, rows `stride` apart.
            unsafe { ffi::WebPPictureImportRGBA(&mut self.picture, rgba.as_ptr(), stride) }
        } else {
            let rgb = image.to_rgb8();
            let stride = self.picture.width * 3;
            // SAFETY: `rgb` holds width × height pixels of 3 bytes, rows `stride` apart.
            unsafe { ffi::WebPPictureImportRGB(&mut self.picture, rgb.as_ptr(), stride) }
        };
        if imported == 0 {
            return Err(self.error());
        }
        Ok(())
    }

    fn run(mut self, config: &ffi::WebPConfig) -> Result<Vec<u8>, TransformError> {
        let mut output = Vec::new();
        self.picture.writer = Some(append);
        self.picture.custom_ptr = std::ptr::from_mut::<Vec<u8>>(&mut output).cast::<c_void>();
        // SAFETY: `config` is valid, `picture` holds imported pixels, and `custom_ptr` points at
        // `output`, which outlives the call; `append`, the only reader, runs only inside it.
        let encoded = unsafe { ffi::WebPEncode(config, &mut self.picture) };
        self.picture.custom_ptr = std::ptr::null_mut();
        if encoded == 0 {
            return Err(self.error());
        }
        Ok(output)
    }

    fn error(&self) -> TransformError {
        failed(&format!("libwebp error {:?}", self.picture.error_code))
    }
}

impl Drop for Encoding {
    fn drop(&mut self) {
        // SAFETY: the picture was initialised by WebPPictureInit; freeing releases what the
        // import allocated and is a no-op when nothing was.
        unsafe { ffi::WebPPictureFree(&mut self.picture) }
    }
}

/// libwebp's writer callback: appends each chunk of output to the `Vec` at `custom_ptr`.
unsafe extern "C" fn append(
    data: *const u8,
    size: usize,
    picture: *const ffi::WebPPicture,
) -> c_int {
    // SAFETY: libwebp passes the picture being encoded, whose `custom_ptr` was set by
    // `Encoding::run` to its live output buffer, and `size` readable bytes at `data`.
    unsafe {
        let output = &mut *(*picture).custom_ptr.cast::<Vec<u8>>();
        if size > 0 {
            output.extend_from_slice(std::slice::from_raw_parts(data, size));
        }
    }
    1
}

fn failed(reason: &str) -> TransformError {
    TransformError::Encode(format!("WebP: {reason}"))
}
