//! The events worker of the local server (issue #19, DESIGN 10): delivers what the embedded
//! store's outbox holds, at least once, retrying with exponential backoff, and survives a
//! restart because the outbox is in the database: a row goes only once its events were
//! accepted (or when it makes none, or its tenant has no events webhook).
//!
//! Rows are independent: one failing does not hold the others back, so events may arrive out of
//! order (each carries its `time` and a stable `id`). A receiver that stays down is retried every
//! `retry_max` for as long as it is down; nothing is dropped.

use super::{backoff, deliver, events_of};
use crate::clock::Timestamp;
use crate::domain::{TenantId, WebhookEndpoint};
use crate::store::TenantStore;
use crate::store::embedded::EmbeddedStore;
use crate::store::embedded::outbox::{PendingChange, Postponement};
use crate::webhook::WebhookSender;
use futures_util::StreamExt as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How rows are retried, and how often the outbox is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait before the first retry; it doubles with each failure.
    pub base: Duration,
    /// The longest wait between two tries.
    pub max: Duration,
    /// How long one delivery may take (`Settings::webhook_timeout_ms`).
    pub timeout: Duration,
    /// How long the worker sleeps when nothing is due.
    pub poll: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            timeout: Duration::from_secs(5),
            poll: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// The defaults, with `TRUSTED_DEVICE_EVENTS_RETRY_BASE_MS` and
    /// `TRUSTED_DEVICE_EVENTS_RETRY_MAX_MS` when set (positive integers), and `timeout`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut policy = RetryPolicy {
            timeout,
            ..RetryPolicy::default()
        };
        let read = |name: &str| -> Result<Option<Duration>, String> {
            match lookup(name) {
                None => Ok(None),
                Some(text) => match text.trim().parse::<u64>() {
                    Ok(ms) if ms > 0 => Ok(Some(Duration::from_millis(ms))),
                    _ => Err(format!("{name} must be a positive integer, not {text:?}")),
                },
            }
        };
        if let Some(base) = read("TRUSTED_DEVICE_EVENTS_RETRY_BASE_MS")? {
            policy.base = base;
        }
        if let Some(max) = read("TRUSTED_DEVICE_EVENTS_RETRY_MAX_MS")? {
            policy.max = max;
        }
        policy.max = policy.max.max(policy.base);
        policy.poll = policy.poll.min(policy.base);
        Ok(policy)
    }
}

/// Delivers the outbox's events; [`OutboxWorker::run`] until shut down.
pub struct OutboxWorker {
    store: EmbeddedStore,
    sender: Arc<dyn WebhookSender>,
    policy: RetryPolicy,
    max_failed_attempts: u32,
}

/// How many rows one pass reads.
const BATCH: u32 = 100;

/// How many rows of a pass are delivered at once. One at a time, a receiver that takes 50 ms to
/// answer (another region, a slow backend) would bound the server to 20 events a second, fewer
/// than one busy tenant makes; rows are independent (order is not guaranteed, DESIGN 10).
const CONCURRENT_DELIVERIES: usize = 16;

fn wall_clock() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp(ms)
}

impl OutboxWorker {
    pub fn new(
        store: EmbeddedStore,
        sender: Arc<dyn WebhookSender>,
        policy: RetryPolicy,
        max_failed_attempts: u32,
    ) -> Self {
        OutboxWorker {
            store,
            sender,
            policy,
            max_failed_attempts,
        }
    }

    /// One pass over the rows due now; returns how many it handled (delivered, dropped or
    /// postponed).
    ///
    /// What became of the rows is written in one transaction at the end of the pass (the rows
    /// that are done removed, the others postponed), not one each: a commit per row could not
    /// keep up with a busy server (docs/performance.md, "The events outbox under load"). A
    /// crash before that transaction sends the pass's events again, with the same ids:
    /// delivery is at least once (DESIGN 10).
    ///
    /// Up to [`CONCURRENT_DELIVERIES`] rows are delivered at once, after each tenant of the
    /// pass was read once. A store failure ends the pass before any delivery (or, writing its
    /// outcome, after them: they are sent again).
    pub async fn run_once(&self) -> crate::error::Result<usize> {
        let due = self.store.due_changes(wall_clock(), BATCH)?;
        let handled = due.len();
        // Each tenant of the pass read once, not once per row.
        let mut endpoints: HashMap<TenantId, Option<WebhookEndpoint>> = HashMap::new();
        for pending in &due {
            if let Ok(Some(change)) = &pending.change
                && !endpoints.contains_key(&change.tenant_id)
            {
                let tenant = self.store.get_tenant(&change.tenant_id).await?;
                let endpoint = tenant.and_then(|tenant| tenant.events_webhook);
                endpoints.insert(change.tenant_id.clone(), endpoint);
            }
        }
        let endpoints = &endpoints;
        let outcomes: Vec<(i64, Handled)> = futures_util::stream::iter(due)
            .map(|pending| async move { (pending.seq, self.handle(pending, endpoints).await) })
            .buffer_unordered(CONCURRENT_DELIVERIES)
            .collect()
            .await;
        let mut done = Vec::with_capacity(handled);
        let mut postponed = Vec::new();
        for (seq, outcome) in outcomes {
            match outcome {
                Handled::Done => done.push(seq),
                Handled::Postponed(postponement) => postponed.push(postponement),
            }
        }
        if !done.is_empty() || !postponed.is_empty() {
            self.store.settle_changes(&done, &postponed).await?;
        }
        Ok(handled)
    }

    /// Passes until `shutdown` resolves; a store failure is logged and tried again later.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let pause = match self.run_once().await {
                Ok(n) if n as u32 == BATCH => Duration::ZERO,
                Ok(_) => self.policy.poll,
                Err(error) => {
                    tracing::error!(error = %error, "the events outbox could not be read");
                    self.policy.max.min(Duration::from_secs(5))
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// The row `seq`, after its attempt number `attempts` failed: due again after the backoff,
    /// returned with it.
    fn postpone(&self, seq: i64, attempts: u32) -> (Handled, Duration) {
        let wait = backoff(attempts, self.policy.base, self.policy.max);
        let next_attempt_at = Timestamp(wall_clock().0.saturating_add(wait.as_millis() as i64));
        let postponed = Handled::Postponed(Postponement {
            seq,
            attempts,
            next_attempt_at,
        });
        (postponed, wait)
    }

    /// Delivers one row's events to its tenant's endpoint (read for the pass); whether the row
    /// can go or is due again.
    async fn handle(
        &self,
        pending: PendingChange,
        endpoints: &HashMap<TenantId, Option<WebhookEndpoint>>,
    ) -> Handled {
        let PendingChange {
            seq,
            attempts,
            change,
        } = pending;
        let attempts = attempts.saturating_add(1);
        let change = match change {
            Ok(Some(change)) => change,
            Ok(None) => return Handled::Done,
            // A damaged row: reported and tried again later, alone (the others go on).
            Err(error) => {
                tracing::error!(seq, attempts, error = %error, "an outbox row does not decode");
                return self.postpone(seq, attempts).0;
            }
        };
        let events = events_of(&change, self.max_failed_attempts);
        if events.is_empty() {
            return Handled::Done;
        }
        let Some(Some(endpoint)) = endpoints.get(&change.tenant_id) else {
            // No events webhook (DESIGN 10): nobody to tell; the change is not kept for later.
            return Handled::Done;
        };
        for event in &events {
            let sent = deliver(
                self.sender.as_ref(),
                endpoint,
                event,
                wall_clock(),
                self.policy.timeout,
            )
            .await;
            if let Err(problem) = sent {
                let (postponed, wait) = self.postpone(seq, attempts);
                // The URL and the secret are never logged: the tenant, the type, the reason.
                tracing::warn!(
                    tenant = %change.tenant_id,
                    event = event.kind,
                    id = %event.id,
                    attempts,
                    retry_in_ms = wait.as_millis() as u64,
                    problem = %problem,
                    "event delivery failed; will retry"
                );
                return postponed;
            }
            tracing::info!(tenant = %change.tenant_id, event = event.kind, id = %event.id, "event delivered");
        }
        Handled::Done
    }
}

/// What became of one outbox row in a pass.
enum Handled {
    /// Its events were delivered, or it makes none: the row goes.
    Done,
    /// A delivery failed, or the row does not decode: it is due again later.
    Postponed(Postponement),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Action, ActionKey, ActionState, IdempotencyKey};
    use crate::events::tests::action;
    use crate::store::samples::tenant_with_events_webhook;
    use crate::store::{ActionStore, TenantStore};
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// A receiver that holds each delivery until `wanted` are in flight at once (if they never
    /// are, for half a second), and counts the most it saw at once.
    struct Gate {
        wanted: usize,
        in_flight: AtomicUsize,
        most: AtomicUsize,
        delivered: AtomicUsize,
        all_in: tokio::sync::Notify,
    }

    impl Gate {
        fn new(wanted: usize) -> Arc<Gate> {
            Arc::new(Gate {
                wanted,
                in_flight: AtomicUsize::new(0),
                most: AtomicUsize::new(0),
                delivered: AtomicUsize::new(0),
                all_in: tokio::sync::Notify::new(),
            })
        }
    }

    #[async_trait::async_trait]
    impl WebhookSender for Gate {
        async fn send(&self, _: &str, _: &str, _: Vec<u8>, _: Duration) -> Result<(), String> {
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            if now >= self.wanted {
                self.all_in.notify_waiters();
            } else {
                let wait = self.all_in.notified();
                let _ = tokio::time::timeout(Duration::from_millis(500), wait).await;
            }
            self.in_flight.fetch_sub(1, SeqCst);
            self.delivered.fetch_add(1, SeqCst);
            Ok(())
        }
    }

    /// A receiver that refuses every delivery.
    struct Refusing;

    #[async_trait::async_trait]
    impl WebhookSender for Refusing {
        async fn send(&self, _: &str, _: &str, _: Vec<u8>, _: Duration) -> Result<(), String> {
            Err("503".into())
        }
    }

    /// A store whose tenant `acme` has an events webhook, and `n` actions of it in the outbox.
    async fn store_with_actions(n: usize) -> EmbeddedStore {
        let store = EmbeddedStore::in_memory().unwrap();
        store
            .put_tenant(&tenant_with_events_webhook("acme"))
            .await
            .unwrap();
        let created = action(ActionState::Allow, 1_790_000_000);
        for i in 0..n {
            let key = ActionKey {
                idempotency_key: IdempotencyKey::parse(format!("k{i}")).unwrap(),
                ..created.key.clone()
            };
            let action = Action {
                key,
                ..created.clone()
            };
            store.create_action(&action).await.unwrap();
        }
        assert_eq!(store.outbox_len().unwrap(), n as u64);
        store
    }

    /// A refused delivery keeps its row, counted and due again after the backoff, not before.
    #[tokio::test]
    async fn a_pass_whose_deliveries_are_refused_postpones_every_row() {
        let store = store_with_actions(3).await;
        let policy = RetryPolicy {
            base: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        let worker = OutboxWorker::new(store.clone(), Arc::new(Refusing), policy, 5);
        assert_eq!(worker.run_once().await.unwrap(), 3);
        assert_eq!(
            worker.run_once().await.unwrap(),
            0,
            "none due before a minute"
        );
        let later = store.due_changes(Timestamp(i64::MAX), 10).unwrap();
        assert_eq!(later.len(), 3);
        assert!(later.iter().all(|row| row.attempts == 1), "{later:?}");
    }

    /// A store failure while the pass reads its tenants ends the pass before any delivery:
    /// the error goes to `run` (logged, tried again later) and every row stays as it was,
    /// its attempts not counted.
    #[tokio::test]
    async fn a_tenant_that_cannot_be_read_ends_the_pass_before_any_delivery() {
        let store = store_with_actions(2).await;
        store
            .damage_tenant_record(&TenantId::parse("acme").unwrap())
            .await
            .unwrap();
        let gate = Gate::new(1);
        let worker = OutboxWorker::new(store.clone(), gate.clone(), RetryPolicy::default(), 5);
        assert!(worker.run_once().await.is_err());
        assert_eq!(gate.delivered.load(SeqCst), 0, "nothing delivered");
        let rows = store.due_changes(Timestamp(i64::MAX), 10).unwrap();
        assert_eq!(rows.len(), 2, "every row kept");
        assert!(rows.iter().all(|row| row.attempts == 0), "{rows:?}");
    }

    /// One pass delivers its rows at once (a far receiver would otherwise bound the events to
    /// one per round trip), and removes every row it delivered.
    #[tokio::test]
    async fn a_pass_delivers_its_rows_at_once_and_removes_them() {
        let store = store_with_actions(8).await;
        let gate = Gate::new(8);
        let worker = OutboxWorker::new(store.clone(), gate.clone(), RetryPolicy::default(), 5);
        assert_eq!(worker.run_once().await.unwrap(), 8);
        assert_eq!(gate.delivered.load(SeqCst), 8);
        assert_eq!(gate.most.load(SeqCst), 8, "all eight in flight at once");
        assert_eq!(
            store.outbox_len().unwrap(),
            0,
            "every delivered row removed"
        );
    }
}
