//! Image format negotiation in workerd, in front of an origin serving a photograph-like JPEG, a
//! transparent PNG and a decompression bomb: Chrome's `Accept` gets AVIF, `image/webp` gets
//! WebP, `*/*` the source's format; each variant is made once and kept apart; `/images/*`
//! originals are re-encoded the same way; a bomb is refused from its header; with a signing key,
//! only signed transformation URLs are served.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use image::{ImageEncoder, RgbImage};
use rampart_tests::{cache_status, Edge};
use tokio::net::TcpListener;

const CHROME: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
const PHOTO: &str = "/images/photo.jpg";
/// The same photograph, answered after a pause: requests sent together overlap for sure.
const SLOW_PHOTO: &str = "/images/slow.jpg";

/// The origin's images, and how many times each was fetched.
struct Images {
    photo: Vec<u8>,
    logo: Vec<u8>,
    bomb: Vec<u8>,
    fetched: AtomicU32,
}

/// A 640 × 400 JPEG with the smooth gradients and fine noise of a photograph.
fn photo() -> Vec<u8> {
    let mut seed = 7u32;
    let image = RgbImage::from_fn(640, 400, |x, y| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let noise = (seed >> 16) % 12;
        let r = (x * 255 / 640 + noise) as u8;
        let g = (y * 255 / 400) as u8;
        let b = ((x + y) % 256) as u8 / 2 + noise as u8;
        image::Rgb([r, g, b])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
        .write_image(image.as_raw(), 640, 400, image::ExtendedColorType::Rgb8)
        .expect("encodes");
    out
}

/// A 240 × 160 PNG in three bands: transparent, half transparent, opaque.
fn logo() -> Vec<u8> {
    let image = image::RgbaImage::from_fn(240, 160, |x, y| {
        let alpha = [0, 128, 255][(x / 80) as usize];
        image::Rgba([(x + y) as u8, 90, (y * 3 / 2) as u8, alpha])
    });
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(image.as_raw(), 240, 160, image::ExtendedColorType::Rgba8)
        .expect("encodes");
    out
}

/// A PNG header claiming 50 000 × 50 000 pixels: kilobytes that would decode to 10 GB.
fn bomb() -> Vec<u8> {
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
    png.extend_from_slice(b"IHDR");
    png.extend_from_slice(&50_000u32.to_be_bytes());
    png.extend_from_slice(&50_000u32.to_be_bytes());
    png.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    png.resize(4096, 0);
    png
}

async fn serve(State(images): State<Arc<Images>>, request: Request) -> axum::response::Response {
    let (body, mime) = match request.uri().path() {
        PHOTO => (images.photo.clone(), "image/jpeg"),
        SLOW_PHOTO => {
            tokio::time::sleep(std::time::Duration::from_millis(800)).await;
            (images.photo.clone(), "image/jpeg")
        }
        "/images/bomb.png" => (images.bomb.clone(), "image/png"),
        "/images/logo.png" => (images.logo.clone(), "image/png"),
        _ => return ([(header::CACHE_CONTROL, "no-store")], "ready").into_response(),
    };
    images.fetched.fetch_add(1, Ordering::SeqCst);
    let cache_control = "public, max-age=31536000, immutable";
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, cache_control),
        ],
        body,
    )
        .into_response()
}

async fn image_origin() -> (String, Arc<Images>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let images = Arc::new(Images {
        photo: photo(),
        logo: logo(),
        bomb: bomb(),
        fetched: AtomicU32::new(0),
    });
    let app = axum::Router::new()
        .fallback(serve)
        .with_state(images.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, images)
}

struct Answer {
    content_type: String,
    vary: String,
    status: String,
    bytes: Vec<u8>,
}

async fn get(client: &reqwest::Client, url: &str, accept: &str) -> Answer {
    let response = client
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .expect("edge reachable");
    assert_eq!(
        response.status(),
        200,
        "{url} ({accept}): {}",
        cache_status(&response)
    );
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, vary) = (header("content-type"), header("vary"));
    let status = cache_status(&response);
    let bytes = response.bytes().await.expect("body").to_vec();
    Answer {
        content_type,
        vary,
        status,
        bytes,
    }
}

fn size(bytes: &[u8]) -> (usize, usize) {
    let size = imagesize::blob_size(bytes).expect("an image header");
    (size.width, size.height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_gets_the_best_format_it_names_made_once() {
    let (origin, images) = image_origin().await;
    let edge = Edge::start(&origin).await;
    let client = rampart_tests::client();
    let url = format!("{}/cdn-cgi/image/width=320{PHOTO}", edge.url);
    for (accept, expected) in [
        (CHROME, "image/avif"),
        ("image/webp,*/*", "image/webp"),
        ("*/*", "image/jpeg"),
    ] {
        let first = get(&client, &url, accept).await;
        assert_eq!(first.content_type, expected, "{accept}: {}", first.status);
        assert!(
            first.vary.contains("Accept"),
            "{accept}: vary {:?}",
            first.vary
        );
        assert!(first.status.contains("fwd=uri-miss") && first.status.contains("stored"));
        assert_eq!(size(&first.bytes), (320, 200), "{accept}");
        assert!(
            first.bytes.len() < images.photo.len(),
            "{accept}: smaller than the source"
        );
        let again = get(&client, &url, accept).await;
        assert!(
            again.status.contains("rampart-edge; hit"),
            "{accept}: {}",
            again.status
        );
        assert_eq!(
            (again.content_type, again.bytes),
            (first.content_type, first.bytes)
        );
        assert!(again.vary.contains("Accept"));
    }
    let webp = get(&client, &url, "image/webp").await;
    image::load_from_memory(&webp.bytes).expect("the WebP decodes");
    let fetches = images.fetched.load(Ordering::SeqCst);
    assert_eq!(fetches, 3, "one source fetch per variant");

    // Concurrent requests for a new variant share one conversion.
    let burst = format!("{}/cdn-cgi/image/width=480{SLOW_PHOTO}", edge.url);
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (client, burst) = (client.clone(), burst.clone());
        requests.spawn(async move { get(&client, &burst, CHROME).await });
    }
    let answers = requests.join_all().await;
    assert_eq!(
        images.fetched.load(Ordering::SeqCst),
        4,
        "one more source fetch"
    );
    let collapsed = answers
        .iter()
        .filter(|a| a.status.contains("collapsed"))
        .count();
    assert_eq!(
        collapsed,
        5,
        "{:?}",
        answers.iter().map(|a| &a.status).collect::<Vec<_>>()
    );
    assert!(answers
        .iter()
        .all(|a| a.bytes == answers[0].bytes && a.content_type == "image/avif"));

    // A fixed format is the URL's own: no negotiation, no Vary.
    let fixed = get(
        &client,
        &format!("{}/cdn-cgi/image/width=200,format=webp{PHOTO}", edge.url),
        "*/*",
    )
    .await;
    assert_eq!(fixed.content_type, "image/webp");
    assert!(!fixed.vary.contains("Accept"), "{:?}", fixed.vary);
    assert_eq!(size(&fixed.bytes), (200, 125));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparency_survives_webp_conversion_in_workerd() {
    // libwebp, compiled to wasm32, stores alpha as a losslessly compressed plane.
    let (origin, _images) = image_origin().await;
    let edge = Edge::start(&origin).await;
    let client = rampart_tests::client();
    let url = format!(
        "{}/cdn-cgi/image/width=120,format=webp/images/logo.png",
        edge.url
    );
    let answer = get(&client, &url, "*/*").await;
    assert_eq!(answer.content_type, "image/webp");
    let decoded = image::load_from_memory(&answer.bytes)
        .expect("the WebP decodes")
        .to_rgba8();
    assert_eq!(decoded.dimensions(), (120, 80));
    // Band centres, away from the edges the resize blends.
    let alpha = |x: u32| decoded.get_pixel(x, 40)[3];
    assert_eq!(alpha(20), 0, "the transparent band");
    assert!(
        (120..=136).contains(&alpha(60)),
        "the half-transparent band has alpha {}",
        alpha(60)
    );
    assert_eq!(alpha(100), 255, "the opaque band");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originals_are_converted_for_browsers_purged_with_their_variants_and_bombs_refused() {
    let (origin, images) = image_origin().await;
    let edge = Edge::start_with_vars(&origin, &[("EDGE_PURGE_TOKEN", "purge")]).await;
    let client = rampart_tests::client();
    let url = format!("{}{PHOTO}", edge.url);

    let avif = get(&client, &url, CHROME).await;
    assert_eq!(avif.content_type, "image/avif", "{}", avif.status);
    assert_eq!(size(&avif.bytes), (640, 400), "full size");
    assert!(avif.bytes.len() < images.photo.len());
    assert!(avif.vary.contains("Accept"));
    let webp = get(&client, &url, "image/webp,*/*").await;
    assert_eq!(webp.content_type, "image/webp");
    let plain = get(&client, &url, "*/*").await;
    assert_eq!(plain.content_type, "image/jpeg");
    assert_eq!(plain.bytes, images.photo, "the original, untouched");
    assert!(plain.vary.contains("Accept"), "{:?}", plain.vary);
    let avif_again = get(&client, &url, CHROME).await;
    assert!(avif_again.status.contains("hit"), "{}", avif_again.status);
    assert_eq!(avif_again.bytes, avif.bytes);

    // Purging the URL purges its format variants too.
    let purged = client
        .post(format!("{}/__rampart/purge", edge.url))
        .bearer_auth("purge")
        .json(&serde_json::json!({ "urls": [url] }))
        .send()
        .await
        .expect("edge");
    assert_eq!(purged.status(), 200);
    let after = get(&client, &url, CHROME).await;
    assert!(after.status.contains("fwd=uri-miss"), "{}", after.status);

    // A decompression bomb: refused from its header when resizing was asked for ...
    let refused = client
        .get(format!(
            "{}/cdn-cgi/image/width=100/images/bomb.png",
            edge.url
        ))
        .header("accept", CHROME)
        .send()
        .await
        .expect("edge");
    assert_eq!(refused.status(), 422);
    let body = refused.text().await.expect("body");
    assert!(body.contains("IMAGE_TOO_MANY_PIXELS"), "{body}");
    // ... and the original passed on as it is, never decoded, when it was only negotiated.
    let passed = get(&client, &format!("{}/images/bomb.png", edge.url), CHROME).await;
    assert_eq!(
        (passed.content_type.as_str(), passed.bytes),
        ("image/png", images.bomb.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_signing_key_only_signed_transformations_are_made() {
    let (origin, images) = image_origin().await;
    let key = "a key only the edge and origin know";
    let edge = Edge::start_with_vars(&origin, &[("IMAGE_SIGNING_KEY", key)]).await;
    let client = rampart_tests::client();
    let signed = shared::image_signing::sign(key.as_bytes(), "width=200", PHOTO).expect("signs");
    let answer = get(&client, &format!("{}{signed}", edge.url), "*/*").await;
    assert_eq!(size(&answer.bytes), (200, 125));

    let forged = signed.replace("width=200", "width=4000");
    let unsigned = format!("/cdn-cgi/image/width=300{PHOTO}");
    for (path, code) in [
        (forged, "IMAGE_SIGNATURE_INVALID"),
        (unsigned, "IMAGE_SIGNATURE_REQUIRED"),
    ] {
        let refused = client
            .get(format!("{}{path}", edge.url))
            .send()
            .await
            .expect("edge");
        assert_eq!(refused.status(), 403, "{path}");
        assert!(refused.text().await.expect("body").contains(code), "{path}");
    }
    assert_eq!(
        images.fetched.load(Ordering::SeqCst),
        1,
        "refusals fetch nothing"
    );
    // Originals need no signature: their variants are bounded (one per format).
    let original = get(&client, &format!("{}{PHOTO}", edge.url), "image/webp").await;
    assert_eq!(original.content_type, "image/webp");
}
