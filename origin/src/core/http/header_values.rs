//! Header values the core writes on every response, made with as few allocations as they need:
//! `HeaderValue::from` an integer takes two, and a cache hit writes several numbers.

use axum::http::HeaderValue;

/// `n` in decimal, in one allocation.
pub fn decimal(n: u64) -> HeaderValue {
    HeaderValue::from_str(itoa::Buffer::new().format(n)).unwrap_or_else(|_| HeaderValue::from(n))
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
}
