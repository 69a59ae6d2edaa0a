//! Serving the built SPA: MIME types, precompressed variants, cache headers
//! and the SPA fallback.

mod common;

use common::*;
use std::fs;

fn dist() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("assets")).unwrap();
    fs::write(
        d.path().join("index.html"),
        "<!doctype html><title>ferrochat</title>",
    )
    .unwrap();
    fs::write(d.path().join("index.html.gz"), "GZ-INDEX").unwrap();
    fs::write(
        d.path().join("assets/app-0123456789abcdef.js"),
        "console.log(1)",
    )
    .unwrap();
    fs::write(d.path().join("assets/app-0123456789abcdef.js.gz"), "GZ").unwrap();
    fs::write(d.path().join("assets/app-0123456789abcdef.js.br"), "BR").unwrap();
    fs::write(d.path().join("assets/app-0123456789abcdef.wasm"), b"\0asm").unwrap();
    fs::write(d.path().join("secret.txt"), "outside assets").unwrap();
    d
}

async fn fetch(
    relay: &TestRelay,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<hyper::body::Bytes>>();
    let mut req = hyper::Request::builder().uri(relay.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let h = res.headers().clone();
    (
        status,
        h,
        res.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}

#[tokio::test]
async fn serves_the_spa_with_the_right_headers() {
    let d = dist();
    let relay = TestRelay::start(&["--static-dir", d.path().to_str().unwrap()]).await;

    let (s, h, body) = fetch(&relay, "/", &[]).await;
    assert_eq!(s, 200);
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(body, b"<!doctype html><title>ferrochat</title>");

    // Brotli preferred, then gzip, then identity.
    let js = "/assets/app-0123456789abcdef.js";
    let (s, h, body) = fetch(&relay, js, &[("accept-encoding", "gzip, deflate, br")]).await;
    assert_eq!((s, body.as_slice()), (200, &b"BR"[..]));
    assert_eq!(h["content-encoding"], "br");
    assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(h["vary"], "Accept-Encoding");
    let (_, h, body) = fetch(&relay, js, &[("accept-encoding", "gzip")]).await;
    assert_eq!(
        (h["content-encoding"].to_str().unwrap(), body.as_slice()),
        ("gzip", &b"GZ"[..])
    );
    let (_, h, body) = fetch(&relay, js, &[("accept-encoding", "br;q=0, identity")]).await;
    assert!(h.get("content-encoding").is_none());
    assert_eq!(body, b"console.log(1)");

    let (s, h, _) = fetch(&relay, "/assets/app-0123456789abcdef.wasm", &[]).await;
    assert_eq!(
        (s, h["content-type"].to_str().unwrap()),
        (200, "application/wasm")
    );

    // Revalidation.
    let (_, h, _) = fetch(&relay, js, &[]).await;
    let etag = h["etag"].to_str().unwrap().to_string();
    let (s, _, body) = fetch(&relay, js, &[("if-none-match", &etag)]).await;
    assert_eq!((s, body.len()), (304, 0));
    relay.stop().await;
}

#[tokio::test]
async fn spa_fallback_and_missing_assets() {
    let d = dist();
    let relay = TestRelay::start(&["--static-dir", d.path().to_str().unwrap()]).await;
    for route in [
        "/chat/alice",
        "/settings",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/a/../b",
    ] {
        let (s, h, body) = fetch(&relay, route, &[]).await;
        assert_eq!(s, 200, "{route}");
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{route}");
        assert!(body.starts_with(b"<!doctype html>"), "{route}");
    }
    let (s, _, _) = fetch(&relay, "/assets/missing-0000.js", &[]).await;
    assert_eq!(s, 404);
    // A path naming a file never falls back, and never leaves the directory.
    for path in ["/favicon.ico", "/../Cargo.toml", "/assets/../../Cargo.toml"] {
        let (s, _, _) = fetch(&relay, path, &[]).await;
        assert_eq!(s, 404, "{path}");
    }
    // API paths never fall back to the SPA.
    let (s, h, _) = fetch(&relay, "/api/unknown", &[]).await;
    assert_eq!(
        (s, h["content-type"].to_str().unwrap()),
        (404, "application/json")
    );
    relay.stop().await;
}

#[tokio::test]
async fn an_unbuilt_spa_says_how_to_build_it() {
    let empty = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(&["--static-dir", empty.path().to_str().unwrap()]).await;
    let (s, _, body) = fetch(&relay, "/", &[]).await;
    assert_eq!(s, 503);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("cargo xtask dist"));
    relay.stop().await;
}
