//! The runtime's `Response` and `Request`, reached without the `worker` crate's internal
//! `unwrap`s.
//!
//! `worker` 0.8 converts its `Response` to the runtime's with `unwrap()`: a status outside
//! 200–599 (which an origin can send) or a body on a null-body status (204, 205, 304) throws in
//! JavaScript, panics in Rust and aborts the wasm instance, failing every request the isolate is
//! serving. It also reads an unknown request method as `GET`. Every response the edge returns
//! or stores therefore goes through [`into_runtime`], and methods are read with [`method`].

use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::JsValue;
use worker::web_sys;
use worker::{Error, Request, Response, ResponseBody, Result};

/// Whether `status` can be the status of a response the runtime builds (Fetch standard).
pub fn valid_status(status: u16) -> bool {
    (200..=599).contains(&status)
}

/// Statuses whose responses never have content (RFC 9110 §6.4.1).
pub fn null_body_status(status: u16) -> bool {
    matches!(status, 204 | 205 | 304)
}

/// The request's method as the client sent it (upper-cased, as methods are compared), unknown
/// methods included.
pub fn method(request: &Request) -> String {
    request.inner().method().to_ascii_uppercase()
}

/// Converts a response for the runtime, returning an error instead of panicking when it cannot
/// be built. A body on a null-body status is dropped.
pub fn into_runtime(response: Response) -> Result<web_sys::Response> {
    let status = response.status_code();
    let (init, body) = response.into_parts();
    if !valid_status(status) {
        return Err(Error::RustError(format!(
            "status {status} cannot be sent by the runtime"
        )));
    }
    let init: web_sys::ResponseInit = init.into();
    let built = match body {
        _ if null_body_status(status) => web_sys::Response::new_with_opt_str_and_init(None, &init),
        ResponseBody::Empty => web_sys::Response::new_with_opt_str_and_init(None, &init),
        ResponseBody::Body(bytes) => {
            let array = Uint8Array::from(bytes.as_slice());
            web_sys::Response::new_with_opt_buffer_source_and_init(Some(&array), &init)
        }
        ResponseBody::Stream(stream) => {
            web_sys::Response::new_with_opt_readable_stream_and_init(Some(&stream), &init)
        }
    };
    built.map_err(js_error)
}

/// A response made safe to hand to `worker` APIs that convert it with `unwrap` (the Cache API's
/// `put`): built by the runtime first, so its status and body are known to be valid.
pub fn checked(response: Response) -> Result<Response> {
    into_runtime(response).map(Response::from)
}

/// A JavaScript exception as an error.
pub fn js_error(value: JsValue) -> Error {
    let message = value
        .as_string()
        .or_else(|| {
            worker::js_sys::Reflect::get(&value, &JsValue::from_str("message"))
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| "a JavaScript exception".to_owned());
    Error::RustError(message)
}
