//! The server loop on a loopback socket: per-IP rate limiting and bounded shutdown.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use commonware_cryptography::Signer;
use exo_api::{ApiLimits, serve, testing::MemoryNode};
use exo_ledger::{Genesis, Params};
use exo_types::{PrivateKey, address_to_hex};
use std::{net::SocketAddr, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

fn node() -> MemoryNode {
    let validator = PrivateKey::from_seed(9).public_key();
    let genesis = Genesis {
        chain_id: "exo-serve".into(),
        params: Params::default(),
        accounts: vec![],
        validators: vec![address_to_hex(&validator)],
    };
    MemoryNode::new(genesis, validator)
}

/// Sends one request on a new connection and returns the status line and what followed it
/// in the first read.
async fn request(addr: SocketAddr, path: &str) -> (String, TcpStream) {
    request_from([127, 0, 0, 1], addr, path).await
}

/// Like [`request`], from a chosen loopback address.
async fn request_from(from: [u8; 4], addr: SocketAddr, path: &str) -> (String, TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    let mut stream: TcpStream = socket.connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buffer[..n]).to_string();
    (text, stream)
}

#[tokio::test]
async fn rate_limit_applies_per_client_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ApiLimits {
        rate_per_sec: 1,
        rate_burst: 1,
        ..ApiLimits::default()
    };
    tokio::spawn(serve(listener, node(), limits, std::future::pending(), 100));
    let (first, _) = request(addr, "/v1/status").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let (second, _) = request(addr, "/v1/status").await;
    assert!(second.starts_with("HTTP/1.1 429"), "{second}");
    assert!(second.contains("rate_limited"), "{second}");
    // Another client address has its own bucket.
    let (other, _) = request_from([127, 0, 0, 2], addr, "/v1/status").await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    // Metrics are rate limited like the rest.
    let (metrics, _) = request(addr, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 429"), "{metrics}");
}

/// H1: a client that opens connections and sends nothing (or half a request) holds them only
/// for the header timeout, and one address cannot hold more than its share of connections;
/// another client is still served.
#[tokio::test]
async fn idle_and_excess_connections_are_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ApiLimits {
        rate_per_sec: 0,
        header_timeout_ms: 300,
        max_connections_per_ip: 3,
        ..ApiLimits::default()
    };
    tokio::spawn(serve(listener, node(), limits, std::future::pending(), 100));
    let connect_from = |from: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        socket.connect(addr).await.unwrap()
    };
    // Three connections from one address, one of them with half a request line.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 3]).await);
    }
    held[0].write_all(b"GET /v1/sta").await.unwrap();
    // The server has counted them once it has accepted them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A fourth from the same address is closed at once.
    let mut fourth = connect_from([127, 0, 0, 3]).await;
    let mut buffer = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), fourth.read(&mut buffer))
        .await
        .expect("the excess connection is closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // Another address is served meanwhile.
    let (other, _) = request_from([127, 0, 0, 4], addr, "/v1/status").await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    // The silent and the half-sent connections are closed after the header timeout.
    for stream in &mut held {
        let mut buffer = [0u8; 512];
        let closed = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    // A 408 may come first.
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "an idle connection was kept open");
    }
    // Their slots are free again.
    let (again, _) = request_from([127, 0, 0, 3], addr, "/v1/status").await;
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
}

#[tokio::test]
async fn shutdown_ends_open_event_streams_within_the_grace_period() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        node(),
        ApiLimits::default(),
        async move {
            let _ = stopped.await;
        },
        200,
    ));
    let (head, _stream) = request(addr, "/v1/events").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returned despite an open stream")
        .unwrap();
    assert!(result.is_ok());
}
