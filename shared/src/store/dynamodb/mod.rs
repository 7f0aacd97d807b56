//! The DynamoDB store: the production adapter, one table, no secondary index.
//!
//! ## Keys and items
//!
//! Generic `pk` / `sk` strings, a numeric `ttl` (epoch seconds) with TTL enabled on it. Tenant
//! ids contain no `#`, action codes none either, so every key below reads back unambiguously.
//! `{t}` is the tenant id, `{u}` the user id, `{ns}` the credential namespace (`in-app`, ...),
//! `{fp}` the hex SHA-256 of a public key's SPKI, `{ch}` the hex SHA-256 of a challenge id.
//!
//! | item | pk | sk | attributes | ttl |
//! |---|---|---|---|---|
//! | tenant | `TENANT#{t}` | `TENANT` | `data` (tenant JSON: secret hashes, token keys) | |
//! | secret index | `SECRET#{hash}` | `SECRET` | `tenantId`, `data` and `revision` (a copy of the tenant item's, written in the same transaction: a cold process resolves a secret key with one read) | |
//! | user profile | `T#{t}#U#{u}` | `PROFILE` | `data` (profile JSON) | |
//! | enrolment | `T#{t}#U#{u}` | `ENROLMENT` | `credentials` (N: moved by every add and removal; what makes a scopeless token's first credential the only one), `deviceIds`, `pushIds`, `passkeyIds` (SS: the ids of the user's authenticators per method, moved in the same transactions; what track reads instead of the credentials; the verify's condition that a credential is still registered), `lastVerifiedAt#{id}` (N: each device credential's latest verification, set by verify and approve, removed with the credential), `lastChallenge` (S: the order of the user's last used in-app challenge, what makes each single-use) | |
//! | credential | `T#{t}#U#{u}` | `CRED#{id}` | credential attributes (below) | |
//! | credential by key | `T#{t}#K#{ns}#{fp}` | `KEY` | the same attributes, a second copy | |
//! | removal receipt | `T#{t}#RK#{fp}` | `RECEIPT#{window}#{r}` (the signature's `r`) | `expiresAt` | yes |
//! | action | `T#{t}#U#{u}` | `ACT#{code}#{key}` | action attributes (below) | yes |
//! | challenge mark (failed signatures of an in-app challenge; the single use of a push-update challenge) | `T#{t}#CH#{ch}` | `MARK` | `consumed`, `failedAttempts`, `expiresAt` | yes |
//! | action config (16 identical copies, one per shard of users: no hot item) | `T#{t}#CFG#{shard}` | `ACTION#{code}` (`ACTION#*`: the tenant default) | `data` (config JSON) | |
//! | pending push (one per user) | `T#{t}#U#{u}` | `PUSH` | `data` (challenge JSON), `version` | yes, kept 10 minutes after the start (the rate limit's window), past the push's own expiry |
//! | QR-code challenge | `T#{t}#QR#{id}` | `QR` | `data` (challenge JSON, with the WebSocket connection it was created on, if any), `version` | yes |
//! | open QR-code WebSocket (API Gateway) | `WS#{connection id}` | `WS` | `data` (session JSON: tenant, the handshake's credential, address, user agent) | yes, 2 hours after `$connect` (API Gateway's limit) |
//! | QR-code challenge | `T#{t}#QR#{id}` | `QR` | `data` (challenge JSON), `version` | yes |
//! | passkey | `T#{t}#PK#{credentialId}` | `PASSKEY` | `data` (passkey JSON), `passkeyId`, `counter` | |
//! | passkey in its user's partition | `T#{t}#U#{u}` | `PASSKEY#{id}` | the same, a second copy | |
//! | WebAuthn ceremony | `T#{t}#CER#{id}` | `CEREMONY` | `data` (ceremony JSON: the library's state), `consumed`, `expiresAt` | yes |
//! | rate-limit counter | `T#{t}#RL#{bucket}` | `RL` | `hits`, `expiresAt` | yes, at the end of its window |
//!
//! Credential attributes: `credId`, `userId`, `namespace`, `publicKey`, `fingerprint`,
//! `deviceName`, `devicePlatform`, `pushToken`, `createdAt`, `lastVerifiedAt` (as of the last
//! push-credential update: verifications set the enrolment item's instead, and reads take the
//! later), `credExpiresAt`.
//! Action attributes: `userId`, `actionCode`, `idempotencyKey`, `state`, `createdAt`,
//! `stateUpdatedAt`, `verificationMethod`, `verifiedBy`, `context` (JSON), `ruleIds` (JSON),
//! `rules` (JSON: the deciding rule's id, name and description, when a rule decided), `origin`,
//! `expiresAt`. Times are epoch milliseconds (`N`) except `ttl` (seconds).
//!
//! ## Access patterns and their cost (requests)
//!
//! | pattern | how | requests |
//! |---|---|---|
//! | tenant by id / by secret | `GetItem` (cached in memory by the app) | 1 |
//! | a user's credentials (list) | `Query pk = T#{t}#U#{u}, sk BETWEEN CRED# AND ENROLMENT` (the enrolment item, for the verification times) | 1 |
//! | credential by public key (verify, approve) | `GetItem` on the key item | 1 |
//! | credential by public key, with its verification time (the client's get) | `GetItem` on the key item, then on the user's enrolment item | 2 |
//! | add credential | `TransactWriteItems`: the token's action checked, both copies (`attribute_not_exists` on the key item), the key's item in each other namespace checked (absent or this user's: one user per key and tenant), the enrolment counter | 1 |
//! | the action's config, the tenant default and the user's enrolment (track) | `BatchGetItem` of `ACTION#{code}`, `ACTION#*` and `ENROLMENT`, strongly consistent | 1 |
//! | a user's credentials and actions (track, when a rule reads history) | `Query pk = T#{t}#U#{u}` (the whole partition) | 1 |
//! | track | `BatchGetItem` configs and enrolment (+ `Query` of the whole user partition when a rule reads history) + `PutItem` action `attribute_not_exists` | 2 (3) |
//! | list configs / put / delete | `Query pk = T#{t}#CFG#0, begins_with(sk, ACTION#)` / `TransactWriteItems` of every copy (put / delete) | 1 |
//! | verify | `GetItem` key item + `TransactWriteItems` (action, enrolment item: the credential still registered, the challenge after the user's last used, the verification time) | 2 |
//! | validate | `GetItem` action | 1 |
//! | push or QR challenge read / compare-and-swap | `GetItem` / `PutItem` with `version = :expected` | 1 |
//! | approve | `GetItem` key item + `GetItem` challenge + `TransactWriteItems` (challenge, action, enrolment item) | 3 |
//! | passkey options (registration, sign-in with a token) | `Query pk = T#{t}#U#{u}, begins_with(sk, PASSKEY#)` + `PutItem` ceremony | 2 |
//! | passkey registration | `GetItem` ceremony + `TransactWriteItems` (ceremony consumed, action checked, both copies `attribute_not_exists`, enrolment counter) | 2 |
//! | passkey sign-in | `GetItem` ceremony + `GetItem` passkey + `TransactWriteItems` (ceremony consumed, both copies `counter = :previous`, action) | 3 |
//! | rate-limit hit | `UpdateItem` `hits + 1` if `hits < :limit` (or expired) | 1 |
//! | WebSocket `$connect` / message / `$disconnect` | `PutItem` / `GetItem` / `DeleteItem` of the session | 1 each |
//!
//! The credential is stored twice so that both of its lookups are one strongly consistent
//! request; a secondary index would be eventually consistent, and a user who just enrolled could
//! be told "not enrolled" (and allowed) for a moment. Every write that changes a credential
//! changes both copies in one transaction; a verification changes neither, only the user's
//! enrolment item (docs/dynamodb.md, "The verify transaction").
//!
//! Every conditional step is one conditional write or one transaction; a failed condition
//! becomes the precise domain error using the item DynamoDB returns with the failure
//! (`ReturnValuesOnConditionCheckFailure = ALL_OLD`). Reads are strongly consistent.
//!
//! ## Files
//!
//! | file | what it holds |
//! |---|---|
//! | `schema.rs` | the table's definition and [`create_table`] |
//! | `client.rs`, `meter.rs` | the client built once, and the [`UsageMeter`] that counts its requests |
//! | `keys.rs` | every key above, one constructor per item kind |
//! | `item.rs` | records to items and back, exhaustive over each record's fields |
//! | `error.rs` | SDK failures to domain errors; the one matcher of a failed condition |
//! | `store.rs` | [`DynamoStore`] and the request builders the trait implementations share |
//! | `tenants.rs`, `credentials.rs`, `challenges.rs`, `rate_limits.rs`, `actions.rs`, `action_configs.rs`, `users.rs`, `verification.rs`, `approvals.rs`, `sockets.rs` | one store trait each |

mod action_configs;

mod actions;
mod approvals;
mod attr;
mod challenges;
mod client;
mod credentials;
mod error;
mod item;
mod keys;
mod meter;
mod passkeys;
mod rate_limits;
pub mod schema;
mod sessions;
mod sockets;
mod store;
pub mod stream;
mod tenants;
mod users;
mod verification;

/// The SDK's attribute value, for tests that read items back (item sizes: docs/scaling.md).
pub use aws_sdk_dynamodb::types::AttributeValue;
pub use client::{DynamoConfig, client, lambda_client};
pub use meter::{ItemAccess, Usage, UsageMeter};
pub use schema::create_table;
pub use store::DynamoStore;

#[cfg(test)]
mod tests;
