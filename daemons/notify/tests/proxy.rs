//! Deliveries never go through a proxy named in the environment: a proxy resolves callback
//! names itself, past the resolver that keeps callbacks off internal addresses. (Its own test
//! binary: the environment is the process's.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use dss_core::ports::SubscriptionKind;
use serde_json::json;

#[tokio::test]
async fn deliveries_ignore_the_proxy_environment() {
    // A "proxy" that only counts the connections it gets.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((_conn, _)) = proxy.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        // SAFETY: this test binary has no other test, and sets the variables before the
        // daemon (and any other thread reading the environment) starts.
        #[expect(
            unsafe_code,
            reason = "set_var before any other thread reads the environment"
        )]
        unsafe {
            std::env::set_var(var, &proxy_url)
        };
    }
    #[expect(
        unsafe_code,
        reason = "set_var before any other thread reads the environment"
    )]
    unsafe {
        std::env::set_var("NO_PROXY", "")
    };
    let env = start("callback_allow = [\"127.0.0.1\"]").await;
    let rx = Receiver::start().await;
    env.subscribe(SubscriptionKind::Jmespath, json!({"callback_url": rx.url}))
        .await;
    env.bundle(U1, V1, "a").await;
    rx.wait(1).await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "nothing went through the proxy"
    );
}
