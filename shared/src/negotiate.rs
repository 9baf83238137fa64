//! Content negotiation: the image format from `Accept` and the content coding from
//! `Accept-Encoding` (RFC 9110 §12.4, §12.5.1, §12.5.3).
//!
//! Both tiers negotiate here so that the variant appended to a cache key is the variant served.

use crate::image::ImageFormat;

/// A content coding the edge can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContentEncoding {
    /// Brotli (`br`).
    Brotli,
    /// gzip (`gzip`, also accepted as `x-gzip`).
    Gzip,
    /// No coding.
    Identity,
}

impl ContentEncoding {
    /// The coding's token, as in `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Gzip => "gzip",
            Self::Identity => "identity",
        }
    }
}

/// One member of an `Accept`-style list: a lower-cased range and its weight in thousandths.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Weighted<'a> {
    range: &'a str,
    quality: u16,
}

/// Parses `#( range *( OWS ";" OWS parameter ) )`, reading `q` (RFC 9110 §12.4.2); an invalid
/// q-value makes the member unusable (weight 0), never an error.
fn weighted(list: &str) -> impl Iterator<Item = Weighted<'_>> {
    list.split(',').filter_map(|member| {
        let mut parts = member.split(';');
        let range = parts.next()?.trim();
        if range.is_empty() {
            return None;
        }
        let mut quality = 1000;
        for parameter in parts {
            if let Some((name, value)) = parameter.split_once('=') {
                if name.trim().eq_ignore_ascii_case("q") {
                    quality = parse_qvalue(value.trim()).unwrap_or(0);
                }
            }
        }
        Some(Weighted { range, quality })
    })
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .zip([100, 10, 1])
        .map(|(digit, place)| u16::from(digit - b'0') * place)
        .sum::<u16>();
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The weight `accept` gives to `image/<subtype>`: the most specific matching range wins
/// (§12.5.1), explicit type over `image/*` over `*/*`.
fn media_quality(accept: &str, subtype: &str) -> Option<u16> {
    let mut best: Option<(u8, u16)> = None;
    for member in weighted(accept) {
        let specificity = match member.range.split_once('/') {
            Some((t, s)) if t.eq_ignore_ascii_case("image") && s.eq_ignore_ascii_case(subtype) => 2,
            Some(("image" | "IMAGE", "*")) => 1,
            Some(("*", "*")) => 0,
            _ => continue,
        };
        if best.is_none_or(|(current, _)| specificity > current) {
            best = Some((specificity, member.quality));
        }
    }
    best.map(|(_, quality)| quality)
}

/// The format to serve an image in.
///
/// AVIF and WebP are chosen only when `Accept` names them explicitly: browsers that decode them
/// say so, and a bare `*/*` (curl, old clients) must not receive a format it may not decode.
/// `source` (JPEG or PNG) is acceptable through wildcards. Among acceptable formats in `allowed`
/// the highest weight wins, ties going to AVIF, then WebP, then the source format.
pub fn image_format(
    accept: Option<&str>,
    source: ImageFormat,
    allowed: &[ImageFormat],
) -> ImageFormat {
    let accept = accept.unwrap_or("*/*");
    let mut best = (0u16, source);
    for format in [ImageFormat::Avif, ImageFormat::Webp, source] {
        if !allowed.contains(&format) && format != source {
            continue;
        }
        let quality = if format.is_modern() {
            explicit_quality(accept, format.subtype())
        } else {
            media_quality(accept, format.subtype())
        };
        if quality.unwrap_or(0) > best.0 {
            best = (quality.unwrap_or(0), format);
        }
    }
    best.1
}

/// The modern format a client takes for an image whatever its source, from its `Accept`: AVIF
/// when it names AVIF and WebP (AVIF falls back on WebP when an image is too costly to encode),
/// WebP when it names WebP, `None` otherwise.
pub fn preferred_image_format(accept: Option<&str>) -> Option<ImageFormat> {
    let modern = [ImageFormat::Avif, ImageFormat::Webp];
    // The source kind is a placeholder here: it stands for "not a modern format".
    let takes = |allowed: &[ImageFormat]| image_format(accept, ImageFormat::Jpeg, allowed);
    let webp = takes(&[ImageFormat::Webp]) == ImageFormat::Webp;
    match takes(&modern) {
        ImageFormat::Avif if webp => Some(ImageFormat::Avif),
        _ if webp => Some(ImageFormat::Webp),
        _ => None,
    }
}

fn explicit_quality(accept: &str, subtype: &str) -> Option<u16> {
    weighted(accept)
        .filter(|member| {
            member.range.split_once('/').is_some_and(|(t, s)| {
                t.eq_ignore_ascii_case("image") && s.eq_ignore_ascii_case(subtype)
            })
        })
        .map(|member| member.quality)
        .next()
}

/// The content coding to compress with, per `Accept-Encoding` (§12.5.3): the highest weight
/// among br and gzip wins (ties go to br), `*` covers codings not listed, `identity` is acceptable
/// unless refused by `identity;q=0` or `*;q=0`. `None` means nothing acceptable is left.
pub fn content_encoding(accept_encoding: Option<&str>) -> Option<ContentEncoding> {
    let Some(header) = accept_encoding else {
        return Some(ContentEncoding::Identity);
    };
    // Each coding's first member, in one pass and without allocating: the origin asks on
    // every cache hit.
    let (mut br, mut gzip, mut identity, mut star) = (None, None, None, None);
    for member in weighted(header) {
        let range = member.range;
        let slot = if range.eq_ignore_ascii_case("br") {
            &mut br
        } else if range.eq_ignore_ascii_case("gzip") || range.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if range.eq_ignore_ascii_case("identity") {
            &mut identity
        } else if range == "*" {
            &mut star
        } else {
            continue;
        };
        slot.get_or_insert(member.quality);
    }
    let quality = |named: Option<u16>| named.or(star);
    let mut best: Option<(u16, ContentEncoding)> = None;
    for (q, coding) in [
        (quality(br), ContentEncoding::Brotli),
        (quality(gzip), ContentEncoding::Gzip),
    ] {
        let q = q.unwrap_or(0);
        if q > 0 && best.is_none_or(|(current, _)| q > current) {
            best = Some((q, coding));
        }
    }
    let identity = quality(identity).unwrap_or(1);
    match best {
        Some((q, coding)) if q >= identity => Some(coding),
        _ if identity > 0 => Some(ContentEncoding::Identity),
        found => found.map(|(_, coding)| coding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ImageFormat::{Avif, Jpeg, Png, Webp};

    const ALL: &[ImageFormat] = &[Avif, Webp, Jpeg, Png];

    #[test]
    fn browsers_get_the_best_modern_format_they_name() {
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        assert_eq!(preferred_image_format(Some(chrome)), Some(Avif));
        assert_eq!(preferred_image_format(Some("image/webp,*/*")), Some(Webp));
        assert_eq!(preferred_image_format(Some("*/*")), None);
        assert_eq!(preferred_image_format(None), None);
        assert_eq!(
            preferred_image_format(Some("image/*")),
            None,
            "wildcards never select a modern format"
        );
        // AVIF only for clients that would also take the WebP it falls back to.
        assert_eq!(preferred_image_format(Some("image/avif,*/*")), None);
        assert_eq!(
            preferred_image_format(Some("image/avif,image/webp;q=0,*/*")),
            None
        );
    }

    #[test]
    fn browsers_get_modern_formats_and_curl_gets_the_source() {
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        assert_eq!(image_format(Some(chrome), Jpeg, ALL), Avif);
        let safari16 = "image/webp,image/avif,image/jxl,image/heic,image/*,*/*;q=0.8";
        assert_eq!(image_format(Some(safari16), Jpeg, ALL), Avif);
        let old_firefox = "image/webp,*/*";
        assert_eq!(image_format(Some(old_firefox), Jpeg, ALL), Webp);
        assert_eq!(image_format(Some("*/*"), Jpeg, ALL), Jpeg);
        assert_eq!(image_format(None, Png, ALL), Png);
    }

    #[test]
    fn q_values_and_refusals_are_honoured() {
        assert_eq!(
            image_format(Some("image/avif;q=0.5, image/webp"), Jpeg, ALL),
            Webp
        );
        assert_eq!(image_format(Some("image/avif;q=0, */*"), Jpeg, ALL), Jpeg);
        assert_eq!(
            image_format(Some("image/avif, image/webp"), Jpeg, &[Webp]),
            Webp
        );
        // Specific beats wildcard (§12.5.1): jpeg refused explicitly, webp listed.
        assert_eq!(
            image_format(Some("image/jpeg;q=0, image/*, image/webp;q=0.1"), Jpeg, ALL),
            Webp
        );
        // Invalid q-value disables the member.
        assert_eq!(image_format(Some("image/avif;q=2, */*"), Jpeg, ALL), Jpeg);
    }

    #[test]
    fn qvalue_grammar() {
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.123"), Some(123));
        assert_eq!(parse_qvalue("0."), Some(0));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
        assert_eq!(parse_qvalue("-0"), None);
    }

    #[test]
    fn accept_encoding_per_rfc9110() {
        use ContentEncoding::{Brotli, Gzip, Identity};
        assert_eq!(
            content_encoding(Some("gzip, deflate, br, zstd")),
            Some(Brotli)
        );
        assert_eq!(content_encoding(Some("gzip, br;q=0.5")), Some(Gzip));
        assert_eq!(content_encoding(Some("br;q=0, gzip;q=0")), Some(Identity));
        assert_eq!(content_encoding(Some("x-gzip")), Some(Gzip));
        assert_eq!(content_encoding(Some("*")), Some(Brotli));
        assert_eq!(content_encoding(Some("")), Some(Identity));
        assert_eq!(content_encoding(None), Some(Identity));
        assert_eq!(content_encoding(Some("deflate")), Some(Identity));
        assert_eq!(content_encoding(Some("identity;q=0, *;q=0")), None);
        assert_eq!(content_encoding(Some("*;q=0")), None);
        assert_eq!(
            content_encoding(Some("gzip;q=0.2, identity;q=0.8")),
            Some(Identity)
        );
        assert_eq!(content_encoding(Some("gzip, *;q=0")), Some(Gzip));
    }
}
