//! `cargo xtask dist`: the production build of the browser client.
//!
//! Same result as `trunk build --release`, without needing trunk, Node or
//! network downloads on the build machine: cargo builds the wasm, the
//! `wasm-bindgen` library (pinned to the same version as the crate's
//! `wasm-bindgen` dependency, which is what keeps the glue and the module in
//! step) generates the JS glue, `wasm-opt` shrinks it when available, and
//! every asset gets a content hash in its name so the relay can serve
//! `/assets/*` as immutable. Precompressed `.gz`/`.br` siblings let the relay
//! send compressed files without compressing per request.

use crate::util::{self, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-release";
/// Output stem of the JS glue and the wasm module.
const APP_NAME: &str = "ferrochat";
/// Largest acceptable download, wasm + JS, gzipped: the first visit on a slow
/// mobile link should stay in the low seconds.
pub const BUDGET_GZIP_BYTES: u64 = 250_000;
/// Output stem of the voice module (`frontend-voice`), imported by the app
/// after login, so it is not part of the first download.
const VOICE_NAME: &str = "voice";
/// Output stem of the visitor's page module (`frontend` with the `support`
/// feature), loaded by `support.html` only.
const SUPPORT_NAME: &str = "support";
/// The visitor's module's limit, gzipped (it is a whole yew app too, but
/// without the app's screens).
pub const SUPPORT_BUDGET_GZIP_BYTES: u64 = 250_000;
/// The voice module's own limit, gzipped: it loads while the user reads
/// their chats, but a phone on a slow link should still get it in seconds.
pub const VOICE_BUDGET_GZIP_BYTES: u64 = 120_000;
/// Builds the SPA into `out` (`out/index.html`, `out/assets/…`).
pub fn dist(out: &Path) -> Result<()> {
    let root = util::workspace_root();
    util::ensure_rustup("target", &[WASM_TARGET])?;
    let target = util::target_dir();
    let scratch = target.join("xtask-dist");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    let (js, wasm) = module("frontend", "frontend", APP_NAME, &[], &scratch)?;
    let (voice_js, voice_wasm) = module(
        "frontend-voice",
        "frontend_voice",
        VOICE_NAME,
        &[],
        &scratch,
    )?;
    let (support_js, support_wasm) = module(
        "frontend",
        "frontend",
        SUPPORT_NAME,
        &["--features", "support"],
        &scratch,
    )?;
    let css = fs::read(root.join("frontend/style.css"))?;
    let template = fs::read_to_string(root.join("index.html"))?;

    // Fresh output: stale hashed assets would otherwise pile up.
    let assets = out.join("assets");
    let _ = fs::remove_dir_all(&assets);
    fs::create_dir_all(&assets)?;
    let js_name = hashed(APP_NAME, "js", &js);
    let wasm_name = hashed(APP_NAME, "wasm", &wasm);
    let css_name = hashed("style", "css", &css);
    let voice_js_name = hashed(VOICE_NAME, "js", &voice_js);
    let voice_wasm_name = hashed(VOICE_NAME, "wasm", &voice_wasm);
    let support_js_name = hashed(SUPPORT_NAME, "js", &support_js);
    let support_wasm_name = hashed(SUPPORT_NAME, "wasm", &support_wasm);
    let support_html = render_index(
        &template,
        &css_name,
        &support_js_name,
        &support_wasm_name,
        (&voice_js_name, &voice_wasm_name),
    )?;
    let html = render_index(
        &template,
        &css_name,
        &js_name,
        &wasm_name,
        (&voice_js_name, &voice_wasm_name),
    )?;
    let mut written = vec![];
    for (name, bytes) in [
        (&js_name, &js),
        (&wasm_name, &wasm),
        (&css_name, &css),
        (&voice_js_name, &voice_js),
        (&voice_wasm_name, &voice_wasm),
        (&support_js_name, &support_js),
        (&support_wasm_name, &support_wasm),
    ] {
        let p = assets.join(name);
        fs::write(&p, bytes)?;
        written.push(p);
    }
    let index = out.join("index.html");
    fs::write(&index, html)?;
    written.push(index);
    // The support widget: one script tag on any site (a fixed name: sites
    // embed it; served `no-cache`). It frames `/support`, the app's
    // visitor mode.
    let support = out.join("support.html");
    fs::write(&support, support_html)?;
    written.push(support);
    let widget = out.join("widget.js");
    fs::copy(root.join("frontend/widget.js"), &widget)?;
    written.push(widget);

    let mut gz_sizes = vec![];
    for p in &written {
        gz_sizes.push(compress(p)?);
    }
    let (js_gz, wasm_gz) = (gz_sizes[0], gz_sizes[1]);
    let total = js_gz + wasm_gz;
    let kb = |n: u64| n as f64 / 1000.0;
    println!("dist: {}", out.display());
    println!(
        "  wasm {:>8.1} kB raw  {:>7.1} kB gzip  /assets/{wasm_name}",
        kb(wasm.len() as u64),
        kb(wasm_gz)
    );
    println!(
        "  js   {:>8.1} kB raw  {:>7.1} kB gzip  /assets/{js_name}",
        kb(js.len() as u64),
        kb(js_gz)
    );
    println!(
        "  css  {:>8.1} kB raw  {:>7.1} kB gzip  /assets/{css_name}",
        kb(css.len() as u64),
        kb(gz_sizes[2])
    );
    println!(
        "  wasm+js gzip {:.1} kB (budget {:.0} kB)",
        kb(total),
        kb(BUDGET_GZIP_BYTES)
    );
    let voice_total = gz_sizes[3] + gz_sizes[4];
    println!(
        "  voice module (loaded after login) js+wasm gzip {:.1} kB (budget {:.0} kB)  /assets/{voice_wasm_name}",
        kb(voice_total),
        kb(VOICE_BUDGET_GZIP_BYTES)
    );
    let support_total = gz_sizes[5] + gz_sizes[6];
    println!(
        "  support page (visitors, support.html) js+wasm gzip {:.1} kB (budget {:.0} kB)  /assets/{support_wasm_name}",
        kb(support_total),
        kb(SUPPORT_BUDGET_GZIP_BYTES)
    );
    fs::write(
        out.join("build-info.json"),
        format!(
            "{{\n  \"wasmJsGzipBytes\": {total},\n  \"wasmBytes\": {},\n  \"jsBytes\": {},\n  \"wasmGzipBytes\": {wasm_gz},\n  \"jsGzipBytes\": {js_gz},\n  \"budgetGzipBytes\": {BUDGET_GZIP_BYTES},\n  \"js\": \"/assets/{js_name}\",\n  \"wasm\": \"/assets/{wasm_name}\",\n  \"css\": \"/assets/{css_name}\",\n  \"voiceJsWasmGzipBytes\": {voice_total},\n  \"voiceWasm\": \"/assets/{voice_wasm_name}\",\n  \"supportJsWasmGzipBytes\": {support_total},\n  \"supportWasm\": \"/assets/{support_wasm_name}\"\n}}\n",
            wasm.len(),
            js.len()
        ),
    )?;
    if total > BUDGET_GZIP_BYTES {
        return Err(format!(
            "wasm+js is {total} bytes gzipped, over the {BUDGET_GZIP_BYTES}-byte budget"
        )
        .into());
    }
    if support_total > SUPPORT_BUDGET_GZIP_BYTES {
        return Err(format!(
            "the support page is {support_total} bytes gzipped, over its {SUPPORT_BUDGET_GZIP_BYTES}-byte budget"
        )
        .into());
    }
    if voice_total > VOICE_BUDGET_GZIP_BYTES {
        return Err(format!(
            "the voice module is {voice_total} bytes gzipped, over its {VOICE_BUDGET_GZIP_BYTES}-byte budget"
        )
        .into());
    }
    Ok(())
}

/// Builds one wasm crate (`package`, whose wasm file is `lib.wasm`) on its
/// own cargo invocation (so features do not unify across the two modules:
/// the app's `shared` stays without the voice frames), generates its JS
/// glue as `name.js`, and returns the glue and the module to ship.
fn module(
    package: &str,
    lib: &str,
    name: &str,
    features: &[&str],
    scratch: &Path,
) -> Result<(Vec<u8>, Vec<u8>)> {
    util::run(
        util::cargo()
            .args([
                "build",
                "-p",
                package,
                "--lib",
                "--target",
                WASM_TARGET,
                "--profile",
                PROFILE,
            ])
            .args(features),
    )?;
    let target = util::target_dir();
    let wasm_in = target
        .join(WASM_TARGET)
        .join(PROFILE)
        .join(format!("{lib}.wasm"));
    // wasm-bindgen may warn that `strip = true` removed the target_features
    // section: harmless, it then detects reference types from the module's
    // exports (see frontend/README.md).
    eprintln!("xtask: wasm-bindgen (web) {}", wasm_in.display());
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm_in)
        .out_name(name)
        .web(true)?
        .typescript(false)
        // Symbol names only matter for debugging; users should not download
        // them even if the profile stops stripping.
        .remove_name_section(true)
        .remove_producers_section(true)
        .generate(scratch)
        .map_err(|e| format!("wasm-bindgen failed: {e:#}"))?;
    if scratch.join("snippets").exists() {
        return Err("the wasm-bindgen output has JS snippets; dist does not ship them yet".into());
    }
    let js = fs::read(scratch.join(format!("{name}.js")))?;
    let wasm = crate::wasm_opt::optimize(&scratch.join(format!("{name}_bg.wasm")), &target)?;
    Ok((js, wasm))
}

/// The gzip (best) size of `data`, for comparing builds quickly.
pub fn gzip_len(data: &[u8]) -> usize {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data)
        .and_then(|()| gz.finish())
        .map_or(usize::MAX, |v| v.len())
}

/// `data` gzipped with zopfli: a valid gzip stream any browser reads,
/// about 4 % smaller than zlib's best on the app's wasm (231.5 kB against
/// 241.7 kB), at a second or two of build time. What `dist` writes as the
/// `.gz` the relay serves, and what the size budgets measure.
pub fn zopfli_gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    zopfli::compress(
        zopfli::Options::default(),
        zopfli::Format::Gzip,
        data,
        &mut out,
    )
    .map_err(std::io::Error::other)?;
    Ok(out)
}

/// `name-<first 16 hex digits of sha256>.ext`.
pub fn hashed(name: &str, ext: &str, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}-{hex}.{ext}")
}

/// Turns trunk's `index.html` into the production one: trunk's
/// `data-trunk` links go, the hashed stylesheet, a module preload and the
/// loader script come in.
pub fn render_index(
    template: &str,
    css: &str,
    js: &str,
    wasm: &str,
    voice: (&str, &str),
) -> Result<String> {
    let mut html = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(start) = rest.find("<link") {
        let end = start
            + rest[start..]
                .find('>')
                .ok_or("index.html: unterminated <link")?
            + 1;
        let tag = &rest[start..end];
        if tag.contains("data-trunk") {
            // Drop the tag and the indentation/newline it sat on.
            let kept = rest[..start].trim_end_matches([' ', '\t']);
            html.push_str(kept);
            rest = rest[end..].strip_prefix('\n').unwrap_or(&rest[end..]);
            if !kept.ends_with('\n') && !kept.is_empty() {
                html.push('\n');
            }
        } else {
            html.push_str(&rest[..end]);
            rest = &rest[end..];
        }
    }
    html.push_str(rest);
    let head_end = html.find("</head>").ok_or("index.html has no </head>")?;
    let inject = format!(
        concat!(
            "  <link rel=\"stylesheet\" href=\"/assets/{css}\">\n",
            "  <link rel=\"modulepreload\" href=\"/assets/{js}\">\n",
            "  <link rel=\"preload\" href=\"/assets/{wasm}\" as=\"fetch\" type=\"application/wasm\" crossorigin>\n",
            "  <script type=\"module\">import init from '/assets/{js}'; init({{module_or_path:'/assets/{wasm}'}});</script>\n",
            "  <meta name=\"ferrochat-voice\" content=\"/assets/{vjs}\" data-wasm=\"/assets/{vwasm}\">\n",
        ),
        css = css,
        js = js,
        wasm = wasm,
        vjs = voice.0,
        vwasm = voice.1,
    );
    html.insert_str(head_end, &inject);
    Ok(html)
}

/// Writes `X.gz` (best) and `X.br` (quality 11) next to `X`; returns the
/// gzip size.
fn compress(path: &Path) -> Result<u64> {
    let data = fs::read(path)?;
    let gz = zopfli_gzip(&data)?;
    fs::write(sibling(path, "gz"), &gz)?;
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 64 * 1024, 11, 22);
        w.write_all(&data)?;
    }
    fs::write(sibling(path, "br"), &br)?;
    Ok(gz.len() as u64)
}

fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <link rel="icon" href="data:,">
  <link data-trunk rel="rust" href="frontend/Cargo.toml" />
  <link data-trunk rel="css" href="frontend/style.css">
  <title>ferrochat</title>
</head>
<body></body>
</html>
"#;

    #[test]
    fn index_drops_trunk_links_and_loads_hashed_assets() {
        let html = render_index(
            TEMPLATE,
            "style-1.css",
            "app-2.js",
            "app-3.wasm",
            ("v-4.js", "v-5.wasm"),
        )
        .unwrap();
        assert!(!html.contains("data-trunk"), "{html}");
        assert!(html.contains(r#"<link rel="icon" href="data:,">"#));
        assert!(html.contains(r#"<link rel="stylesheet" href="/assets/style-1.css">"#));
        assert!(html.contains(r#"<link rel="modulepreload" href="/assets/app-2.js">"#));
        assert!(html.contains(
            "<script type=\"module\">import init from '/assets/app-2.js'; init({module_or_path:'/assets/app-3.wasm'});</script>"
        ));
        // Injected inside <head>, and no blank lines left where links were.
        let head = &html[..html.find("</head>").unwrap()];
        assert!(head.contains("/assets/app-3.wasm"));
        assert!(head.contains(
            r#"<meta name="ferrochat-voice" content="/assets/v-4.js" data-wasm="/assets/v-5.wasm">"#
        ));
        assert!(!html.contains("\n\n"), "{html}");
        assert!(html.contains("  <meta charset=\"utf-8\">\n  <link rel=\"icon\""));
        assert!(html.contains("<title>ferrochat</title>\n  <link rel=\"stylesheet\""));
    }

    #[test]
    fn index_without_head_is_an_error() {
        assert!(render_index("<html></html>", "a", "b", "c", ("d", "e")).is_err());
        assert!(render_index("<head><link data-trunk", "a", "b", "c", ("d", "e")).is_err());
    }

    #[test]
    fn hashed_names_follow_content() {
        let a = hashed("app", "js", b"one");
        assert_eq!(a, hashed("app", "js", b"one"));
        assert_ne!(a, hashed("app", "js", b"two"));
        // sha256("one") starts 7692c3ad3540bb80.
        assert_eq!(a, "app-7692c3ad3540bb80.js");
    }

    #[test]
    fn compressed_siblings_round_trip() {
        let dir = std::env::temp_dir().join(format!("xtask-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.js");
        let data = "console.log('hello');\n".repeat(200);
        fs::write(&p, &data).unwrap();
        let gz_len = compress(&p).unwrap();
        let gz = fs::read(dir.join("a.js.gz")).unwrap();
        assert_eq!(gz.len() as u64, gz_len);
        assert!(gz_len < data.len() as u64 / 4);
        let mut back = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut back)
            .unwrap();
        assert_eq!(back, data);
        let br = fs::read(dir.join("a.js.br")).unwrap();
        let mut back = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut back).unwrap();
        assert_eq!(back, data.as_bytes());
        fs::remove_dir_all(&dir).unwrap();
    }
}
