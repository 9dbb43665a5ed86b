//! `--rate-limit`: per-client request budgets in three tiers, as `qwen
//! serve` offers — prompts (expensive: they drive a model), mutations
//! (creates, votes, cancels, model switches, closes) and reads. A client
//! is its peer IP address. Each tier is a token bucket refilled evenly over
//! a minute; an empty bucket answers `429 rate_limited` (JSON) with
//! `Retry-After`, before the request is read or authenticated.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Requests per minute per client in each tier; `0` = that tier unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub prompt: u32,
    pub mutation: u32,
    pub read: u32,
}

impl FromStr for RateLimits {
    type Err = String;

    /// `PROMPT,MUTATION,READ`, e.g. `30,120,600`.
    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let [prompt, mutation, read] = parts[..] else {
            return Err(format!(
                "expected PROMPT,MUTATION,READ requests per minute (e.g. 30,120,600), got `{text}`"
            ));
        };
        let number = |tier: &str, value: &str| {
            value
                .parse::<u32>()
                .map_err(|_| format!("the {tier} limit `{value}` is not a whole number"))
        };
        Ok(Self {
            prompt: number("prompt", prompt)?,
            mutation: number("mutation", mutation)?,
            read: number("read", read)?,
        })
    }
}

/// The peer address of a request's connection (put in by the connection).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerIp(pub IpAddr);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tier {
    Prompt,
    Mutation,
    Read,
}

impl Tier {
    fn of(method: &Method, path: &str) -> Tier {
        if *method == Method::GET || *method == Method::HEAD {
            Tier::Read
        } else if *method == Method::POST && path.ends_with("/prompt") {
            Tier::Prompt
        } else {
            Tier::Mutation
        }
    }

    fn name(self) -> &'static str {
        match self {
            Tier::Prompt => "prompts",
            Tier::Mutation => "mutations",
            Tier::Read => "reads",
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Most clients tracked; past it, buckets that have refilled are dropped
/// first (they hold nothing a fresh one would not), so a flood of source
/// addresses cannot grow this map without bound.
const MAX_BUCKETS: usize = 16 * 1024;

#[derive(Debug)]
pub(crate) struct Limiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<(IpAddr, Tier), Bucket>>,
}

impl Limiter {
    pub(crate) fn new(limits: RateLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            buckets: Mutex::default(),
        })
    }

    fn per_minute(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Prompt => self.limits.prompt,
            Tier::Mutation => self.limits.mutation,
            Tier::Read => self.limits.read,
        }
    }

    /// Takes a token; `Err(wait)` when the bucket is empty.
    fn take(&self, ip: IpAddr, tier: Tier, now: Instant) -> Result<(), Duration> {
        let per_minute = self.per_minute(tier);
        if per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&(ip, tier)) {
            buckets.retain(|(_, tier), bucket| {
                let full = f64::from(self.per_minute(*tier));
                bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * full / 60.0 < full
            });
        }
        let bucket = buckets.entry((ip, tier)).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

pub(crate) async fn rate_limit(
    State(limiter): State<Arc<Limiter>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(PeerIp(ip)) = request.extensions().get::<PeerIp>().copied() else {
        return next.run(request).await;
    };
    let tier = Tier::of(request.method(), request.uri().path());
    match limiter.take(ip, tier, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let per_minute = limiter.per_minute(tier);
            ApiError {
                retry_after_secs: Some(wait.as_secs().max(1).try_into().unwrap_or(u32::MAX)),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "rate limit exceeded: at most {per_minute} {} per minute from one client (--rate-limit)",
                        tier.name()
                    ),
                )
                .with_code("rate_limited")
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_three_tiers_and_says_what_is_wrong() {
        assert_eq!(
            "30,120,600".parse(),
            Ok(RateLimits {
                prompt: 30,
                mutation: 120,
                read: 600
            })
        );
        assert!("30,120"
            .parse::<RateLimits>()
            .unwrap_err()
            .contains("PROMPT,MUTATION,READ"));
        assert!("x,1,1"
            .parse::<RateLimits>()
            .unwrap_err()
            .contains("prompt"));
    }

    #[test]
    fn a_bucket_empties_refills_and_keeps_tiers_and_clients_apart() {
        let limiter = Limiter::new(RateLimits {
            prompt: 2,
            mutation: 0,
            read: 60,
        });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert!(limiter.take(a, Tier::Prompt, t0).is_ok());
        assert!(limiter.take(a, Tier::Prompt, t0).is_ok());
        let wait = limiter.take(a, Tier::Prompt, t0).unwrap_err();
        assert_eq!(wait.as_secs(), 30, "2 per minute: one every 30 s");
        // Another client, another tier, an unlimited tier: unaffected.
        assert!(limiter.take(b, Tier::Prompt, t0).is_ok());
        assert!(limiter.take(a, Tier::Read, t0).is_ok());
        for _ in 0..1000 {
            assert!(limiter.take(a, Tier::Mutation, t0).is_ok());
        }
        // 30 s later one token is back.
        let later = t0 + Duration::from_secs(30);
        assert!(limiter.take(a, Tier::Prompt, later).is_ok());
        assert!(limiter.take(a, Tier::Prompt, later).is_err());
    }

    #[test]
    fn prompts_mutations_and_reads_are_told_apart() {
        assert_eq!(Tier::of(&Method::POST, "/session/s1/prompt"), Tier::Prompt);
        assert_eq!(Tier::of(&Method::POST, "/session"), Tier::Mutation);
        assert_eq!(Tier::of(&Method::DELETE, "/session/s1"), Tier::Mutation);
        assert_eq!(Tier::of(&Method::GET, "/session/s1/events"), Tier::Read);
    }
}
