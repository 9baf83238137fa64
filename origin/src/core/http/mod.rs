//! What handlers and layers share about HTTP: the one client-facing error model
//! ([`errors`]), extractors that answer with it ([`extract`]), [`pagination`], the client's
//! address behind the edge ([`client`]) and cheap header values ([`header_values`]).

pub mod client;
pub mod errors;
pub mod extract;
pub mod header_values;
pub mod pagination;
