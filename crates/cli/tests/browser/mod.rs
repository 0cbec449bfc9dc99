//! A headless Chromium driven over WebDriver, for the tests that check what a person sees on a
//! node's dashboard. It is Debian's `chromium` and `chromium-driver`, which `scripts/test`
//! installs; without them the tests fail and say so.

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How Chromium must start here: no sandbox (tests may run as root), no GPU, and none of its
/// background connections (updates, sync, field trials), which a closed network refuses.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1280,900",
    "--force-device-scale-factor=1",
];

/// A browser session and the driver process behind it; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromedriver` on a free port of 127.0.0.1 and opens a session in a fresh
    /// profile.
    pub async fn start() -> Self {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "the dashboard's browser tests need {path} (Debian package {package}): run \
                 scripts/test, which installs it, or `apt-get install -y chromium chromium-driver`"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(err) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "chromedriver gave no session in 30 s: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("the page loads");
    }

    /// The value of the JavaScript expression `expression` on the page.
    pub async fn eval(&self, expression: &str) -> Value {
        self.client
            .execute(&format!("return ({expression});"), vec![])
            .await
            .unwrap_or_else(|err| panic!("{expression}: {err}"))
    }

    /// Polls `expression` until `ready` holds for its value, at most `limit`; returns it.
    pub async fn wait_for(
        &self,
        expression: &str,
        limit: Duration,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let value = self.eval(expression).await;
            if ready(&value) {
                return value;
            }
            assert!(
                started.elapsed() < limit,
                "after {limit:?}, the page still shows {expression} = {value}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the text of the element `id` satisfies `ready` (the text is empty while
    /// the element is missing), at most `limit`.
    pub async fn shows_text(&self, id: &str, limit: Duration, ready: impl Fn(&str) -> bool) {
        let text = format!("document.getElementById('{id}')?.textContent || ''");
        self.wait_for(&text, limit, |v| v.as_str().is_some_and(&ready))
            .await;
    }

    /// Waits until the page shows at least `n` elements matching the CSS `selector`, at most
    /// `limit`; returns how many it shows.
    pub async fn shows(&self, selector: &str, n: u64, limit: Duration) -> u64 {
        let count = format!("document.querySelectorAll('{selector}').length");
        let shown = self
            .wait_for(&count, limit, |v| v.as_u64() >= Some(n))
            .await;
        shown.as_u64().unwrap_or_default()
    }

    /// Waits for a link matching `selector` (at most `limit`) and clicks the first, as a person
    /// would.
    pub async fn follow(&self, selector: &str, limit: Duration) {
        self.shows(selector, 1, limit).await;
        let link = self
            .client
            .find(fantoccini::Locator::Css(selector))
            .await
            .unwrap_or_else(|err| panic!("{selector}: {err}"));
        link.click()
            .await
            .unwrap_or_else(|err| panic!("{selector}: {err}"));
    }

    /// Saves what the window shows as `dir/name.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        save(dir, name, png);
    }

    /// Saves the first element matching the CSS `selector` as `dir/name.png`, scrolled into
    /// view first (the driver crops it to what the window shows).
    pub async fn screenshot_of(&self, selector: &str, dir: &Path, name: &str) {
        self.eval(&format!(
            "document.querySelector('{selector}').scrollIntoView() || true"
        ))
        .await;
        let element = self
            .client
            .find(fantoccini::Locator::Css(selector))
            .await
            .unwrap_or_else(|err| panic!("{selector}: {err}"));
        let png = element.screenshot().await.expect("a screenshot");
        save(dir, name, png);
    }
}

fn save(dir: &Path, name: &str, png: Vec<u8>) {
    std::fs::create_dir_all(dir).expect("the screenshot directory");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot is written");
}

impl Browser {
    /// Ends the session: the driver closes the browser.
    pub async fn close(&self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Ends whatever the driver started (by process id, deepest first) and then the driver,
    /// in case the session was not closed (a failed test).
    fn drop(&mut self) {
        let mut all = Vec::new();
        let mut parents = vec![self.driver.id()];
        while let Some(parent) = parents.pop() {
            let children = super::children_of(parent);
            parents.extend(&children);
            all.extend(children);
        }
        for pid in all.iter().rev() {
            super::signal(*pid, "KILL");
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
