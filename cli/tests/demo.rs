//! The CLI's output never shows a password from its URL.

use std::process::Command;

use polycache_harness::Server;

#[test]
fn the_demo_banner_and_errors_redact_the_password() {
    const SECRET: &str = "S3cr3t-pw";
    let server = Server::start(&[]).unwrap();
    server
        .command(&["CONFIG", "SET", "requirepass", SECRET])
        .unwrap();
    let port = server.port();
    for (url, works) in [
        (format!("redis://:{SECRET}@127.0.0.1:{port}"), true),
        (format!("redis://:{SECRET}x@127.0.0.1:{port}"), false),
        (format!("redis://:{SECRET}@127.0.0.1:{port}?bogus=1"), false),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_polycache"))
            .args(["demo", "--url", &url, "--db-ms", "1"])
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), works, "{printed}");
        assert!(!printed.contains(SECRET), "{printed}");
        if works {
            assert!(printed.contains("redis://***@127.0.0.1"), "{printed}");
        }
    }
}
