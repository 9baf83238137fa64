//! Image transformation URLs in Cloudflare's format: `/cdn-cgi/image/<options>/<source-path>`.
//!
//! Options are comma-separated `name=value` pairs with Cloudflare's names (and their one-letter
//! aliases `w`, `h`, `q`, `f`, `g`). Every value is bounded (at most [`MAX_DIMENSION`] pixels a
//! side, quality 1–100, dpr 1–4) and every unknown option is an error, so a client cannot mint
//! unbounded cache variants. [`ImageRequest::canonical_options`] writes equivalent option strings
//! identically, so they share one cache entry.

use std::fmt;

use crate::error_body::ErrorCode;

/// The URL prefix of transformed images.
pub const PREFIX: &str = "/cdn-cgi/image/";
/// The largest width or height, in pixels, before and after `dpr`.
pub const MAX_DIMENSION: u32 = 4096;
/// The quality used when the URL gives none.
pub const DEFAULT_QUALITY: u8 = 85;

/// An image format Rampart can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageFormat {
    /// AV1 Image File Format.
    Avif,
    /// WebP (lossy for photographs).
    Webp,
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
}

impl ImageFormat {
    /// The format's short name, as in `format=` and cache-key variants.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avif => "avif",
            Self::Webp => "webp",
            Self::Jpeg => "jpeg",
            Self::Png => "png",
        }
    }

    /// The `image/<subtype>` subtype.
    pub fn subtype(self) -> &'static str {
        self.as_str()
    }

    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Avif => "image/avif",
            Self::Webp => "image/webp",
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }

    /// Whether clients must name the format in `Accept` to receive it.
    pub fn is_modern(self) -> bool {
        matches!(self, Self::Avif | Self::Webp)
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "avif" => Some(Self::Avif),
            "webp" => Some(Self::Webp),
            "jpeg" | "jpg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            _ => None,
        }
    }
}

/// The container of an uploaded or fetched image, read from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// PNG (`89 50 4E 47 0D 0A 1A 0A`).
    Png,
    /// GIF (`GIF87a` / `GIF89a`).
    Gif,
    /// WebP (`RIFF....WEBP`).
    Webp,
    /// AVIF (`....ftypavif` or `ftypavis`).
    Avif,
}

impl SourceFormat {
    /// Identifies an image by its magic bytes, whatever its declared type.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            [_, _, _, _, b'f', b't', b'y', b'p', b'a', b'v', b'i', b'f' | b's', ..] => {
                Some(Self::Avif)
            }
            _ => None,
        }
    }

    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
            Self::Avif => "image/avif",
        }
    }

    /// The output format used when no modern format is negotiated: photographs stay JPEG,
    /// everything that may carry transparency becomes PNG.
    pub fn fallback_output(self) -> ImageFormat {
        match self {
            Self::Jpeg => ImageFormat::Jpeg,
            _ => ImageFormat::Png,
        }
    }
}

/// How the image is fitted into `width` × `height`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fit {
    /// Shrink to fit inside, never enlarge (the default).
    #[default]
    ScaleDown,
    /// Fit inside, enlarging if needed.
    Contain,
    /// Fill the box, cropping the excess.
    Cover,
    /// Crop to the box without enlarging.
    Crop,
    /// Fit inside and pad to the exact box.
    Pad,
}

impl Fit {
    /// Cloudflare's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScaleDown => "scale-down",
            Self::Contain => "contain",
            Self::Cover => "cover",
            Self::Crop => "crop",
            Self::Pad => "pad",
        }
    }
}

/// The requested output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FormatChoice {
    /// Negotiate from `Accept` (the default).
    #[default]
    Auto,
    /// Always this format.
    Fixed(ImageFormat),
}

/// What metadata survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Metadata {
    /// Strip everything (the default: smaller, and no leaked GPS positions).
    #[default]
    None,
    /// Keep copyright fields only.
    Copyright,
    /// Keep everything.
    Keep,
}

impl Metadata {
    /// Cloudflare's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Copyright => "copyright",
            Self::Keep => "keep",
        }
    }
}

/// A parsed, bounded transformation request.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRequest {
    /// Target width in CSS pixels.
    pub width: Option<u32>,
    /// Target height in CSS pixels.
    pub height: Option<u32>,
    /// Fitting mode.
    pub fit: Fit,
    /// Quality, 1–100, on JPEG's scale for every format (the `imaging` crate maps it onto each
    /// encoder's own).
    pub quality: u8,
    /// Output format.
    pub format: FormatChoice,
    /// Device pixel ratio, 1–4, in tenths (`dpr=1.5` is 15).
    pub dpr_tenths: u8,
    /// Metadata policy.
    pub metadata: Metadata,
    /// The source image path on the origin (starts with `/`).
    pub source: String,
    /// The `sig=` option, when given (see [`crate::image_signing`]); never part of the
    /// canonical options.
    pub signature: Option<String>,
}

/// Why an image URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageOptionError {
    /// The path does not start with `/cdn-cgi/image/`.
    #[error("not an image transformation URL")]
    NotImageUrl,
    /// No source path after the options.
    #[error("missing source image path")]
    MissingSource,
    /// The source is an absolute URL, protocol-relative, escapes with `..`, or loops back.
    #[error("source {0:?} must be a path on this site")]
    InvalidSource(String),
    /// An option name Rampart does not support.
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    /// An option without `=value`, or given twice.
    #[error("malformed or repeated option {0:?}")]
    Malformed(String),
    /// A value that is not of the option's type.
    #[error("invalid value {value:?} for {option}")]
    InvalidValue {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
    },
    /// A number outside the option's bounds.
    #[error("{option}={value} is out of range {min}..={max}")]
    OutOfRange {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
        /// Smallest allowed.
        min: u32,
        /// Largest allowed.
        max: u32,
    },
}

impl ImageOptionError {
    /// The stable code of its error body.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotImageUrl | Self::MissingSource | Self::InvalidSource(_) => {
                ErrorCode::ImageSourceInvalid
            }
            Self::UnknownOption(_) | Self::Malformed(_) => ErrorCode::ImageOptionInvalid,
            Self::InvalidValue { .. } | Self::OutOfRange { .. } => ErrorCode::ImageOptionOutOfRange,
        }
    }
}

impl ImageRequest {
    /// Parses `/cdn-cgi/image/<options>/<source-path>` (the query string, if any, belongs to the
    /// source).
    pub fn parse(path: &str) -> Result<Self, ImageOptionError> {
        let rest = path
            .strip_prefix(PREFIX)
            .ok_or(ImageOptionError::NotImageUrl)?;
        let (options, source) = rest
            .split_once('/')
            .ok_or(ImageOptionError::MissingSource)?;
        let mut request = Self {
            width: None,
            height: None,
            fit: Fit::default(),
            quality: DEFAULT_QUALITY,
            format: FormatChoice::default(),
            dpr_tenths: 10,
            metadata: Metadata::default(),
            source: validate_source(source)?,
            signature: None,
        };
        let mut seen: Vec<&str> = Vec::new();
        for option in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let (name, value) = option
                .split_once('=')
                .ok_or_else(|| ImageOptionError::Malformed(option.to_owned()))?;
            let name = canonical_name(name.trim())?;
            if seen.contains(&name) {
                return Err(ImageOptionError::Malformed(option.to_owned()));
            }
            seen.push(name);
            request.set(name, value.trim())?;
        }
        Ok(request)
    }

    /// The original at `source` (a path on this site), at its own size and default quality,
    /// its format negotiated: what `/images/*` serves to clients that name a modern format.
    pub fn original(source: &str) -> Self {
        Self {
            width: None,
            height: None,
            fit: Fit::default(),
            quality: DEFAULT_QUALITY,
            format: FormatChoice::Auto,
            dpr_tenths: 10,
            metadata: Metadata::default(),
            source: source.to_owned(),
            signature: None,
        }
    }

    fn set(&mut self, name: &'static str, value: &str) -> Result<(), ImageOptionError> {
        let invalid = || ImageOptionError::InvalidValue {
            option: name,
            value: value.to_owned(),
        };
        match name {
            "width" => self.width = Some(bounded(name, value, 1, MAX_DIMENSION)?),
            "height" => self.height = Some(bounded(name, value, 1, MAX_DIMENSION)?),
            "quality" => self.quality = bounded(name, value, 1, 100)? as u8,
            "dpr" => self.dpr_tenths = parse_dpr(value)?,
            "fit" => {
                self.fit = [
                    Fit::ScaleDown,
                    Fit::Contain,
                    Fit::Cover,
                    Fit::Crop,
                    Fit::Pad,
                ]
                .into_iter()
                .find(|fit| fit.as_str() == value)
                .ok_or_else(invalid)?;
            }
            "format" => {
                self.format = match value {
                    "auto" => FormatChoice::Auto,
                    other => FormatChoice::Fixed(ImageFormat::parse(other).ok_or_else(invalid)?),
                };
            }
            "sig" => self.signature = Some(value.to_owned()),
            "metadata" => {
                self.metadata = [Metadata::None, Metadata::Copyright, Metadata::Keep]
                    .into_iter()
                    .find(|m| m.as_str() == value)
                    .ok_or_else(invalid)?;
            }
            _ => return Err(ImageOptionError::UnknownOption(name.to_owned())),
        }
        Ok(())
    }

    /// The output width in device pixels (`width × dpr`, at most [`MAX_DIMENSION`]).
    pub fn device_width(&self) -> Option<u32> {
        self.width.map(|w| scale(w, self.dpr_tenths))
    }

    /// The output height in device pixels (`height × dpr`, at most [`MAX_DIMENSION`]).
    pub fn device_height(&self) -> Option<u32> {
        self.height.map(|h| scale(h, self.dpr_tenths))
    }

    /// The options in canonical form: fixed order, defaults omitted, `dpr` folded into the pixel
    /// sizes. Two URLs with the same canonical options produce the same image.
    pub fn canonical_options(&self) -> String {
        let mut parts = Vec::new();
        if let Some(width) = self.device_width() {
            parts.push(format!("width={width}"));
        }
        if let Some(height) = self.device_height() {
            parts.push(format!("height={height}"));
        }
        if self.fit != Fit::default() {
            parts.push(format!("fit={}", self.fit.as_str()));
        }
        if self.quality != DEFAULT_QUALITY {
            parts.push(format!("quality={}", self.quality));
        }
        if let FormatChoice::Fixed(format) = self.format {
            parts.push(format!("format={}", format.as_str()));
        }
        if self.metadata != Metadata::default() {
            parts.push(format!("metadata={}", self.metadata.as_str()));
        }
        parts.join(",")
    }
}

impl fmt::Display for ImageRequest {
    /// The canonical URL of this transformation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = self.canonical_options();
        let options = if options.is_empty() {
            "format=auto"
        } else {
            &options
        };
        write!(f, "{PREFIX}{options}{}", self.source)
    }
}

fn scale(pixels: u32, dpr_tenths: u8) -> u32 {
    let scaled = (u64::from(pixels) * u64::from(dpr_tenths) + 5) / 10;
    scaled.clamp(1, u64::from(MAX_DIMENSION)) as u32
}

fn canonical_name(name: &str) -> Result<&'static str, ImageOptionError> {
    Ok(match name {
        "width" | "w" => "width",
        "height" | "h" => "height",
        "quality" | "q" => "quality",
        "format" | "f" => "format",
        "fit" => "fit",
        "dpr" => "dpr",
        "metadata" => "metadata",
        "sig" => "sig",
        other => return Err(ImageOptionError::UnknownOption(other.to_owned())),
    })
}

fn bounded(option: &'static str, value: &str, min: u32, max: u32) -> Result<u32, ImageOptionError> {
    let out_of_range = || ImageOptionError::OutOfRange {
        option,
        value: value.to_owned(),
        min,
        max,
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ImageOptionError::InvalidValue {
            option,
            value: value.to_owned(),
        });
    }
    let number: u64 = value.parse().map_err(|_| out_of_range())?;
    u32::try_from(number)
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(out_of_range)
}

/// `dpr` as tenths, 1.0–4.0, at most one decimal.
fn parse_dpr(value: &str) -> Result<u8, ImageOptionError> {
    let invalid = || ImageOptionError::InvalidValue {
        option: "dpr",
        value: value.to_owned(),
    };
    let (whole, tenth) = value.split_once('.').unwrap_or((value, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(tenth) || tenth.len() > 1 || whole.len() > 2 {
        return Err(invalid());
    }
    let tenths = whole.parse::<u32>().map_err(|_| invalid())? * 10
        + tenth.parse::<u32>().map_err(|_| invalid())?;
    if !(10..=40).contains(&tenths) {
        return Err(ImageOptionError::OutOfRange {
            option: "dpr",
            value: value.to_owned(),
            min: 1,
            max: 4,
        });
    }
    Ok(tenths as u8)
}

fn validate_source(source: &str) -> Result<String, ImageOptionError> {
    let invalid = || ImageOptionError::InvalidSource(source.to_owned());
    let path = source.split('?').next().unwrap_or_default();
    if path.is_empty() {
        return Err(ImageOptionError::MissingSource);
    }
    let absolute = source.contains("://") || source.starts_with('/') || source.contains('\\');
    let escapes = path
        .split('/')
        .any(|segment| matches!(segment, "." | ".." | "%2e%2e" | "%2E%2E"));
    let loops = format!("/{path}").starts_with("/cdn-cgi/");
    if absolute || escapes || loops {
        return Err(invalid());
    }
    Ok(format!("/{source}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cloudflare_urls() {
        let request = ImageRequest::parse(
            "/cdn-cgi/image/width=800,quality=75,format=avif,fit=cover/images/a.jpg",
        )
        .expect("valid");
        assert_eq!(request.width, Some(800));
        assert_eq!(request.quality, 75);
        assert_eq!(request.format, FormatChoice::Fixed(ImageFormat::Avif));
        assert_eq!(request.fit, Fit::Cover);
        assert_eq!(request.source, "/images/a.jpg");
        let aliases =
            ImageRequest::parse("/cdn-cgi/image/w=800,q=75,f=avif,fit=cover/images/a.jpg")
                .expect("valid");
        assert_eq!(aliases, request);
    }

    #[test]
    fn defaults_and_canonical_form() {
        let plain = ImageRequest::parse("/cdn-cgi/image/format=auto/images/a.jpg").expect("valid");
        assert_eq!(plain.quality, DEFAULT_QUALITY);
        assert_eq!(plain.format, FormatChoice::Auto);
        assert_eq!(plain.canonical_options(), "");
        assert_eq!(plain.to_string(), "/cdn-cgi/image/format=auto/images/a.jpg");
        let a =
            ImageRequest::parse("/cdn-cgi/image/dpr=2,width=400,quality=85/x.png").expect("valid");
        let b = ImageRequest::parse("/cdn-cgi/image/width=800/x.png").expect("valid");
        assert_eq!(a.canonical_options(), b.canonical_options());
        assert_eq!(a.canonical_options(), "width=800");
    }

    #[test]
    fn bounds_are_enforced() {
        let err = |url: &str| ImageRequest::parse(url).expect_err("must be refused");
        assert!(matches!(
            err("/cdn-cgi/image/width=4097/a.jpg"),
            ImageOptionError::OutOfRange {
                option: "width",
                ..
            }
        ));
        assert!(matches!(
            err("/cdn-cgi/image/width=0/a.jpg"),
            ImageOptionError::OutOfRange { .. }
        ));
        assert!(matches!(
            err("/cdn-cgi/image/width=99999999999999/a.jpg"),
            ImageOptionError::OutOfRange { .. }
        ));
        assert!(matches!(
            err("/cdn-cgi/image/width=-5/a.jpg"),
            ImageOptionError::InvalidValue { .. }
        ));
        assert!(matches!(
            err("/cdn-cgi/image/quality=101/a.jpg"),
            ImageOptionError::OutOfRange { .. }
        ));
        assert!(matches!(
            err("/cdn-cgi/image/quality=0/a.jpg"),
            ImageOptionError::OutOfRange { .. }
        ));
        assert!(matches!(
            err("/cdn-cgi/image/dpr=5/a.jpg"),
            ImageOptionError::OutOfRange { .. }
        ));
        assert!(matches!(
            err("/cdn-cgi/image/dpr=1.25/a.jpg"),
            ImageOptionError::InvalidValue { .. }
        ));
        assert!(matches!(
            err("/cdn-cgi/image/format=gif/a.jpg"),
            ImageOptionError::InvalidValue { .. }
        ));
        assert!(matches!(
            err("/cdn-cgi/image/blur=5/a.jpg"),
            ImageOptionError::UnknownOption(_)
        ));
        assert!(matches!(
            err("/cdn-cgi/image/width=5,w=6/a.jpg"),
            ImageOptionError::Malformed(_)
        ));
        assert!(matches!(
            err("/cdn-cgi/image/width/a.jpg"),
            ImageOptionError::Malformed(_)
        ));
        // dpr cannot push a side past the maximum.
        let big = ImageRequest::parse("/cdn-cgi/image/width=4000,dpr=2/a.jpg").expect("valid");
        assert_eq!(big.device_width(), Some(MAX_DIMENSION));
    }

    #[test]
    fn sources_stay_on_site() {
        let err = |url: &str| ImageRequest::parse(url).expect_err("must be refused");
        assert_eq!(
            err("/cdn-cgi/image/width=5"),
            ImageOptionError::MissingSource
        );
        assert_eq!(
            err("/cdn-cgi/image/width=5/"),
            ImageOptionError::MissingSource
        );
        assert!(matches!(
            err("/cdn-cgi/image/width=5/https://evil.com/a.jpg"),
            ImageOptionError::InvalidSource(_)
        ));
        assert!(matches!(
            err("/cdn-cgi/image/width=5//evil.com/a.jpg"),
            ImageOptionError::InvalidSource(_)
        ));
        assert!(matches!(
            err("/cdn-cgi/image/width=5/images/../admin"),
            ImageOptionError::InvalidSource(_)
        ));
        assert!(matches!(
            err("/cdn-cgi/image/width=5/cdn-cgi/image/w=1/a.jpg"),
            ImageOptionError::InvalidSource(_)
        ));
        assert_eq!(err("/images/a.jpg"), ImageOptionError::NotImageUrl);
    }

    #[test]
    fn sniffs_magic_bytes() {
        assert_eq!(
            SourceFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(SourceFormat::Jpeg)
        );
        assert_eq!(
            SourceFormat::sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(SourceFormat::Png)
        );
        assert_eq!(SourceFormat::sniff(b"GIF89a..."), Some(SourceFormat::Gif));
        assert_eq!(
            SourceFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(SourceFormat::Webp)
        );
        assert_eq!(
            SourceFormat::sniff(b"\0\0\0\x1cftypavif"),
            Some(SourceFormat::Avif)
        );
        assert_eq!(SourceFormat::sniff(b"<svg>"), None);
        assert_eq!(SourceFormat::sniff(b""), None);
    }
}
