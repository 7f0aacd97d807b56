//! Track, get, update and query actions (spec 2.3, 2.5).

use super::tenants::Tenant;
use crate::App;
use crate::clock::Timestamp;
use crate::domain::RedirectUrl;
use crate::domain::policy::{self, EffectiveConfig};
use crate::domain::signals::{self, History, SignalInputs};
use crate::domain::{
    Action, ActionCode, ActionKey, ActionOrigin, ActionState, Enrolment, IdempotencyKey,
    TrackContext, UserId, VerificationMethod,
};
use crate::error::{Error, Result};
use crate::token::TokenRequest;

/// A track request, parsed.
#[derive(Debug, Clone)]
pub struct TrackCommand {
    pub user_id: UserId,
    pub action_code: ActionCode,
    /// Generated when absent (spec 2.3).
    pub idempotency_key: Option<IdempotencyKey>,
    pub context: TrackContext,
    pub username: Option<String>,
    /// The track attributes `email` and `phoneNumber`: data points for rules, not stored.
    pub email: Option<String>,
    pub phone_number: Option<String>,
    /// Where the pre-built UI returns to with the token (issue #16): carried in the token.
    pub redirect_url: Option<RedirectUrl>,
    /// Track's `redirectToSettings` (spec 2.3, issue #16): carried in the token.
    pub redirect_to_settings: bool,
}

/// What a track decided.
#[derive(Debug, Clone)]
pub struct TrackResult {
    pub action: Action,
    pub token: String,
    pub is_enrolled: bool,
    pub enrolled_methods: Vec<VerificationMethod>,
}

/// What the rules decide about: a user doing an action, with the data points of its request
/// and who vouched for them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecisionSubject<'a> {
    pub user: &'a UserId,
    pub action_code: &'a ActionCode,
    pub context: &'a TrackContext,
    pub email: Option<&'a str>,
    pub phone_number: Option<&'a str>,
    pub provenance: policy::Provenance,
}

/// Filters of the action query (spec 2.5).
#[derive(Debug, Clone, Default)]
pub struct ActionQuery {
    pub from: Option<Timestamp>,
    pub codes: Option<Vec<ActionCode>>,
    pub state: Option<ActionState>,
}

impl App {
    /// Records an action and decides its state. The same idempotency key again returns the
    /// action first recorded, with a fresh token, and never a duplicate.
    pub async fn track(&self, tenant: &Tenant, command: TrackCommand) -> Result<TrackResult> {
        let now = self.now();
        let idempotency_key = match command.idempotency_key {
            Some(key) => key,
            None => IdempotencyKey::parse(self.random_uuid()?)?,
        };
        let (decision, enrolment) = self
            .decide(
                tenant,
                DecisionSubject {
                    user: &command.user_id,
                    action_code: &command.action_code,
                    context: &command.context,
                    email: command.email.as_deref(),
                    phone_number: command.phone_number.as_deref(),
                    provenance: policy::Provenance::Track {
                        ip_unreadable: signals::is_unreadable_ip(
                            command.context.ip_address.as_deref(),
                        ),
                    },
                },
            )
            .await?;
        let enrolled_methods = enrolment.methods();
        let is_enrolled = enrolment.is_enrolled();

        let candidate = Action {
            tenant_id: tenant.id.clone(),
            key: ActionKey {
                user_id: command.user_id,
                action_code: command.action_code,
                idempotency_key,
            },
            state: decision.outcome.state(),
            created_at: now,
            state_updated_at: now,
            verification_method: None,
            verified_by_authenticator_id: None,
            context: command.context,
            rule_ids: decision.rule_ids(),
            rules: decision.rules(),
            origin: ActionOrigin::Track,
            enrolled_passkey_id: None,
            expires_at: now.plus_seconds(self.settings.action_retention_days * 24 * 3600),
        };
        let action = self.store.create_action(&candidate).await?;
        let token = tenant.keys.issue(
            TokenRequest {
                redirect_url: command.redirect_url.as_ref().map(RedirectUrl::as_str),
                redirect_to_settings: command.redirect_to_settings,
                action: &action.key,
                scope: action.context.scope.as_deref(),
                username: command.username.as_deref(),
                jti: &hex::encode(self.random_bytes::<16>()?),
            },
            now,
            self.settings.token_lifetime_seconds,
        );
        Ok(TrackResult {
            action,
            token,
            is_enrolled,
            enrolled_methods,
        })
    }

    /// The rules' decision for `user` doing `action_code` in `context` (spec 2.3, 7), and the
    /// user's enrolment it read on the way.
    pub(crate) async fn decide(
        &self,
        tenant: &Tenant,
        subject: DecisionSubject<'_>,
    ) -> Result<(policy::Decision, Enrolment)> {
        let DecisionSubject {
            user,
            action_code,
            context,
            email,
            phone_number,
            provenance,
        } = subject;
        let now = self.now();
        // The rules config first, with the user's enrolment in the same read (DESIGN 4: one
        // request), because the config decides what else must be read. Not cached: a config
        // change applies to the next track (docs/api.md).
        let inputs = self
            .store
            .get_decision_inputs(&tenant.id, action_code, user)
            .await?;
        let config = EffectiveConfig::new(inputs.own, inputs.tenant_default);
        let retention = self.settings.action_retention_days * 24 * 3600;
        // The user's earlier actions cost more to read, so only when an active rule reads a
        // data point computed from them (device.isNew, action.countLastHour, ...).
        let (enrolment, history) = if config.needs_history() {
            let (credentials, actions, passkeys) = self
                .store
                .list_user_activity(&tenant.id, user, now.plus_seconds(-retention))
                .await?;
            (Enrolment::of(&credentials, passkeys.len()), Some(actions))
        } else {
            (inputs.enrolment, None)
        };
        let data = signals::data(&SignalInputs {
            action_code,
            context,
            email,
            phone_number,
            enrolment,
            history: history.as_deref().map(|actions| History { actions }),
            now,
        });
        let decision =
            policy::decide_with(&config, &data, enrolment.is_enrolled(), false, provenance);
        Ok((decision, enrolment))
    }

    /// An action that exists and has not passed its retention time.
    pub async fn get_action(&self, tenant: &Tenant, key: &ActionKey) -> Result<Action> {
        let now = self.now();
        self.store
            .get_action(&tenant.id, key)
            .await?
            .filter(|action| action.expires_at > now)
            .ok_or(Error::ActionNotFound)
    }

    /// Sets an action's state from the backend (spec 2.5), e.g. resolving a review.
    pub async fn update_action_state(
        &self,
        tenant: &Tenant,
        key: &ActionKey,
        state: ActionState,
    ) -> Result<Action> {
        self.get_action(tenant, key).await?;
        self.store
            .set_action_state(&tenant.id, key, state, self.now())
            .await?
            .ok_or(Error::ActionNotFound)
    }

    /// A user's actions, newest first. `from` defaults to, and cannot reach further back
    /// than, the retention period (spec 2.5: 30 days).
    pub async fn query_actions(
        &self,
        tenant: &Tenant,
        user: &UserId,
        query: ActionQuery,
    ) -> Result<Vec<Action>> {
        let now = self.now();
        let earliest = now.plus_seconds(-self.settings.action_retention_days * 24 * 3600);
        let from = query.from.map_or(earliest, |from| from.max(earliest));
        let actions = self.store.list_actions(&tenant.id, user, from).await?;
        Ok(actions
            .into_iter()
            .filter(|a| a.expires_at > now)
            .filter(|a| {
                query
                    .codes
                    .as_ref()
                    .is_none_or(|codes| codes.contains(&a.key.action_code))
            })
            .filter(|a| query.state.is_none_or(|state| a.state == state))
            .collect())
    }
}
