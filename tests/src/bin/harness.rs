//! `polycache-harness [--standalone] [--shards N] [--cluster N]`: starts real redis-server
//! processes, prints their URLs as one JSON line, and stops them when stdin closes (so a
//! test runner that dies takes its servers with it). With no flags: a standalone server,
//! 3 shards and a 3-master cluster.

use std::io::{Read, Write};

use polycache_harness::Topology;

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut standalone, mut shards, mut cluster, mut any) = (false, 0usize, 0usize, false);
    while let Some(arg) = args.next() {
        any = true;
        let mut count = |name: &str| -> usize {
            args.next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| usage(&format!("{name} needs a number")))
        };
        match arg.as_str() {
            "--standalone" => standalone = true,
            "--shards" => shards = count("--shards"),
            "--cluster" => cluster = count("--cluster"),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if !any {
        (standalone, shards, cluster) = (true, 3, 3);
    }
    let topology = match Topology::start(standalone, shards, cluster) {
        Ok(topology) => topology,
        Err(err) => {
            eprintln!("polycache-harness: {err}");
            std::process::exit(1);
        }
    };
    let json = serde_json::to_string(&topology.endpoints()).unwrap_or_default();
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{json}");
    let _ = stdout.flush();
    // Block until stdin closes; dropping the topology stops every server.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(topology);
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("polycache-harness: {problem}");
    }
    eprintln!("usage: polycache-harness [--standalone] [--shards N] [--cluster N]");
    std::process::exit(2);
}
