//! `polycache demo [--url URL]`: cache-aside in action — loads, hits, single-flight and
//! metrics — on the embedded `memory://` store by default, or on Redis with `--url`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use polycache::{Cache, Config, Value};

#[derive(Parser)]
#[command(
    name = "polycache",
    version,
    about = "One Redis cache layer for Rust, Python, Node and WASI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show cache-aside with single-flight and metrics against a slow fake database.
    Demo {
        /// Where values live: memory:// (default, no Redis needed), redis://host:port,
        /// redis+shards://a:1,b:2 or redis+cluster://a:1,b:2.
        #[arg(long, default_value = "memory://")]
        url: String,
        /// Simulated database latency in milliseconds.
        #[arg(long, default_value_t = 50)]
        db_ms: u64,
    },
}

/// A stand-in for a slow primary database that counts its queries.
#[derive(Clone)]
struct Database {
    queries: Arc<AtomicUsize>,
    latency: Duration,
}

impl Database {
    async fn user(&self, id: u32) -> polycache::Result<Value> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.latency).await;
        Ok(Value::from_iter([
            ("id", Value::from(id)),
            ("name", Value::from(format!("user {id}"))),
            (
                "plan",
                Value::from(if id % 2 == 0 { "pro" } else { "free" }),
            ),
        ]))
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let Command::Demo { url, db_ms } = cli.command;
    if let Err(err) = demo(&url, Duration::from_millis(db_ms)).await {
        eprintln!("polycache demo: {err}");
        std::process::exit(1);
    }
}

async fn demo(url: &str, latency: Duration) -> polycache::Result<()> {
    let config = Config::from_url(url)?
        .namespace("demo")
        .ttl(Some(Duration::from_secs(60)));
    let cache = Cache::new(config).await?;
    let db = Database {
        queries: Arc::new(AtomicUsize::new(0)),
        latency,
    };
    println!(
        "polycache demo on {} (namespace \"demo\", database latency {latency:?})\n",
        polycache::redact_url(url)
    );
    for key in ["user:42", "user:7"] {
        cache.delete(key).await?; // a clean start when the store is shared
    }

    println!("1. cache-aside: the first read loads from the database, the next ones hit");
    for round in 1..=3 {
        let started = Instant::now();
        let db = db.clone();
        let user = cache
            .get_or_load("user:42", || async move { db.user(42).await }, None)
            .await?;
        println!(
            "   read {round}: {:>9.3} ms  {}  {}",
            ms(started),
            describe(&user),
            if round == 1 {
                "(miss: loaded)"
            } else {
                "(hit)"
            }
        );
    }

    println!("\n2. single-flight: 100 concurrent readers of a cold key, one database query");
    let before = db.queries.load(Ordering::SeqCst);
    let started = Instant::now();
    let readers: Vec<_> = (0..100)
        .map(|_| {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load("user:7", || async move { db.user(7).await }, None)
                    .await
            })
        })
        .collect();
    for reader in readers {
        reader
            .await
            .map_err(|e| polycache::Error::new(polycache::ErrorKind::Loader, e.to_string()))??;
    }
    println!(
        "   100 readers served in {:.3} ms with {} database query",
        ms(started),
        db.queries.load(Ordering::SeqCst) - before
    );

    println!("\n3. batch: get_many fetches several keys in one round trip per node");
    let got = cache.get_many(&["user:42", "user:7", "user:404"]).await?;
    for (key, value) in ["user:42", "user:7", "user:404"].iter().zip(&got) {
        println!(
            "   {key:<9} {}",
            value.as_ref().map_or("miss".to_owned(), describe)
        );
    }

    println!("\n4. invalidation: delete, then the next read loads again");
    cache.delete("user:42").await?;
    let db2 = db.clone();
    cache
        .get_or_load("user:42", || async move { db2.user(42).await }, None)
        .await?;
    println!(
        "   database queries so far: {}",
        db.queries.load(Ordering::SeqCst)
    );

    let m = cache.metrics();
    println!("\nmetrics");
    println!(
        "   hits {:<6} misses {:<6} loads {:<6} load errors {}",
        m.hits, m.misses, m.loads, m.load_errors
    );
    println!(
        "   sets {:<6} deletes {:<5} decode errors {} store errors {}",
        m.sets, m.deletes, m.decode_errors, m.store_errors
    );
    let lookups = (m.hits + m.misses).max(1);
    println!(
        "   hit ratio {:.1}%",
        100.0 * m.hits as f64 / lookups as f64
    );
    Ok(())
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

fn describe(value: &Value) -> String {
    match value {
        Value::Map(map) => map
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(
                        || format!("{}", v.as_i64().unwrap_or_default()),
                        str::to_owned
                    )
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => format!("{other:?}"),
    }
}
