//! Per-client rate limits on the expensive routes open to anyone (search, checkout): a token
//! bucket per client address (an IPv6 client by its /64, which one host usually has whole),
//! refilled at `rate` per second up to `burst`. A client over its limit gets 429 with the
//! seconds until its next request would pass.
//!
//! The address is the peer's, or the last one in `api.client_ip_header` when a proxy or load
//! balancer sets it (earlier ones come from the client and are not trusted).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::error::ApiError;

/// Clients tracked at most; past this, buckets that have refilled are forgotten (a full bucket
/// and no bucket mean the same).
const MAX_CLIENTS: usize = 100_000;

/// One route's limit for every client.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<u128, (f64, Instant)>>,
}

impl RateLimit {
    /// `rate` requests per second, `burst` at once.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `client`'s bucket, or says how long until one is there.
    pub fn take(&self, client: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= MAX_CLIENTS {
            let (rate, burst) = (self.rate, self.burst);
            b.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
            if b.len() >= MAX_CLIENTS {
                b.clear();
            }
        }
        let (tokens, at) = b.entry(key(client)).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// The bucket of an address: IPv4 whole, IPv6 by its /64 (IPv4-mapped ones as IPv4).
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => u128::from(v6) & !((1u128 << 64) - 1),
        },
    }
}

/// The client's address: the last one in `header` when configured, else the peer's.
pub fn client(req: &Request, header: Option<&str>) -> Option<IpAddr> {
    if let Some(h) = header {
        let last = req
            .headers()
            .get_all(h)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .map(str::trim);
        if let Some(ip) = last.and_then(|a| a.parse::<IpAddr>().ok()) {
            return Some(ip);
        }
    }
    crate::server::peer(req).map(|a| a.ip())
}

/// A route's limiter with where to find the client's address.
#[derive(Debug, Clone)]
pub struct Limiter {
    /// The limit.
    pub limit: Arc<RateLimit>,
    /// `api.client_ip_header`.
    pub header: Option<Arc<str>>,
}

/// Runs the request if its client is within the limit, else answers 429.
pub async fn limited(State(l): State<Limiter>, req: Request, next: Next) -> Response {
    let Some(ip) = client(&req, l.header.as_deref()) else {
        return next.run(req).await;
    };
    match l.limit.take(ip) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut res = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!("too many requests from this client; retry in {secs} s"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_client_has_its_own_bucket_refilled_at_the_rate() {
        let l = RateLimit::new(2.0, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b_neighbour: IpAddr = "2001:db8::ffff".parse().unwrap();
        for _ in 0..3 {
            assert!(l.take(a).is_ok());
        }
        let wait = l.take(a).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(l.take(b).is_ok(), "another client is not held back");
        for _ in 0..2 {
            assert!(l.take(b_neighbour).is_ok());
        }
        assert!(l.take(b).is_err(), "one /64 is one client");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(l.take(a).is_ok());
        assert!(l.take(a).is_err());
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(l.take(a).is_ok(), "refilled up to the burst, no more");
        }
        assert!(l.take(a).is_err());
    }
}
