//! One headless Chromium (its own WebDriver session and fresh profile) and
//! the low-level page helpers: load, run JavaScript, find, click, type, and
//! wait for a selector. Nothing here knows ferrochat's screens (see
//! `steps`).

use super::chromedriver::CHROMIUM;
use super::{artifacts_dir, err, wait_until, WAIT};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

/// Viewport of every browser (CSS pixels).
pub const DESKTOP: (u32, u32) = (1280, 800);

/// `[data-testid="name"]`.
pub fn tid(name: &str) -> String {
    format!("[data-testid=\"{name}\"]")
}

/// One user's browser.
#[derive(Clone)]
pub struct Browser {
    pub label: String,
    pub client: Client,
    base: String,
}

impl Browser {
    /// Starts Chromium through chromedriver at `driver_url`, with a fresh
    /// profile (returned: it must live as long as the session), not yet on
    /// any page. `base` is the app's URL; `label` names the browser in
    /// messages.
    pub(super) async fn launch(
        driver_url: &str,
        label: &str,
        base: String,
        extra: &[String],
    ) -> (Browser, TempDir) {
        let profile = tempfile::Builder::new()
            .prefix("e2e-chromium-")
            .tempdir()
            .unwrap();
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            // Containers often have a tiny /dev/shm.
            "--disable-dev-shm-usage".into(),
            "--password-store=basic".into(),
            "--lang=en-US".into(),
        ];
        args.extend_from_slice(extra);
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::new(HttpConnector::new())
                .capabilities(caps)
                .connect(driver_url),
        )
        .await
        .unwrap_or_else(|_| panic!("browser {label}: no WebDriver session within 60 s"))
        .unwrap_or_else(|e| panic!("browser {label}: cannot start Chromium: {e}"));
        let browser = Browser {
            label: label.to_string(),
            client,
            base,
        };
        (browser, profile)
    }

    /// Loads the app from the relay.
    pub async fn open(&self) {
        self.client
            .goto(&self.base)
            .await
            .unwrap_or_else(|e| panic!("{}: cannot load {}: {e}", self.label, self.base));
    }

    /// Reloads the page (and waits for the load event).
    pub async fn reload(&self) {
        self.client
            .refresh()
            .await
            .unwrap_or_else(|e| panic!("{}: reload failed: {e}", self.label));
    }

    /// Runs JavaScript in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.client.execute(script, args).await.map_err(err)
    }

    /// The page's visible text.
    pub async fn visible_text(&self) -> Result<String, String> {
        self.js(
            "return document.body ? document.body.innerText : '';",
            vec![],
        )
        .await
        .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    /// The element, if it is in the page now.
    pub async fn find(&self, css: &str) -> Option<Element> {
        self.client.find(Locator::Css(css)).await.ok()
    }

    /// Whether `css` matches something now.
    pub async fn exists(&self, css: &str) -> Result<bool, String> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|v| !v.is_empty())
            .map_err(err)
    }

    /// Text (as rendered) of the first match now, if any.
    pub async fn text(&self, css: &str) -> Result<Option<String>, String> {
        match self
            .client
            .find_all(Locator::Css(css))
            .await
            .map_err(err)?
            .first()
        {
            Some(e) => e.text().await.map(Some).map_err(err),
            None => Ok(None),
        }
    }

    /// Waits until `css` is in the page and displayed.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.wait_for_within(css, WAIT).await
    }

    /// As [`Browser::wait_for`], with a given timeout.
    pub async fn wait_for_within(&self, css: &str, timeout: Duration) -> Element {
        let what = format!("{}: {css} to be displayed", self.label);
        wait_until(&what, timeout, || async move {
            let e = self.client.find(Locator::Css(css)).await.map_err(err)?;
            if e.is_displayed().await.map_err(err)? {
                Ok(e)
            } else {
                Err("present but not displayed".into())
            }
        })
        .await
    }

    /// Waits until nothing matches `css`.
    pub async fn wait_gone(&self, css: &str, timeout: Duration) {
        let what = format!("{}: {css} to go away", self.label);
        wait_until(&what, timeout, || async move {
            match self.text(css).await? {
                None => Ok(()),
                Some(t) => Err(format!("still there: {t:?}")),
            }
        })
        .await
    }

    /// Waits until the text of `css` satisfies `pred`; returns it.
    pub async fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        expect: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let what = format!("{}: {css} text {expect}", self.label);
        let pred = &pred;
        wait_until(&what, timeout, || async move {
            match self.text(css).await? {
                Some(t) if pred(&t) => Ok(t),
                Some(t) => Err(format!("text is {t:?}")),
                None => Err("not in the page".into()),
            }
        })
        .await
    }

    /// Clicks `css` once it is present and enabled.
    pub async fn click(&self, css: &str) {
        let what = format!("{}: click {css}", self.label);
        wait_until(&what, WAIT, || async move {
            let e = self.client.find(Locator::Css(css)).await.map_err(err)?;
            if !e.is_enabled().await.map_err(err)? {
                return Err("disabled".into());
            }
            e.click().await.map_err(err)
        })
        .await
    }

    /// Types `text` into the (empty or not) input `css`, as a user would,
    /// and checks the input holds exactly `text` afterwards.
    pub async fn fill(&self, css: &str, text: &str) {
        let what = format!("{}: type {text:?} into {css}", self.label);
        wait_until(&what, WAIT, || async move {
            let e = self.client.find(Locator::Css(css)).await.map_err(err)?;
            let current = e.prop("value").await.map_err(err)?.unwrap_or_default();
            if !current.is_empty() {
                // Select all + Backspace: real input events, unlike Clear.
                e.send_keys("\u{E009}a\u{E009}\u{E003}")
                    .await
                    .map_err(err)?;
            }
            e.send_keys(text).await.map_err(err)?;
            let value = e.prop("value").await.map_err(err)?.unwrap_or_default();
            if value == text {
                Ok(())
            } else {
                Err(format!("the input holds {value:?}"))
            }
        })
        .await
    }

    /// Resizes the window so that the page's viewport is `width` x
    /// `height` CSS pixels (headless Chromium's window is taller than its
    /// viewport), and waits until the page sees that size.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let what = format!("{}: a {width}x{height} viewport", self.label);
        wait_until(&what, WAIT, || async move {
            let v = self
                .js(
                    "return [window.innerWidth, window.innerHeight, \
                     window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];",
                    vec![],
                )
                .await?;
            let n = |i: usize| v[i].as_i64().unwrap_or(0);
            if (n(0), n(1)) == (i64::from(width), i64::from(height)) {
                return Ok(());
            }
            let (w, h) = (i64::from(width) + n(2).max(0), i64::from(height) + n(3).max(0));
            self.client
                .set_window_size(w as u32, h as u32)
                .await
                .map_err(err)?;
            Err(format!("viewport was {}x{}", n(0), n(1)))
        })
        .await
    }

    /// Saves a screenshot of the viewport into `e2e-artifacts/<name>`.
    pub async fn save_screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("{}: screenshot: {e}", self.label));
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}
