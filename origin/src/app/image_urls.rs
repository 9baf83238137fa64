//! The `/cdn-cgi/image/…` URLs pages put in `<img>`: signed with `IMAGE_SIGNING_KEY` when the
//! edge requires signatures (the same HMAC as the edge checks, from the shared crate).

/// Builds transformation URLs.
#[derive(Clone)]
pub struct ImageUrls {
    signing_key: Option<String>,
}

impl std::fmt::Debug for ImageUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageUrls")
            .field("signed", &self.signing_key.is_some())
            .finish()
    }
}

/// Widths offered in a `srcset`.
const SRCSET_WIDTHS: [u32; 3] = [320, 640, 1280];

impl ImageUrls {
    /// URLs signed with `signing_key`, or unsigned without one.
    pub fn new(signing_key: Option<String>) -> Self {
        Self { signing_key }
    }

    /// `source` (`/images/…`) at `width` CSS pixels, its format negotiated by the edge.
    pub fn at_width(&self, source: &str, width: u32) -> String {
        let options = format!("width={width},format=auto");
        match &self.signing_key {
            Some(key) => shared::image_signing::sign(key.as_bytes(), &options, source)
                .unwrap_or_else(|_| format!("{}{options}{source}", shared::image::PREFIX)),
            None => format!("{}{options}{source}", shared::image::PREFIX),
        }
    }

    /// A `srcset` of `source` at the offered widths.
    pub fn srcset(&self, source: &str) -> String {
        SRCSET_WIDTHS
            .iter()
            .map(|width| format!("{} {width}w", self.at_width(source, *width)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::image::ImageRequest;

    #[test]
    fn signed_urls_verify_with_the_same_key() {
        let urls = ImageUrls::new(Some("k".to_owned()));
        let url = urls.at_width("/images/a.png", 640);
        let request = ImageRequest::parse(&url).expect("valid");
        assert_eq!(shared::image_signing::verify(b"k", &request), Ok(()));
        assert_eq!(
            ImageUrls::new(None).at_width("/images/a.png", 640),
            "/cdn-cgi/image/width=640,format=auto/images/a.png"
        );
        assert_eq!(urls.srcset("/images/a.png").matches(",sig=").count(), 3);
    }
}
