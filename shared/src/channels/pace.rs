//! Sends spaced to the SES account's maximum send rate: a run with hundreds of due nudges would
//! otherwise send them as fast as the sweep's concurrency allows and be throttled part-way.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Mailer, OutgoingEmail, SendError};

/// A mailer that starts at most `per_second` sends per second, shared by every task of the
/// process (one function instance; instances running side by side each keep to it, and SES
/// throttling, which stops a run, covers the rest).
pub struct Paced<M> {
    inner: M,
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl<M> Paced<M> {
    pub fn new(inner: M, per_second: u32) -> Self {
        Paced {
            inner,
            interval: Duration::from_secs(1) / per_second.max(1),
            next: Mutex::new(None),
        }
    }

    /// Waits for this send's slot: the later of now and one interval after the last slot.
    async fn slot(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[async_trait]
impl<M: Mailer> Mailer for Paced<M> {
    async fn send_email(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        self.slot().await;
        self.inner.send_email(email).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::{TimeZone, Utc};

    use super::*;

    #[derive(Default)]
    struct Counting(AtomicUsize);

    #[async_trait]
    impl Mailer for Counting {
        async fn send_email(&self, _: &OutgoingEmail) -> Result<String, SendError> {
            Ok(format!("m-{}", self.0.fetch_add(1, Ordering::SeqCst)))
        }
    }

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            from: "nudge@example.com".into(),
            to: "a@example.jp".into(),
            reply_to: None,
            subject: "s".into(),
            text: "t".into(),
            html: "<p>t</p>".into(),
            headers: vec![],
            tags: vec![],
            date: Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap(),
            message_id: "1@example.com".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn thirty_concurrent_sends_at_ten_per_second_take_three_seconds_not_less() {
        let paced = Arc::new(Paced::new(Counting::default(), 10));
        let started = Instant::now();
        let sends = (0..30).map(|_| {
            let paced = paced.clone();
            tokio::spawn(async move { paced.send_email(&email()).await })
        });
        for s in sends {
            assert!(s.await.unwrap().is_ok());
        }
        let took = started.elapsed();
        // The 30th send starts 29 intervals of 100 ms after the first.
        assert!(took >= Duration::from_millis(2900), "{took:?}");
        assert!(took < Duration::from_millis(3100), "{took:?}");
        assert_eq!(paced.inner.0.load(Ordering::SeqCst), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_mailer_sends_at_once() {
        let paced = Paced::new(Counting::default(), 1);
        paced.send_email(&email()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let started = Instant::now();
        paced.send_email(&email()).await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
