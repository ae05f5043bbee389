//! A provider built on its first use: building an SDK client costs cold start, and many
//! invocations of a function never send through some of its providers.

use std::sync::OnceLock;

use async_trait::async_trait;

use super::{Mailer, Notification, Notifier, OutgoingEmail, SendError};

pub struct OnFirstUse<T> {
    made: OnceLock<T>,
    make: Box<dyn Fn() -> T + Send + Sync>,
}

impl<T> OnFirstUse<T> {
    pub fn new(make: impl Fn() -> T + Send + Sync + 'static) -> Self {
        OnFirstUse {
            made: OnceLock::new(),
            make: Box::new(make),
        }
    }

    fn get(&self) -> &T {
        self.made.get_or_init(&self.make)
    }
}

#[async_trait]
impl<T: Mailer> Mailer for OnFirstUse<T> {
    async fn send_email(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        self.get().send_email(email).await
    }
}

#[async_trait]
impl<T: Notifier> Notifier for OnFirstUse<T> {
    async fn notify(&self, n: &Notification) -> Result<String, SendError> {
        self.get().notify(n).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Counted;

    #[async_trait]
    impl Notifier for Counted {
        async fn notify(&self, _: &Notification) -> Result<String, SendError> {
            Ok("id".into())
        }
    }

    #[test]
    fn builds_nothing_until_used_then_once() {
        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let lazy = OnFirstUse::new(move || {
            m.fetch_add(1, Ordering::SeqCst);
            Counted
        });
        assert_eq!(made.load(Ordering::SeqCst), 0);
        lazy.get();
        lazy.get();
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }
}
