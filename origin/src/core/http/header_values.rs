//! Header values (and method names) the core writes on every response or metric, made with as
//! few allocations as they need: `HeaderValue::from` an integer takes two, and a cache hit
//! writes several numbers.

use axum::http::{header, HeaderMap, HeaderValue};

/// Every field line of `name` in `headers`, joined with `", "` as one value (RFC 9110 §5.3);
/// `None` when there is none. Lines that are not visible ASCII are left out.
pub fn joined(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// `n` in decimal, in one allocation.
pub fn decimal(n: u64) -> HeaderValue {
    HeaderValue::from_str(itoa::Buffer::new().format(n)).unwrap_or_else(|_| HeaderValue::from(n))
}

/// The name of a standard method as a `&'static str` (no allocation, usable as a metric label
/// or span name); `None` for extension methods.
pub fn standard_method(method: &axum::http::Method) -> Option<&'static str> {
    use axum::http::Method;
    Some(match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => return None,
    })
}

/// Whether a request asks to become a WebSocket (RFC 6455 §4.1): a `GET` with `Upgrade:
/// websocket` and `upgrade` among its `Connection` options. No other protocol is upgraded to.
pub fn asks_websocket(method: &axum::http::Method, headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let websocket = headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    method == axum::http::Method::GET && connection_upgrade && websocket
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_matches_the_general_conversion() {
        for n in [0, 7, 59, 1_000, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(decimal(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn only_a_websocket_get_asks_to_be_upgraded() {
        use axum::http::Method;
        let ask = |method: Method, pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(*name, HeaderValue::from_static(value));
            }
            asks_websocket(&method, &headers)
        };
        let websocket = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ];
        assert!(ask(Method::GET, &websocket));
        assert!(!ask(Method::POST, &websocket));
        assert!(!ask(
            Method::GET,
            &[("connection", "Upgrade"), ("upgrade", "h2c")]
        ));
        assert!(
            !ask(Method::GET, &[("upgrade", "websocket")]),
            "Connection must name it"
        );
    }
}
