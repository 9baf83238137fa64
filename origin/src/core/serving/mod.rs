//! Serving the stack: the HTTP [`listener`] (HTTP/1.1 and HTTP/2, connection limits, graceful
//! drain) and the [`shutdown`] signal.

pub mod listener;
pub mod shutdown;
