//! The host grants TCP to loopback only; anything else is refused before a packet is sent,
//! and the component reports it as a `connection` error.

use std::net::SocketAddr;

use polycache_wasm_host::{loopback_only, Network, WitError};
use wasmtime_wasi::sockets::SocketAddrUse;

use super::{cache::standalone_port, guest, host, no_options};

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

#[test]
fn the_policy_allows_loopback_connects_and_the_implicit_bind_only() {
    use SocketAddrUse::*;
    assert!(loopback_only(addr("127.0.0.1:6379"), TcpConnect));
    assert!(loopback_only(addr("127.8.9.10:1"), TcpConnect));
    assert!(loopback_only(addr("[::1]:6379"), TcpConnect));
    assert!(
        loopback_only(addr("0.0.0.0:0"), TcpBind),
        "the implicit bind of connect"
    );
    assert!(loopback_only(addr("[::]:0"), TcpBind));

    assert!(!loopback_only(addr("10.1.2.3:6379"), TcpConnect));
    assert!(!loopback_only(addr("0.0.0.0:6379"), TcpConnect));
    assert!(!loopback_only(addr("[::ffff:10.1.2.3]:6379"), TcpConnect));
    assert!(
        !loopback_only(addr("0.0.0.0:6379"), TcpBind),
        "no fixed ports"
    );
    assert!(!loopback_only(addr("127.0.0.1:0"), TcpListen));
    assert!(!loopback_only(addr("127.0.0.1:6379"), UdpSend));
}

fn open_error(network: Network, url: &str) -> WitError {
    let mut guest = host()
        .instantiate(network, |_key: &str| Err("unused".into()))
        .unwrap();
    match guest.open(url, &no_options()).expect("no trap") {
        Ok(_) => panic!("{url} must be refused"),
        Err(err) => err,
    }
}

/// An address of this machine that is not loopback (from the kernel's table of local
/// addresses). Dialling it stays on this machine, so even a broken policy could not send
/// traffic anywhere else.
fn own_non_loopback_address() -> std::net::IpAddr {
    let table = std::fs::read_to_string("/proc/net/fib_trie").expect("/proc/net/fib_trie");
    let lines: Vec<&str> = table.lines().collect();
    lines
        .windows(2)
        .filter(|pair| pair[1].trim() == "/32 host LOCAL")
        .filter_map(|pair| pair[0].trim().trim_start_matches("|--").trim().parse().ok())
        .find(|ip: &std::net::IpAddr| !ip.is_loopback())
        .expect("this machine has a non-loopback address")
}

#[test]
fn a_non_loopback_address_is_refused_with_a_connection_error() {
    let port = standalone_port();
    let target = SocketAddr::new(own_non_loopback_address(), port);
    // Checked first, so a broken policy fails here rather than dialling.
    assert!(
        !loopback_only(target, SocketAddrUse::TcpConnect),
        "{target}"
    );

    let err = open_error(Network::Loopback, &format!("redis://{target}"));
    println!("{target} refused: {err:?}");
    assert!(matches!(err, WitError::Connection(_)), "{err:?}");
    let message = err.message().to_lowercase();
    assert!(
        message.contains("permission") || message.contains("denied") || message.contains("access"),
        "the refusal says why: {message}"
    );
    // The same server on the loopback address is reachable: the refusal is the policy's.
    let mut guest = guest();
    let ok = guest
        .open(&format!("redis://127.0.0.1:{port}"), &no_options())
        .unwrap();
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn without_a_network_grant_even_loopback_is_refused() {
    let port = standalone_port();
    let err = open_error(Network::None, &format!("redis://127.0.0.1:{port}"));
    assert!(matches!(err, WitError::Connection(_)), "{err:?}");
}
