//! `/api/events`: the audit log, its streamed export, and bulk inserts.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::tasks::MAX_PAGE;
use super::{check, parse_bounded, store_error};
use crate::app::model::{now_ms, parse_rfc3339};
use crate::app::store::{EventFilter, ExportFormat, NewEvent};
use crate::app::AppState;
use crate::core::http::errors::{ApiError, ErrorCode, FieldError};
use crate::core::http::extract::{Json, Query};
use crate::core::http::pagination;

/// Most events one bulk request may carry.
pub const BULK_MAX: usize = 10_000;
/// Largest `data` object of one event, serialized.
const DATA_MAX: usize = 16 * 1024;
const TEXT_MAX: usize = 128;

/// The query string of the list and the export.
#[derive(Debug, Deserialize)]
pub struct EventParams {
    from: Option<String>,
    to: Option<String>,
    actor: Option<String>,
    entity_type: Option<String>,
    entity_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    format: Option<String>,
}

/// A cursor's position: `(occurred_at, id)` of the last event shown.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    a: i64,
    i: i64,
}

fn filter_of(params: &EventParams, errors: &mut Vec<FieldError>) -> EventFilter {
    let mut time = |text: &Option<String>, field: &str| {
        text.as_deref().and_then(|text| {
            let at = parse_rfc3339(text);
            if at.is_none() {
                errors.push(FieldError::new(field, "an RFC 3339 timestamp"));
            }
            at
        })
    };
    let from = time(&params.from, "from");
    let to = time(&params.to, "to");
    EventFilter {
        from,
        to,
        actor: params.actor.clone(),
        entity_type: params.entity_type.clone(),
        entity_id: params.entity_id.clone(),
    }
}

/// `GET /api/events`: newest first, keyset-paginated.
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<EventParams>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let filter = filter_of(&params, &mut errors);
    let limit = parse_bounded(
        params.limit.as_deref(),
        "limit",
        (1, MAX_PAGE, 50),
        &mut errors,
    );
    check(errors)?;
    let before = match params.cursor.as_deref() {
        Some(cursor) => {
            let position: Position = pagination::decode(cursor)?;
            Some((position.a, position.i))
        }
        None => None,
    };
    let page = state
        .store
        .events(&filter, before, limit)
        .await
        .map_err(store_error("event"))?;
    Ok(axum::Json(json!({
        "data": page.events,
        "pagination": {
            "limit": limit,
            "has_more": page.next.is_some(),
            "next_cursor": page.next.map(|(a, i)| pagination::encode(&Position { a, i })),
        },
    }))
    .into_response())
}

/// `GET /api/events/export?format=ndjson|csv|json`: the whole filtered log, oldest first,
/// streamed in chunks as the client reads them.
pub async fn export(
    State(state): State<AppState>,
    Query(params): Query<EventParams>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let filter = filter_of(&params, &mut errors);
    let format = match params.format.as_deref() {
        None => ExportFormat::Ndjson,
        Some(text) => ExportFormat::parse(text).unwrap_or_else(|| {
            errors.push(FieldError::new("format", "one of ndjson, csv, json"));
            ExportFormat::Ndjson
        }),
    };
    check(errors)?;
    let body = Body::from_stream(state.store.export_events(filter, format));
    let disposition = format!("attachment; filename=\"events.{}\"", format.extension());
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// The body of `POST /api/events/bulk`. Items stay loose JSON so that one bad item is reported
/// on its own instead of failing the request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkInput {
    events: Vec<Value>,
}

fn text_field(item: &Value, field: &str, errors: &mut Vec<FieldError>) -> String {
    let text = match item.get(field) {
        Some(Value::String(text)) => text.trim().to_owned(),
        Some(Value::Number(number)) if field == "entity_id" => number.to_string(),
        _ => String::new(),
    };
    if text.is_empty() || text.len() > TEXT_MAX {
        errors.push(FieldError::new(
            field,
            format!("required: 1 to {TEXT_MAX} characters"),
        ));
    }
    text
}

/// One bulk item, validated.
fn event_of(item: &Value) -> Result<NewEvent, Vec<FieldError>> {
    let mut errors = Vec::new();
    if !item.is_object() {
        return Err(vec![FieldError::new("", "an object")]);
    }
    let actor = text_field(item, "actor", &mut errors);
    let action = text_field(item, "action", &mut errors);
    let entity_type = text_field(item, "entity_type", &mut errors);
    let entity_id = text_field(item, "entity_id", &mut errors);
    let occurred_at = match item.get("occurred_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if parse_rfc3339(text).is_some_and(|ms| ms >= 0) => {
            parse_rfc3339(text)
        }
        Some(_) => {
            errors.push(FieldError::new(
                "occurred_at",
                "an RFC 3339 timestamp from 1970 on",
            ));
            None
        }
    };
    let data = match item.get("data") {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(data @ Value::Object(_)) if data.to_string().len() <= DATA_MAX => data.clone(),
        Some(_) => {
            errors.push(FieldError::new(
                "data",
                format!("an object of at most {DATA_MAX} bytes"),
            ));
            Value::Null
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(NewEvent {
        occurred_at,
        actor,
        action,
        entity_type,
        entity_id,
        data,
    })
}

/// `POST /api/events/bulk`: inserts the valid events in batches and reports each failed one
/// by its index. `200` when any was inserted, `422` when none was valid, `503` when the
/// database refused them all.
pub async fn bulk(
    State(state): State<AppState>,
    Json(input): Json<BulkInput>,
) -> Result<Response, ApiError> {
    if input.events.is_empty() || input.events.len() > BULK_MAX {
        return Err(ApiError::invalid_fields(vec![FieldError::new(
            "events",
            format!("1 to {BULK_MAX} events"),
        )]));
    }
    let mut valid = Vec::with_capacity(input.events.len());
    let mut failed = Vec::new();
    for (index, item) in input.events.iter().enumerate() {
        match event_of(item) {
            Ok(event) => valid.push((index, event)),
            Err(errors) => failed.push(json!({ "index": index, "errors": errors })),
        }
    }
    let outcome = state.store.insert_events(&valid, now_ms()).await;
    if outcome.inserted == 0 && !outcome.failed.is_empty() && failed.is_empty() {
        // Every valid event was refused: the database, not the input, is at fault.
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DatabaseError,
            "the database refused every event: nothing was inserted, retry later",
        ));
    }
    for (index, reason) in &outcome.failed {
        tracing::warn!(index, %reason, "bulk event refused by the database");
        failed.push(json!({
            "index": index,
            "errors": [{ "field": "", "message": "the database refused this event" }],
        }));
    }
    let status = if outcome.inserted > 0 {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let body = json!({ "inserted": outcome.inserted, "failed": failed });
    Ok((status, axum::Json(body)).into_response())
}
