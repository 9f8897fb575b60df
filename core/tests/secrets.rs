//! A password in a URL never reaches a message: every `Debug`, `Display` and error this
//! crate can be made to print is searched for it.

use polycache::{block_on, Cache, Config, Io};
use polycache_harness::Server;

const SECRET: &str = "S3cr3t-pw";

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the password: {text}");
}

fn open(url: &str, io: Io) -> polycache::Result<Cache> {
    let config = Config::from_url(url)?;
    match io {
        Io::Async => tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(Cache::builder(config).build()),
        Io::Blocking => block_on(Cache::builder(config).io(io).build()),
    }
}

#[test]
fn no_message_shows_the_password() {
    let server = Server::start(&[]).unwrap();
    server
        .command(&["CONFIG", "SET", "requirepass", SECRET])
        .unwrap();
    let port = server.port();
    let closed = free_port();
    let mut printed = Vec::new();

    // Malformed URLs and options.
    for url in [
        format!("redis://:{SECRET}@127.0.0.1:{port}?bogus=1"),
        format!("redis://:{SECRET}@127.0.0.1:{port}?ttl=nope"),
        format!("mongodb://:{SECRET}@127.0.0.1:{port}"),
        format!("redis+shards://:{SECRET}@"),
        format!("redis+shards://:{SECRET}@a:1,b:2?weights=1"),
        format!(":{SECRET}@127.0.0.1"),
    ] {
        let err = Config::from_url(&url).unwrap_err();
        printed.push((url.clone(), format!("{err} {err:?}")));
    }

    for io in [Io::Async, Io::Blocking] {
        // Nothing listening, a wrong password, a cluster URL on a plain server.
        for url in [
            format!("redis://:{SECRET}@127.0.0.1:{closed}"),
            format!("redis://:{SECRET}x@127.0.0.1:{port}"),
            format!("redis+shards://:{SECRET}@127.0.0.1:{closed}"),
            format!("redis+cluster://:{SECRET}@127.0.0.1:{port}"),
        ] {
            let err = open(&url, io).unwrap_err();
            printed.push((url.clone(), format!("{err} {err:?}")));
        }
        // A working cache and its config.
        let url = format!("redis://:{SECRET}@127.0.0.1:{port}?namespace=n");
        let cache = open(&url, io).unwrap();
        printed.push((url.clone(), format!("{cache:?} {:?}", cache.config())));
        printed.push((url.clone(), cache.config().redacted_url()));
        // A call failing on a server that went away.
        server.pause();
        let err = match io {
            Io::Blocking => block_on(cache.get("k")).unwrap_err(),
            Io::Async => tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(cache.get("k"))
                .unwrap_err(),
        };
        server.resume();
        printed.push((url, format!("{err} {err:?}")));
    }

    for (url, text) in &printed {
        assert_clean(url, text);
    }
    assert!(printed.len() > 15);
}
