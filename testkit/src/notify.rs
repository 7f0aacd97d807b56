//! A [`Notifier`] double: it records every notification and accepts it, or refuses it once
//! told to fail (the failure paths of spec 2.11: "non-2xx fails the challenge").

use async_trait::async_trait;
use shared::domain::{ApprovalId, CredentialId, WebhookEndpoint};
use shared::notify::{Notifier, PushCreated};
use std::sync::Mutex;

/// One `push.created` the app asked to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPush {
    pub url: String,
    pub challenge_id: ApprovalId,
    pub targets: Vec<CredentialId>,
}

#[derive(Default)]
pub struct RecordingNotifier {
    sent: Mutex<Vec<SentPush>>,
    failure: Mutex<Option<String>>,
}

impl RecordingNotifier {
    /// Every notification from now on fails with `problem` (still recorded).
    pub fn fail_with(&self, problem: &str) {
        *self.failure.lock().unwrap() = Some(problem.to_owned());
    }

    /// The notifications asked for so far, oldest first.
    pub fn sent(&self) -> Vec<SentPush> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    /// The real adapter's policy: a test of `configure_tenant` sees the same refusals.
    fn check_destination(&self, endpoint: &WebhookEndpoint) -> Result<(), String> {
        shared::webhook::check_url(&endpoint.url).map_err(str::to_owned)
    }

    async fn push_created(
        &self,
        endpoint: &WebhookEndpoint,
        event: PushCreated<'_>,
    ) -> Result<(), String> {
        self.sent.lock().unwrap().push(SentPush {
            url: endpoint.url.clone(),
            challenge_id: event.challenge.id.clone(),
            targets: event.targets.iter().map(|c| c.id.clone()).collect(),
        });
        match self.failure.lock().unwrap().clone() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }
}
