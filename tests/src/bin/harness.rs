//! `polycache-harness [--standalone] [--shards N] [--cluster N] [--cluster-replicas N]
//! [--sentinel] [--blackhole]`: starts real redis-server processes, prints their URLs as one
//! JSON line, and stops them when stdin closes (so a test runner that dies takes its
//! servers with it). With no flags: a standalone server, 3 shards and a 3-master cluster.
//! The last three (a cluster of N masters each with a replica, a Sentinel setup, a
//! black-holed address) take seconds to start and are for the fault suites.

use std::io::{Read, Write};

use polycache_harness::{Spec, Topology};

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut spec, mut any) = (Spec::default(), false);
    while let Some(arg) = args.next() {
        any = true;
        let mut count = |name: &str| -> usize {
            args.next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| usage(&format!("{name} needs a number")))
        };
        match arg.as_str() {
            "--standalone" => spec.standalone = true,
            "--shards" => spec.shards = count("--shards"),
            "--cluster" => spec.cluster = count("--cluster"),
            "--cluster-replicas" => spec.cluster_replicas = count("--cluster-replicas"),
            "--sentinel" => spec.sentinel = true,
            "--blackhole" => spec.blackhole = true,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if !any {
        spec = Spec {
            standalone: true,
            shards: 3,
            cluster: 3,
            ..Spec::default()
        };
    }
    let topology = match Topology::start_spec(spec) {
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
    eprintln!(
        "usage: polycache-harness [--standalone] [--shards N] [--cluster N] \
         [--cluster-replicas N] [--sentinel] [--blackhole]"
    );
    std::process::exit(2);
}
