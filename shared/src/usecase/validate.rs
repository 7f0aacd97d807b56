//! `POST /v1/validate`: the backend asks whether a token stands for a completed challenge
//! (spec 2.4).
//!
//! A token that cannot be used is not an HTTP error here: the answer is `isValid: false` with
//! an `error` code (the Node SDK types an optional `error` in the 200 body), so a backend that
//! checks `isValid` always gets a definite no. Validation does not consume the token: it
//! reports the action's state, which SDK retries may read more than once (spec 9 leaves
//! single use open); the token's 10-minute life bounds it.

use super::tenants::Tenant;
use crate::App;
use crate::domain::{Action, ActionCode, ActionState, UserId};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct ValidateCommand {
    pub token: String,
    /// When given, the token must belong to this user (spec 2.4).
    pub user_id: Option<UserId>,
    /// When given, the token's action must have this code (spec 2.4).
    pub action: Option<ActionCode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per request, never stored in bulk"
)]
pub enum Validation {
    /// The token resolved to an action; `error` says why it is not valid, when it is not.
    Resolved {
        action: Action,
        is_valid: bool,
        error: Option<&'static str>,
    },
    /// The token is forged, expired, of another tenant, or its action is gone.
    Unusable { error: &'static str },
}

/// Why a token cannot be used (spec 2.4); each is also an [`Error`] ([`UnusableToken::error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnusableToken {
    InvalidToken,
    ExpiredToken,
    ActionNotFound,
}

impl UnusableToken {
    pub const ALL: [UnusableToken; 3] = [
        UnusableToken::InvalidToken,
        UnusableToken::ExpiredToken,
        UnusableToken::ActionNotFound,
    ];

    /// The error of the same name.
    pub fn error(self) -> Error {
        match self {
            UnusableToken::InvalidToken => Error::InvalidToken,
            UnusableToken::ExpiredToken => Error::ExpiredToken,
            UnusableToken::ActionNotFound => Error::ActionNotFound,
        }
    }
}

/// The `error` of an unusable token (spec 2.4): the same snake_case codes these errors have
/// on the wire (spec 1.3; `http::error` checks that they agree).
pub fn unusable_code(reason: UnusableToken) -> &'static str {
    match reason {
        UnusableToken::InvalidToken => "invalid_token",
        UnusableToken::ExpiredToken => "expired_token",
        UnusableToken::ActionNotFound => "action_not_found",
    }
}

fn unusable(reason: UnusableToken) -> Validation {
    Validation::Unusable {
        error: unusable_code(reason),
    }
}

impl App {
    pub async fn validate(&self, tenant: &Tenant, command: ValidateCommand) -> Result<Validation> {
        let token = match tenant.keys.verify(&command.token, self.now()) {
            Ok(token) => token,
            Err(Error::InvalidToken) => return Ok(unusable(UnusableToken::InvalidToken)),
            Err(Error::ExpiredToken) => return Ok(unusable(UnusableToken::ExpiredToken)),
            Err(other) => return Err(other),
        };
        let action = match self.get_action(tenant, &token.action).await {
            Ok(action) => action,
            Err(Error::ActionNotFound) => return Ok(unusable(UnusableToken::ActionNotFound)),
            Err(other) => return Err(other),
        };
        let error = if command
            .user_id
            .is_some_and(|user| user != action.key.user_id)
        {
            Some("user_mismatch")
        } else if command
            .action
            .is_some_and(|code| code != action.key.action_code)
        {
            Some("action_mismatch")
        } else {
            None
        };
        // spec 2.4: valid when the challenge was completed successfully.
        let is_valid = error.is_none() && action.state == ActionState::ChallengeSucceeded;
        Ok(Validation::Resolved {
            action,
            is_valid,
            error,
        })
    }
}
