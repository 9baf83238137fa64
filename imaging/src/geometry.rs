//! Where the pixels go: Cloudflare's `fit` modes as a resize, an optional centred crop and an
//! optional padded canvas.

use image::imageops::FilterType;
use image::{DynamicImage, GenericImage, Rgba, RgbaImage};
use shared::image::{Fit, ImageRequest};

/// The steps of one transformation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Size after resizing (the source's own size when unchanged).
    pub width: u32,
    /// Height after resizing.
    pub height: u32,
    /// A centred crop of the resized image: `(x, y, width, height)`.
    pub crop: Option<(u32, u32, u32, u32)>,
    /// A canvas the image is centred on (`fit=pad`).
    pub canvas: Option<(u32, u32)>,
}

/// The plan for a `source_width` × `source_height` image.
///
/// - `scale-down`: fit inside the box, never enlarged (the default);
/// - `contain`: fit inside the box, enlarged if needed;
/// - `cover`: fill the box, the overflow cropped from the centre;
/// - `crop`: like `cover`, but never enlarged (a smaller image is only scaled down);
/// - `pad`: like `contain`, centred on a canvas of exactly the box.
///
/// With one side given, the other follows the aspect ratio and the fill modes act as `contain`.
pub fn plan(source_width: u32, source_height: u32, request: &ImageRequest) -> Plan {
    let (sw, sh) = (f64::from(source_width), f64::from(source_height));
    let unchanged = Plan {
        width: source_width,
        height: source_height,
        crop: None,
        canvas: None,
    };
    let (box_w, box_h) = match (request.device_width(), request.device_height()) {
        (None, None) => return unchanged,
        (Some(w), None) => (f64::from(w), sh * f64::from(w) / sw),
        (None, Some(h)) => (sw * f64::from(h) / sh, f64::from(h)),
        (Some(w), Some(h)) => (f64::from(w), f64::from(h)),
    };
    let both = request.device_width().is_some() && request.device_height().is_some();
    let inside = (box_w / sw).min(box_h / sh);
    let fill = (box_w / sw).max(box_h / sh);
    let sized = |scale: f64| (px(sw * scale), px(sh * scale));
    match request.fit {
        Fit::ScaleDown if inside >= 1.0 => unchanged,
        Fit::ScaleDown | Fit::Contain => resized(sized(inside)),
        Fit::Pad => {
            let mut plan = resized(sized(inside));
            plan.canvas = Some((px(box_w), px(box_h)));
            plan
        }
        Fit::Cover | Fit::Crop if !both => resized(sized(inside)),
        Fit::Crop if fill >= 1.0 => {
            // Filling the box would enlarge: keep the size, crop what overflows.
            let mut plan = unchanged;
            plan.crop = centred(plan.width, plan.height, px(box_w), px(box_h));
            plan
        }
        Fit::Cover | Fit::Crop => {
            let mut plan = resized(sized(fill));
            plan.crop = centred(plan.width, plan.height, px(box_w), px(box_h));
            plan
        }
    }
}

fn resized((width, height): (u32, u32)) -> Plan {
    Plan {
        width,
        height,
        crop: None,
        canvas: None,
    }
}

fn px(value: f64) -> u32 {
    value.round().clamp(1.0, f64::from(u32::MAX)) as u32
}

fn centred(width: u32, height: u32, box_w: u32, box_h: u32) -> Option<(u32, u32, u32, u32)> {
    let (w, h) = (width.min(box_w), height.min(box_h));
    ((w, h) != (width, height)).then(|| ((width - w) / 2, (height - h) / 2, w, h))
}

/// Carries out `plan`. The pad canvas is white, or transparent when the output keeps alpha.
pub fn apply(image: DynamicImage, plan: &Plan, keeps_alpha: bool) -> DynamicImage {
    let mut image = if (plan.width, plan.height) == (image.width(), image.height()) {
        image
    } else {
        image.resize_exact(plan.width, plan.height, FilterType::CatmullRom)
    };
    if let Some((x, y, w, h)) = plan.crop {
        image = image.crop_imm(x, y, w, h);
    }
    if let Some((w, h)) = plan.canvas {
        let background = if keeps_alpha {
            Rgba([0, 0, 0, 0])
        } else {
            Rgba([255, 255, 255, 255])
        };
        let mut canvas = RgbaImage::from_pixel(w, h, background);
        let (x, y) = (
            (w - image.width().min(w)) / 2,
            (h - image.height().min(h)) / 2,
        );
        if canvas.copy_from(&image.to_rgba8(), x, y).is_ok() {
            image = DynamicImage::ImageRgba8(canvas);
        }
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(options: &str) -> ImageRequest {
        ImageRequest::parse(&format!("/cdn-cgi/image/{options}/images/a.jpg")).expect("valid")
    }

    fn size(plan: Plan) -> (u32, u32) {
        match (plan.crop, plan.canvas) {
            (_, Some(canvas)) => canvas,
            (Some((_, _, w, h)), None) => (w, h),
            (None, None) => (plan.width, plan.height),
        }
    }

    #[test]
    fn fit_modes_follow_cloudflare() {
        // A 1600×1067 photo.
        let (w, h) = (1600, 1067);
        assert_eq!(size(plan(w, h, &request("width=800"))), (800, 534));
        assert_eq!(
            size(plan(w, h, &request("width=3200"))),
            (1600, 1067),
            "scale-down never enlarges"
        );
        assert_eq!(
            size(plan(w, h, &request("width=3200,fit=contain"))),
            (3200, 2134)
        );
        assert_eq!(
            size(plan(w, h, &request("width=400,height=400,fit=contain"))),
            (400, 267)
        );
        assert_eq!(
            size(plan(w, h, &request("width=400,height=400,fit=cover"))),
            (400, 400)
        );
        assert_eq!(
            size(plan(w, h, &request("width=400,height=400,fit=pad"))),
            (400, 400)
        );
        assert_eq!(
            size(plan(w, h, &request("width=400,height=400,fit=crop"))),
            (400, 400)
        );
        assert_eq!(
            size(plan(w, h, &request("width=3000,height=500,fit=crop"))),
            (1600, 500),
            "crop never enlarges: the overflowing side is cropped"
        );
        assert_eq!(size(plan(w, h, &request("width=400,dpr=2"))), (800, 534));
        assert_eq!(size(plan(w, h, &request("quality=50"))), (1600, 1067));
    }
}
