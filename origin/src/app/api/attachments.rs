//! `POST /api/tasks/{id}/attachments` (raw `image/*` bytes or multipart with a `file` field) and
//! `GET /images/{key}`. Uploads are checked by their magic bytes and bounded in bytes and pixels
//! before anything is stored; the header alone gives the dimensions, so no pixel is decoded.

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use imagesize::ImageType;

use super::tasks::task_tags;
use super::{created, parse_id, store_error, Actor};
use crate::app::store::{content_key, NewImage};
use crate::app::{AppState, UploadLimits};
use crate::core::http::errors::{ApiError, ErrorCode, FieldError};

/// Room for multipart boundaries and part headers on top of the image itself.
const MULTIPART_OVERHEAD: usize = 64 * 1024;
/// Largest width or height accepted.
const MAX_SIDE: usize = 16_384;

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("the image is larger than {limit} bytes"),
    )
}

fn unsupported() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedMediaType,
        "send a JPEG, PNG, GIF or WebP image as image/* or as the `file` field of multipart/form-data",
    )
}

/// The media type and extension of a supported image format.
fn format_of(kind: ImageType) -> Option<(&'static str, &'static str)> {
    match kind {
        ImageType::Jpeg => Some(("image/jpeg", "jpg")),
        ImageType::Png => Some(("image/png", "png")),
        ImageType::Gif => Some(("image/gif", "gif")),
        ImageType::Webp => Some(("image/webp", "webp")),
        _ => None,
    }
}

/// Checks `bytes` by magic number and header dimensions.
fn check_image(
    bytes: Vec<u8>,
    filename: String,
    limits: UploadLimits,
) -> Result<NewImage, ApiError> {
    if bytes.len() > limits.max_bytes {
        return Err(too_large(limits.max_bytes));
    }
    let (content_type, extension) = imagesize::image_type(&bytes)
        .ok()
        .and_then(format_of)
        .ok_or_else(unsupported)?;
    let size = imagesize::blob_size(&bytes).map_err(|_| {
        ApiError::invalid_fields(vec![FieldError::new("file", "the image header is damaged")])
    })?;
    let pixels = (size.width as u64).saturating_mul(size.height as u64);
    if size.width == 0
        || size.height == 0
        || size.width > MAX_SIDE
        || size.height > MAX_SIDE
        || pixels > limits.max_pixels
    {
        return Err(ApiError::invalid_fields(vec![FieldError::new(
            "file",
            format!(
                "{}×{} pixels: at most {MAX_SIDE} a side and {} pixels in all",
                size.width, size.height, limits.max_pixels
            ),
        )]));
    }
    Ok(NewImage {
        key: content_key(&bytes, extension),
        content_type,
        width: size.width as i64,
        height: size.height as i64,
        filename,
        bytes,
    })
}

/// The upload inside a raw or multipart body, with its file name.
async fn read_upload(
    request: Request,
    limits: UploadLimits,
) -> Result<(Vec<u8>, String), ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (parts, body) = request.into_parts();
    let room = limits.max_bytes + MULTIPART_OVERHEAD;
    let bytes: Bytes = to_bytes(body, room)
        .await
        .map_err(|_| too_large(limits.max_bytes))?;
    if content_type.starts_with("image/") {
        return Ok((bytes.to_vec(), String::new()));
    }
    if !content_type.starts_with("multipart/form-data") {
        return Err(unsupported());
    }
    let request = Request::from_parts(parts, Body::from(bytes));
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|_| ApiError::bad_request("malformed multipart/form-data body"))?;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| ApiError::bad_request("malformed multipart/form-data body"))?
    {
        if field.name() == Some("file") {
            let filename = field.file_name().unwrap_or_default().to_owned();
            let data = field
                .bytes()
                .await
                .map_err(|_| ApiError::bad_request("malformed multipart/form-data body"))?;
            return Ok((data.to_vec(), filename));
        }
    }
    Err(ApiError::invalid_fields(vec![FieldError::new(
        "file",
        "required: the image, as a multipart field named `file`",
    )]))
}

/// `POST /api/tasks/{id}/attachments`.
pub async fn upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    actor: Actor,
    request: Request,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "task")?;
    let (bytes, filename) = read_upload(request, state.uploads).await?;
    let filename: String = filename.chars().take(255).collect();
    let image = check_image(bytes, filename, state.uploads)?;
    let attachment = state
        .store
        .attach_image(id, &image, &actor.0)
        .await
        .map_err(store_error("task"))?;
    state.invalidate(&task_tags(id)).await;
    let location = attachment.url.clone();
    Ok(created(location, attachment))
}

/// Whether `key` has the shape of an image key (so junk never reaches the database).
fn valid_key(key: &str) -> bool {
    let Some((hash, extension)) = key.split_once('.') else {
        return false;
    };
    hash.len() == 32
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && matches!(extension, "jpg" | "png" | "gif" | "webp")
}

/// `GET /images/{key}`: the original bytes, with a strong ETag (the key is their hash).
pub async fn image(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !valid_key(&key) {
        return Err(ApiError::not_found("image"));
    }
    let etag = format!("\"{}\"", key.split('.').next().unwrap_or_default());
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|inm| {
            shared::validators::if_none_match_matches(
                inm,
                shared::validators::EntityTag::parse(&etag).as_ref(),
            )
        });
    let image = state
        .store
        .image(&key)
        .await
        .map_err(store_error("image"))?
        .ok_or_else(|| ApiError::not_found("image"))?;
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let content_type = HeaderValue::from_str(&image.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        ([(header::CONTENT_TYPE, content_type)], image.bytes).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(response)
}
