//! Serving the stack: the HTTP [`listener`] (HTTP/1.1 and HTTP/2, connection limits, graceful
//! drain), the [`shutdown`] signal, and cache [`warm`]-up at start.

pub mod listener;
pub mod shutdown;
pub mod warm;
