//! The edge (wasm32, in workerd) and the origin's native build compute byte-identical cache keys.
//!
//! The edge names its key in `Cache-Status` (`key="…"`) when `EXPOSE_CACHE_KEY` is set; each is
//! compared with the key the shared crate computes natively for the URL that was actually sent.

use rampart_tests::{cache_status, Edge, Origin};
use shared::cache_status::CacheStatus;
use shared::key::CacheKey;
use shared::policy::Policy;

const TARGETS: &[&str] = &[
    "/",
    "/?b=2&a=1&utm_source=mail&utm_medium=x",
    "/tasks/7?fbclid=abc&view=full&gclid=1",
    "/assets/a/../rampart.css?v=1",
    "/caf%c3%a9/%7euser?q=%7e&q=a",
    "/x?k=a=b&&empty=&flag",
    "/api/tasks?status=open&limit=50&sort=-updated",
    "/images/photo.jpg?w=1&W=2",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_and_native_keys_are_identical() {
    let origin = Origin::start().await;
    let edge = Edge::start_with_vars(&origin.url, &[("EXPOSE_CACHE_KEY", "true")]).await;
    let client = rampart_tests::client();
    let policy = Policy::default();
    for target in TARGETS {
        let url = reqwest::Url::parse(&format!("{}{target}", edge.url)).expect("valid URL");
        let sent = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let host = format!(
            "{}:{}",
            url.host_str().expect("host"),
            url.port().expect("port")
        );
        let native = CacheKey::new("GET", &host, &sent, policy.keys())
            .expect("valid key")
            .to_string();
        let response = client.get(url).send().await.expect("edge reachable");
        let header = cache_status(&response);
        let edge_key = CacheStatus::parse_list(&header)
            .into_iter()
            .find(|member| member.cache == shared::cache_status::EDGE)
            .and_then(|member| member.key)
            .unwrap_or_else(|| panic!("no key in Cache-Status {header:?} for {target}"));
        assert_eq!(edge_key, native, "target {target}");
    }
}
