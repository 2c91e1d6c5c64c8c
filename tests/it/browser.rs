//! Headless Chromium for the web console's tests: finding it, dumping a page's DOM after its
//! scripts ran, driving a live page over the DevTools protocol, and reading serialized HTML.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A start tag in serialized HTML: where it begins and its attributes (values unescaped).
#[derive(Debug)]
pub(crate) struct Tag {
    pub(crate) at: usize,
    pub(crate) attrs: BTreeMap<String, String>,
}

impl Tag {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.attrs.contains_key(name)
    }
}

pub(crate) fn unescape(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Every `<name ...>` start tag. Attribute values are read up to their closing quote, so a `>`
/// inside one (serializers differ on escaping it) does not end the tag.
pub(crate) fn start_tags(html: &str, name: &str) -> Vec<Tag> {
    let open = format!("<{name}");
    let mut tags = Vec::new();
    let mut from = 0;
    while let Some(found) = html[from..].find(&open) {
        let at = from + found;
        from = at + open.len();
        let mut rest = &html[from..];
        if !rest.starts_with(|c: char| c.is_whitespace() || c == '>') {
            continue;
        }
        let mut attrs = BTreeMap::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() || rest.starts_with('>') || rest.starts_with("/>") {
                break;
            }
            let end = rest
                .find(|c: char| c == '=' || c == '>' || c.is_whitespace())
                .unwrap_or(rest.len());
            let key = rest[..end].to_owned();
            rest = &rest[end..];
            if let Some(after) = rest.strip_prefix("=\"") {
                let close = after.find('"').expect("attribute value closes");
                attrs.insert(key, unescape(&after[..close]));
                rest = &after[close + 1..];
            } else {
                attrs.insert(key, String::new());
            }
        }
        tags.push(Tag { at, attrs });
    }
    tags
}

/// The first `<name>` whose attribute `key` is `value`.
pub(crate) fn find_tag(html: &str, name: &str, key: &str, value: &str) -> Option<Tag> {
    start_tags(html, name)
        .into_iter()
        .find(|tag| tag.get(key) == Some(value))
}

/// The HTML with every quoted attribute value removed: what is left is markup and text, so a
/// `<img` there is an element (text has it as `&lt;img`).
pub(crate) fn without_attribute_values(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let (mut in_tag, mut in_quote) = (false, false);
    for c in html.chars() {
        match (in_tag, in_quote, c) {
            (true, false, '"') => in_quote = true,
            (true, true, '"') => in_quote = false,
            (true, true, _) => continue,
            (false, _, '<') => in_tag = true,
            (true, false, '>') => in_tag = false,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// The headless browser: `LARDER_CHROMIUM`, else `chromium` (Debian), `chromium-browser` or
/// `google-chrome` on the PATH.
pub(crate) fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LARDER_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Load `url` in headless Chromium, let its scripts run (until they fetched the jobs once,
/// then two more seconds), and return the resulting DOM. (Chromium's own `--dump-dom` with a
/// virtual time budget never ends on a page that keeps an event stream open.)
pub(crate) fn dump_dom(browser: &std::path::Path, url: &str) -> String {
    let mut page = Browser::open(browser, url);
    page.wait_for(
        "document.readyState === 'complete' && Number(document.body.dataset.polls) >= 1",
        |v| *v == json!(true),
    );
    std::thread::sleep(Duration::from_secs(2));
    page.eval("document.documentElement.outerHTML")
        .as_str()
        .expect("the DOM")
        .to_owned()
}

/// A page in headless Chromium driven over the DevTools protocol on a pipe
/// (`--remote-debugging-pipe`: NUL-terminated JSON, commands on fd 3, answers on fd 4), so the
/// test can type into the page and watch it change, as a person would.
pub(crate) struct Browser {
    child: Child,
    commands: std::io::PipeWriter,
    answers: BufReader<std::io::PipeReader>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub(crate) fn open(browser: &std::path::Path, url: &str) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        // Chromium's own scratch directories (`org.chromium.Chromium.*`) go under TMPDIR and
        // outlive a killed browser: keep them inside the profile, which is removed with it.
        let scratch = profile.path().join("tmp");
        std::fs::create_dir(&scratch).expect("scratch dir");
        let (command_read, command_write) = std::io::pipe().expect("pipe");
        let (answer_read, answer_write) = std::io::pipe().expect("pipe");
        // The shell moves the pipes to the descriptors Chromium reads and writes.
        let child = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<&0 4>&1 </dev/null >/dev/null")
            .arg(browser)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .env("TMPDIR", &scratch)
            .stdin(Stdio::from(command_read))
            .stdout(Stdio::from(answer_write))
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        let mut browser = Browser {
            child,
            commands: command_write,
            answers: BufReader::new(answer_read),
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({ "url": url }));
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        browser
    }

    /// Send a command (to the page once attached) and wait for its answer.
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        use std::io::Write;
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("JSON");
        bytes.push(0);
        self.commands.write_all(&bytes).expect("write to chromium");
        loop {
            let mut raw = Vec::new();
            let n = self
                .answers
                .read_until(0, &mut raw)
                .expect("read from chromium");
            assert!(n > 0, "chromium closed the pipe");
            raw.pop();
            let answer: Value = serde_json::from_slice(&raw).expect("JSON from chromium");
            if answer["id"] == json!(id) {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Evaluate a JavaScript expression in the page; its JSON value.
    pub(crate) fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Evaluate until `done(value)`, for up to 20 seconds.
    pub(crate) fn wait_for(&mut self, expression: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Until the page has loaded, what the expression reads may not exist yet.
            let value = self.eval(&format!(
                "(() => {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()"
            ));
            if done(&value) {
                return value;
            }
            assert!(Instant::now() < deadline, "{expression} stayed {value}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Browser {
    /// Load `url` in the page and wait until its document (and deferred script) ran.
    pub(crate) fn navigate(&mut self, url: &str) {
        self.eval("window.__leaving = true");
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for(
            "window.__leaving !== true && document.readyState === 'complete'",
            |v| *v == json!(true),
        );
    }

    /// Set the viewport (CSS pixels), e.g. a phone's.
    pub(crate) fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        );
    }

    /// Save a PNG of the whole page to `path`.
    pub(crate) fn screenshot(&mut self, path: &std::path::Path) {
        use base64::Engine;
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        let data = shot["data"].as_str().expect("screenshot data");
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Click the element `selector` matches (asserting there is one).
    pub(crate) fn click(&mut self, selector: &str) {
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
            json!(selector)
        ));
        assert_eq!(found, json!(true), "nothing matches {selector}");
    }

    /// Set the value of the field `selector` matches.
    pub(crate) fn fill(&mut self, selector: &str, value: &str) {
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return false; e.value = {}; return true; }})()",
            json!(selector),
            json!(value)
        ));
        assert_eq!(found, json!(true), "nothing matches {selector}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
