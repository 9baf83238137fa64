//! Static assets, embedded in the binary and served under content-hashed names, so the policy
//! can mark them immutable for a year.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use shared::validators::EntityTag;

use super::AppState;
use crate::core::http::errors::ApiError;

const STYLESHEET: &str = include_str!("../../assets/rampart.css");

/// One embedded file.
#[derive(Debug)]
struct Asset {
    name: String,
    content_type: &'static str,
    body: &'static str,
    etag: EntityTag,
}

/// The embedded assets, named `<stem>.<hash>.<ext>`.
#[derive(Debug)]
pub struct Assets {
    files: Vec<Asset>,
}

impl Assets {
    /// Hashes every embedded file.
    pub fn build() -> Self {
        let etag = EntityTag::from_bytes(STYLESHEET.as_bytes());
        let name = format!("rampart.{}.css", &etag.tag[..12]);
        Self {
            files: vec![Asset {
                name,
                content_type: "text/css; charset=utf-8",
                body: STYLESHEET,
                etag,
            }],
        }
    }

    /// The hashed URL path of the stylesheet.
    pub fn stylesheet_path(&self) -> String {
        format!("/assets/{}", self.files[0].name)
    }
}

/// `GET /assets/{file}`.
pub async fn serve(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    match state.assets.files.iter().find(|asset| asset.name == file) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::ETAG, &asset.etag.to_string()),
            ],
            asset.body,
        )
            .into_response(),
        None => ApiError::not_found("asset").into_response(),
    }
}
