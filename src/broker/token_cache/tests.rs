//! `TokenCache` on tokio's paused clock: refresh ahead, minimum life, single flight, back-off,
//! eviction.

use std::sync::atomic::AtomicUsize;

use super::*;
use crate::google::Credential;

fn token(life: Duration) -> Token {
    Token { bearer: Credential::new("t".into()), expires_at: Utc::now() + chrono::Duration::from_std(life).unwrap() }
}

fn cache(capacity: usize) -> TokenCache<String> {
    TokenCache::new(CachePolicy::default(), capacity, Some("pinned".to_string()))
}

async fn mint(cache: &TokenCache<String>, limiter: &MintLimiter, key: &str) -> Result<Token, NoToken> {
    let (slot, admission) = cache.insert(key, limiter)?;
    cache.fill(&slot, false, admission, limiter, || async { Ok::<_, String>(token(Duration::from_secs(3600))) }).await
}

#[tokio::test(start_paused = true)]
async fn short_lifetimes_scale_refresh_ahead_and_min_life_long_ones_keep_the_defaults() {
    let short = CachePolicy::default().for_lifetime(Duration::from_secs(600));
    assert_eq!((short.refresh_ahead, short.min_life), (Duration::from_secs(100), Duration::from_secs(50)));
    assert_eq!(short.backoff_max, CachePolicy::default().backoff_max, "backoff is not about lifetime");
    for long in [3600, 43200] {
        let p = CachePolicy::default().for_lifetime(Duration::from_secs(long));
        assert_eq!((p.refresh_ahead, p.min_life), (Duration::from_secs(600), Duration::from_secs(300)));
    }
    // Under the short policy a token with 99 s left is served and due for renewal; one with
    // 200 s left is served as is.
    let limiter = MintLimiter::new(4, 100);
    for (left, due) in [(99, true), (200, false)] {
        let c = TokenCache::new(short, 4, None::<String>);
        let (slot, admission) = c.insert("k", &limiter).unwrap();
        c.fill(&slot, false, admission, &limiter, || async { Ok::<_, String>(token(Duration::from_secs(left))) })
            .await
            .unwrap();
        match c.lookup("k") {
            Some((_, Lookup::Hit { refresh, .. })) => assert_eq!(refresh, due, "{left} s left"),
            _ => panic!("a token with {left} s left is servable under a 50 s minimum life"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_cache_holds_at_most_its_capacity_evicting_the_least_recently_used() {
    let (c, limiter) = (cache(3), MintLimiter::new(4, 1000));
    for key in ["pinned", "a", "b"] {
        mint(&c, &limiter, key).await.unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    c.lookup("a"); // b is now the least recently used unpinned slot
    tokio::time::advance(Duration::from_millis(10)).await;
    mint(&c, &limiter, "c").await.unwrap();
    assert_eq!(c.counts().slots, 3);
    assert!(c.lookup("b").is_none(), "b was evicted");
    assert!(c.lookup("a").is_some() && c.lookup("pinned").is_some());
    assert_eq!(c.evictions(), 1);
    for i in 0..100 {
        mint(&c, &limiter, &format!("k{i}")).await.unwrap();
    }
    assert_eq!(c.counts().slots, 3);
    assert!(c.lookup("pinned").is_some(), "the pinned slot is never evicted");
}

#[tokio::test(start_paused = true)]
async fn a_refused_first_mint_leaves_no_slot_and_no_backoff() {
    let (c, limiter) = (cache(10), MintLimiter::new(4, 2));
    mint(&c, &limiter, "a").await.unwrap();
    mint(&c, &limiter, "b").await.unwrap();
    match mint(&c, &limiter, "c").await {
        Err(NoToken::Limited(Limited::Rate { .. })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(c.counts().slots, 2, "the refused name left no slot");
    tokio::time::advance(Duration::from_secs(1)).await;
    mint(&c, &limiter, "c").await.expect("admitted once the bucket refills");
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_share_one_mint() {
    let (c, limiter) = (Arc::new(cache(10)), Arc::new(MintLimiter::new(1, 1)));
    let mints = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, limiter, mints) = (c.clone(), limiter.clone(), mints.clone());
        tasks.push(tokio::spawn(async move {
            let (slot, admission) = c.insert("k", &limiter).unwrap();
            c.fill(&slot, false, admission, &limiter, || async {
                mints.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, String>(token(Duration::from_secs(3600)))
            })
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(mints.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_and_the_valid_token_stands_in() {
    let (c, limiter) = (cache(10), MintLimiter::new(4, 1000));
    let (slot, admission) = c.insert("k", &limiter).unwrap();
    let failing = || async { Err::<Token, _>("Google said no") };
    match c.fill(&slot, false, admission, &limiter, failing).await {
        Err(NoToken::Unavailable(u)) => assert_eq!((u.message.as_str(), u.retry_after), ("Google said no", 1)),
        other => panic!("{other:?}"),
    }
    let calls = AtomicUsize::new(0);
    let counted = || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(token(Duration::from_secs(3600)))
    };
    assert!(c.fill(&slot, false, Admission::Refuse, &limiter, counted).await.is_err(), "still backing off");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    tokio::time::advance(Duration::from_secs(1)).await;
    c.fill(&slot, false, Admission::Refuse, &limiter, counted).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A later failure serves the token still held.
    c.mark_stale();
    let t = c.fill(&slot, true, Admission::Refuse, &limiter, failing).await.unwrap();
    assert!(life_left(&held(t)) > Duration::from_secs(3000));
}

#[tokio::test(start_paused = true)]
async fn only_tokens_in_use_are_due_and_never_while_backing_off() {
    let (c, limiter) = (cache(10), MintLimiter::new(4, 1000));
    mint(&c, &limiter, "used").await.unwrap();
    mint(&c, &limiter, "once").await.unwrap();
    c.lookup("used");
    assert!(c.due().is_empty(), "fresh tokens are not due");
    c.mark_stale();
    let due: Vec<String> = c.due().into_iter().map(|(k, _)| k).collect();
    assert_eq!(due, ["used"], "a token nobody came back for is not renewed ahead of time");
    let (_, slot) = c.due().pop().unwrap();
    let _ = c.fill(&slot, true, Admission::Wait, &limiter, || async { Err::<Token, _>("down") }).await;
    assert!(c.due().is_empty(), "backing off after the failure");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(c.due().len(), 1, "due again once the back-off has passed");
}

#[tokio::test(start_paused = true)]
async fn tokens_refresh_ahead_then_stop_being_served_at_min_life_on_the_paused_clock() {
    let (c, limiter) = (cache(10), MintLimiter::new(4, 1000));
    mint(&c, &limiter, "k").await.unwrap();
    c.lookup("k");
    let refresh = |c: &TokenCache<String>| match c.lookup("k") {
        Some((_, Lookup::Hit { refresh, .. })) => Some(refresh),
        _ => None,
    };
    assert_eq!(refresh(&c), Some(false), "an hour left: served, nothing due");
    assert!(c.due().is_empty());
    tokio::time::advance(Duration::from_secs(3600 - 600 + 1)).await;
    assert_eq!(refresh(&c), Some(true), "inside the 600 s refresh window: served and due");
    assert_eq!(c.due().len(), 1, "renewed ahead of time, since it is in use");
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(refresh(&c), None, "under the 300 s minimum life: never served");
    assert_eq!(c.counts().servable, 0);
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_per_failure_up_to_its_cap() {
    let policy = CachePolicy {
        backoff_first: Duration::from_secs(1),
        backoff_max: Duration::from_secs(4),
        ..CachePolicy::default()
    };
    let (c, limiter) = (TokenCache::new(policy, 4, None::<String>), MintLimiter::new(4, 1000));
    let (slot, mut admission) = c.insert("k", &limiter).unwrap();
    for expected in [1, 2, 4, 4] {
        match c.fill(&slot, false, admission, &limiter, || async { Err::<Token, _>("down") }).await {
            Err(NoToken::Unavailable(u)) => assert_eq!(u.retry_after, expected),
            other => panic!("{other:?}"),
        }
        admission = Admission::Refuse;
        tokio::time::advance(Duration::from_secs(expected)).await;
    }
}
