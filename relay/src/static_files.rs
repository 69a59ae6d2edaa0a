//! Serves the built SPA from `--static-dir` (`cargo xtask dist` output).
//!
//! Files are read from disk on each request (the OS page cache keeps them
//! hot), so a rebuilt SPA is picked up without a restart. The build writes
//! `.br` and `.gz` siblings next to every compressible file; the one the
//! client accepts is served as is, so compression costs nothing at request
//! time. Names under `/assets/` carry a content hash and are cached forever;
//! `index.html` is `no-cache`, so a new build is seen on the next load.
//! Unknown paths that are not API paths get `index.html` (SPA routing);
//! `/support` is `support.html`, the support desk's visitor page.

use crate::App;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;
use warp::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use warp::hyper::body::Bytes;
use warp::Filter;

/// The static-file route (GET and HEAD of anything not under `/api` or `/ws`).
pub fn filter(
    app: Arc<App>,
) -> impl Filter<Extract = (Response<warp::hyper::body::Bytes>,), Error = warp::Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::any().map(move || app.clone()))
        .and_then(|method: Method, path: warp::path::FullPath, headers: HeaderMap, app: Arc<App>| async move {
            if method != Method::GET && method != Method::HEAD {
                return Err(warp::reject::not_found());
            }
            let path = path.as_str();
            if path == "/api" || path.starts_with("/api/") || path == "/ws" {
                return Err(warp::reject::not_found());
            }
            Ok(serve(&app.config.static_dir, path, &headers, method == Method::HEAD).await)
        })
}

/// MIME type by extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The request path as a relative file path, if it is a plain one: only
/// `A-Z a-z 0-9 . _ - /`, and no `..`. Anything else cannot be an asset.
fn relative(path: &str) -> Option<PathBuf> {
    let rel = path.trim_start_matches('/');
    let plain = rel
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
    if !plain || rel.split('/').any(|seg| seg == ".." || seg == ".") {
        return None;
    }
    Some(match rel {
        "" => PathBuf::from("index.html"),
        // The support desk's visitor page (`widget.js` frames
        // `support.html`; `/support` is the address to give people).
        "support" | "support/" => PathBuf::from("support.html"),
        _ => PathBuf::from(rel),
    })
}

/// Encodings the client accepts (`q=0` excluded).
fn accepts(headers: &HeaderMap, encoding: &str) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (name.eq_ignore_ascii_case(encoding) || name == "*") && !q_zero
        })
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

fn reply(status: StatusCode, body: Bytes) -> Response<Bytes> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r
}

async fn serve(dir: &Path, path: &str, headers: &HeaderMap, head: bool) -> Response<Bytes> {
    let rel = relative(path);
    // A path with a file extension names a file: no SPA fallback for it.
    let is_asset = path.starts_with("/assets/") || Path::new(path).extension().is_some();
    let mut file = rel.map(|r| dir.join(r)).filter(|f| f.is_file());
    if file.is_none() && !is_asset {
        file = Some(dir.join("index.html")).filter(|f| f.is_file());
    }
    let Some(file) = file else {
        if is_asset {
            return reply(StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n"));
        }
        let mut r = reply(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from(format!(
                "The ferrochat web app is not built: no index.html in {}.\nRun `cargo xtask dist` (or `cargo xtask run`).\n",
                dir.display()
            )),
        );
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return r;
    };

    // Pick a precompressed sibling the client accepts.
    let mut chosen = (file.clone(), None);
    for (enc, suffix) in [("br", ".br"), ("gzip", ".gz")] {
        let candidate = with_suffix(&file, suffix);
        if accepts(headers, enc) && candidate.is_file() {
            chosen = (candidate, Some(enc));
            break;
        }
    }
    let (source, encoding) = chosen;
    let meta = tokio::fs::metadata(&source).await.ok();
    let etag = meta.as_ref().map(|m| {
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!("\"{:x}-{:x}-{}\"", m.len(), mtime, encoding.unwrap_or("id"))
    });
    let not_modified = etag.as_deref().is_some_and(|tag| {
        headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
    });

    let mut r = if not_modified {
        reply(StatusCode::NOT_MODIFIED, Bytes::new())
    } else {
        match tokio::fs::read(&source).await {
            Ok(bytes) if head => {
                let mut r = reply(StatusCode::OK, Bytes::new());
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                r
            }
            Ok(bytes) => reply(StatusCode::OK, Bytes::from(bytes)),
            Err(e) => {
                tracing::warn!(file = %source.display(), error = %e, "static file read failed");
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Bytes::from_static(b"read error\n"),
                );
            }
        }
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file)),
    );
    if let Some(enc) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let immutable = file.starts_with(dir.join("assets"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        h.insert(header::ETAG, tag);
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths() {
        assert_eq!(relative("/"), Some(PathBuf::from("index.html")));
        assert_eq!(relative("/support"), Some(PathBuf::from("support.html")));
        assert_eq!(
            relative("/assets/app-1f2e.wasm"),
            Some(PathBuf::from("assets/app-1f2e.wasm"))
        );
        assert_eq!(relative("/../etc/passwd"), None);
        assert_eq!(relative("/assets/../../x"), None);
        assert_eq!(relative("/%2e%2e/x"), None);
        assert_eq!(relative("/a\\b"), None);
    }

    #[test]
    fn accept_encoding_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate, br;q=0"),
        );
        assert!(accepts(&h, "gzip"));
        assert!(!accepts(&h, "br"));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br;q=1.0, gzip;q=0.8"),
        );
        assert!(accepts(&h, "br"));
        assert!(!accepts(&HeaderMap::new(), "gzip"));
    }

    #[test]
    fn mime_types() {
        assert_eq!(content_type(Path::new("a/b.wasm")), "application/wasm");
        assert_eq!(
            content_type(Path::new("index.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("x.js")),
            "text/javascript; charset=utf-8"
        );
    }
}
