//! The core's own jobs: [`refresh`] (stale refreshes, re-warms, warm-ups), [`purge`] (the
//! edge's purge endpoint and Cloudflare's API) and [`housekeeping`] (finished-job trimming, the
//! dead-letter report). The application registers its jobs beside these.

pub mod housekeeping;
pub mod purge;
pub mod refresh;
