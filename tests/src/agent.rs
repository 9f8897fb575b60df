//! What the interop matrix's two Rust agents share (tests/interop/agent.rs for core, and
//! bindings-wasm/host's wasi-agent for the component): the line protocol with the driver
//! (tests/interop/agent.py) and the stampede run's loader and verdict.

use std::io::BufRead;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value as Json};

/// One line of the line protocol with the driver.
pub fn emit(line: &Json) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Says `ready` and waits for the driver's go (one stdin line).
pub fn wait_for_go() {
    println!("{}", json!({ "ready": true }));
    let _ = std::io::stdin().lock().read_line(&mut String::new());
}

/// Wall-clock seconds since the epoch (the driver compares them across processes).
pub fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The driver's stdin lines, read on a thread of their own (a holding loader waits for one).
pub fn stdin_lines() -> Arc<Mutex<mpsc::Receiver<String>>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    Arc::new(Mutex::new(rx))
}

/// `INCR key` on the Redis at `addr` (the driver's load counter), over a bare socket.
fn incr(addr: &str, key: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(addr)?;
    write!(sock, "*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len())?;
    let mut reply = [0u8; 64];
    let _ = sock.read(&mut reply)?;
    Ok(())
}

/// SPEC's `keys` (the user keys a command works on).
pub fn spec_keys(spec: &Json) -> Vec<String> {
    spec["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The stampede loader's body for `key`: counts the load in the driver's counter, then holds
/// until the driver's next line (SPEC.hold, after saying `loading`) or sleeps SPEC.delayMs;
/// the value is `"{SPEC.value}:{key}"`.
///
/// # Errors
/// When the counter cannot be reached.
pub fn stampede_load(
    spec: &Json,
    key: &str,
    lines: &Mutex<mpsc::Receiver<String>>,
) -> std::io::Result<String> {
    let counter = spec["counter"].as_str().unwrap_or_default();
    let prefix = spec["counterPrefix"].as_str().unwrap_or_default();
    incr(counter, &format!("{prefix}{key}"))?;
    if spec["hold"].as_bool().unwrap_or(false) {
        emit(&json!({ "loading": key }));
        let _ = lines.lock().map(|rx| rx.recv());
    } else {
        std::thread::sleep(Duration::from_millis(spec["delayMs"].as_u64().unwrap_or(0)));
    }
    let by = spec["value"].as_str().unwrap_or_default();
    Ok(format!("{by}:{key}"))
}

/// What the stampede's callers got: the first value of each key, and every error or
/// value that differs from its key's first.
#[derive(Debug, Default)]
pub struct StampedeValues {
    values: serde_json::Map<String, Json>,
    errors: Vec<String>,
}

impl StampedeValues {
    /// One caller's answer for `key` (a plain-JSON value, or its error's text).
    pub fn add(&mut self, key: String, got: Result<Json, String>) {
        match got {
            Ok(value) => {
                let first = self
                    .values
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
                if *first != value {
                    self.errors.push(format!("{key}: {value} after {first}"));
                }
            }
            Err(err) => self.errors.push(err),
        }
    }

    /// The agent's report: the values, the first five errors and the cache's `metrics`.
    pub fn report(mut self, metrics: Json) -> Json {
        self.errors.truncate(5);
        json!({ "values": self.values, "errors": self.errors, "metrics": metrics })
    }
}
