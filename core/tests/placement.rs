//! Where keys land: the ring's movement and balance, and a sharded cache really writing
//! each key to the node the ring names (checked on the servers themselves).

use polycache::{Cache, Config, KeySchema, Node, Ring};

fn ring(n: usize) -> Ring {
    Ring::new(
        (0..n)
            .map(|i| Node::new(format!("10.0.0.{i}:6379")))
            .collect(),
    )
    .unwrap()
}

#[test]
fn adding_a_node_moves_about_one_in_n_plus_one() {
    let keys = KeySchema::new("pc", "default", 200).unwrap();
    let redis_keys: Vec<String> = (0..100_000)
        .map(|i| keys.redis_key(&format!("user:{i}")).unwrap())
        .collect();
    println!("nodes  moved    1/(N+1)  max/mean load after");
    for n in 1..=10 {
        let (before, after) = (ring(n), ring(n + 1));
        let mut moved = 0usize;
        let mut load = vec![0usize; n + 1];
        for key in &redis_keys {
            let (from, to) = (before.index_for(key), after.index_for(key));
            if from != to {
                moved += 1;
                assert_eq!(to, n, "a moved key goes to the new node");
            }
            load[to] += 1;
        }
        let fraction = moved as f64 / redis_keys.len() as f64;
        let ideal = 1.0 / (n + 1) as f64;
        let mean = redis_keys.len() as f64 / (n + 1) as f64;
        let max_over_mean = *load.iter().max().unwrap() as f64 / mean;
        println!(
            "{n:>2}->{:<2} {fraction:.4}   {ideal:.4}   {max_over_mean:.3}",
            n + 1
        );
        assert!(
            (fraction - ideal).abs() < ideal * 0.35,
            "{n}->{}: moved {fraction:.4}, expected about {ideal:.4}",
            n + 1
        );
        assert!(max_over_mean < 1.35, "load balance {max_over_mean:.3}");
    }
}

#[test]
fn removing_a_node_moves_only_its_keys() {
    let (five, four) = (ring(5), ring(4));
    for i in 0..20_000 {
        let key = format!("k{i}");
        let before = five.node_for(&key);
        let after = four.node_for(&key);
        if before != "10.0.0.4:6379" {
            assert_eq!(before, after, "{key} moved although its node stayed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_cache_writes_each_key_to_its_ring_node() {
    let url = polycache_harness::shared().shards.clone().expect("shards");
    let cache = Cache::new(Config::from_url(&url).unwrap().namespace("placement"))
        .await
        .unwrap();
    let hosts: Vec<String> = url
        .trim_start_matches("redis+shards://")
        .split(',')
        .map(str::to_owned)
        .collect();
    let ring = Ring::new(hosts.iter().map(Node::new).collect()).unwrap();
    let mut per_node = vec![0usize; hosts.len()];
    for i in 0..300 {
        let key = format!("user:{i}");
        cache
            .set(&key, &polycache::Value::from(i), None)
            .await
            .unwrap();
        let redis_key = cache.redis_key(&key).unwrap();
        let owner = ring.index_for(&redis_key);
        per_node[owner] += 1;
        for (node, host) in hosts.iter().enumerate() {
            let client = redis::Client::open(format!("redis://{host}")).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let exists: bool = redis::cmd("EXISTS")
                .arg(&redis_key)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(exists, node == owner, "{redis_key} on {host}");
        }
    }
    println!("keys per shard: {per_node:?}");
    assert!(
        per_node.iter().all(|&n| n > 50),
        "every shard gets keys: {per_node:?}"
    );
}
