//! Storage: small traits for what the use cases need, and the adapters behind them.
//!
//! | trait | holds |
//! |---|---|
//! | [`TenantStore`] | tenants, and the index from a secret key's hash to its tenant |
//! | [`CredentialStore`] | device credentials, by public key and by user; removal receipts |
//! | [`ChallengeStore`] | the single-use marks of challenges (challenges themselves are sealed ids, not stored) |
//! | [`ActionStore`] | tracked actions and their state; a user's credentials and actions in one read |
//! | [`ActionConfigStore`] | per-action rules configs and the tenant default (`*`) |
//! | [`UserStore`] | user attributes; deleting a user deletes what belongs to them |
//! | [`ApprovalStore`] | push and QR-code challenges, each a compare-and-swap on its version |
//! | [`VerificationStore`] | the one atomic step of a verify or an approval; the push-credential update |
//! | [`PasskeyStore`] | passkeys by credential id and by user; WebAuthn ceremonies in progress (issue #15) |
//! | [`RateLimitStore`] | fixed-window counters of the rate limits, shared by every instance (DESIGN 6) |
//! | [`SocketStore`] | open QR-code WebSockets behind API Gateway: the handshake's credential per connection (spec 3.8) |
//! | [`UserLookupStore`] | users by email, phone number or username: lookup entries written with the profile (query users, 2.6) |
//! | [`SessionStore`] | session configs and signing keys, sessions, hashed refresh tokens, used challenge tokens (spec 2.8) |
//!
//! Every single-use or state-changing step is one conditional write (or transaction) in the
//! adapter, and a failed condition comes back as the precise [`Error`](crate::Error)
//! (`ChallengeAlreadyUsed`, `ChallengeExpired`, ...), never as a generic failure. Expiry is
//! checked by the code that reads, not left to TTL deletion, which is late (DESIGN 4).
//!
//! Adapters: `embedded::EmbeddedStore` (SQLite on one machine, or in memory for tests; behind
//! the feature `embedded`, which the local server, the CLI and the tests enable and the Lambda
//! functions do not, so they never link SQLite) and [`dynamodb::DynamoStore`] (production).
//! Both run the same conformance suite (`testkit::conformance`, run by `testkit/tests/`), the
//! DynamoDB one against a real DynamoDB-compatible server.

pub mod dynamodb;
#[cfg(feature = "embedded")]
pub mod embedded;

mod action_configs;
mod actions;
mod approvals;
mod challenges;
mod credentials;
mod passkeys;
mod rate_limits;
mod sessions;
mod sockets;
mod tenants;
pub mod user_lookups;
mod users;
mod verification;

pub use action_configs::{ActionConfigStore, DecisionInputs};
pub use actions::ActionStore;
pub use approvals::ApprovalStore;
pub use challenges::ChallengeStore;
pub use credentials::{CredentialStore, EnrolmentGuard, InsertOutcome, RemovalReceipt};
pub use passkeys::{PasskeyEnrolment, PasskeySignIn, PasskeyStore};
pub use rate_limits::{RateBucket, RateLimitStore};
pub use sessions::SessionStore;
pub use sockets::{SocketSession, SocketStarter, SocketStore};
pub use tenants::TenantStore;
pub use user_lookups::{UserLookupStore, UserPage};
pub use users::UserStore;
pub use verification::{
    ActionWrite, CredentialUpdate, OneTimeMark, SingleUse, VerificationCommit, VerificationStore,
};

/// Everything the use cases need from storage.
pub trait Store:
    TenantStore
    + CredentialStore
    + ChallengeStore
    + ActionStore
    + ActionConfigStore
    + UserStore
    + ApprovalStore
    + VerificationStore
    + RateLimitStore
    + SocketStore
    + SessionStore
    + UserLookupStore
    + PasskeyStore
{
}

impl<T> Store for T where
    T: TenantStore
        + CredentialStore
        + ChallengeStore
        + ActionStore
        + ActionConfigStore
        + UserStore
        + ApprovalStore
        + VerificationStore
        + RateLimitStore
        + SocketStore
        + SessionStore
        + UserLookupStore
        + PasskeyStore
{
}

#[cfg(test)]
pub(crate) mod samples;
