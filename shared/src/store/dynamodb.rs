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
//! | secret index | `SECRET#{hash}` | `SECRET` | `tenantId` | |
//! | user profile | `T#{t}#U#{u}` | `PROFILE` | `data` (profile JSON) | |
//! | enrolment counter | `T#{t}#U#{u}` | `ENROLMENT` | `credentials` (N: moved by every add and removal; what makes a scopeless token's first credential the only one) | |
//! | credential | `T#{t}#U#{u}` | `CRED#{id}` | credential attributes (below) | |
//! | credential by key | `T#{t}#K#{ns}#{fp}` | `KEY` | the same attributes, a second copy | |
//! | removal receipt | `T#{t}#RK#{fp}` | `RECEIPT#{window}` | `expiresAt` | yes |
//! | action | `T#{t}#U#{u}` | `ACT#{code}#{key}` | action attributes (below) | yes |
//! | challenge mark | `T#{t}#CH#{ch}` | `MARK` | `consumed`, `failedAttempts`, `expiresAt` | yes |
//! | action config | `T#{t}#CFG` | `ACTION#{code}` (`ACTION#*`: the tenant default) | `data` (config JSON) | |
//! | pending push (one per user) | `T#{t}#U#{u}` | `PUSH` | `data` (challenge JSON), `version` | yes, kept 10 minutes after the start (the rate limit's window), past the push's own expiry |
//! | QR-code challenge | `T#{t}#QR#{id}` | `QR` | `data` (challenge JSON), `version` | yes |
//! | rate-limit counter | `T#{t}#RL#{bucket}` | `RL` | `hits`, `expiresAt` | yes, at the end of its window |
//!
//! Credential attributes: `credId`, `userId`, `namespace`, `publicKey`, `fingerprint`,
//! `deviceName`, `devicePlatform`, `pushToken`, `createdAt`, `lastVerifiedAt`, `credExpiresAt`.
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
//! | a user's credentials (track, list) | `Query pk = T#{t}#U#{u}, begins_with(sk, CRED#)` | 1 |
//! | credential by public key (verify, get) | `GetItem` on the key item | 1 |
//! | add credential | `TransactWriteItems`: the token's action checked, both copies (`attribute_not_exists` on the key item), the key's item in each other namespace checked (absent or this user's: one user per key and tenant), the enrolment counter | 1 |
//! | the action's config and the tenant default (track) | `BatchGetItem` of `ACTION#{code}` and `ACTION#*`, strongly consistent | 1 |
//! | a user's credentials and actions (track, when a rule reads history) | `Query pk = T#{t}#U#{u}` (the whole partition) | 1 |
//! | track | `BatchGetItem` configs + `Query` credentials (or the whole user partition) + `PutItem` action `attribute_not_exists` | 3 |
//! | list configs / put / delete | `Query pk = T#{t}#CFG, begins_with(sk, ACTION#)` / `PutItem` / `DeleteItem` | 1 |
//! | verify | `GetItem` key item + `TransactWriteItems` (mark, action, both credential copies) | 2 |
//! | validate | `GetItem` action | 1 |
//! | push or QR challenge read / compare-and-swap | `GetItem` / `PutItem` with `version = :expected` | 1 |
//! | approve | `GetItem` key item + `GetItem` challenge + `TransactWriteItems` (challenge, action, both credential copies) | 3 |
//! | rate-limit hit | `UpdateItem` `hits + 1` if `hits < :limit` (or expired) | 1 |
//!
//! The credential is stored twice so that both of its lookups are one strongly consistent
//! request; a secondary index would be eventually consistent, and a user who just enrolled could
//! be told "not enrolled" (and allowed) for a moment. Every write that changes a credential
//! changes both copies in one transaction.
//!
//! Every conditional step is one conditional write or one transaction; a failed condition
//! becomes the precise domain error using the item DynamoDB returns with the failure
//! (`ReturnValuesOnConditionCheckFailure = ALL_OLD`). Reads are strongly consistent.

use super::{
    ActionConfigStore, ActionStore, ActionWrite, ApprovalStore, ChallengeStore, CredentialStore,
    CredentialUpdate, EnrolmentGuard, InsertOutcome, RateBucket, RateLimitStore, RemovalReceipt,
    SingleUse, TenantStore, UserStore, VerificationCommit, VerificationStore,
};
use crate::clock::Timestamp;
use crate::domain::policy::{ActionConfig, ConfigKey};
use crate::domain::{
    ADD_AUTHENTICATORS_SCOPE, Action, ActionCode, ActionKey, ActionOrigin, ActionState,
    ApprovalChallenge, ApprovalSlot, ChallengeId, ChallengeMark, Credential, CredentialId,
    IdempotencyKey, Namespace, TenantId, TenantRecord, UserId, UserProfile, VerificationMethod,
};
use crate::error::{Error, Result};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, ConditionCheck,
    ConsumedCapacity, Delete, KeySchemaElement, KeyType, Put, ReturnConsumedCapacity,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem, Update,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

type Item = HashMap<String, AttributeValue>;

// ---------------------------------------------------------------- schema

/// The table's definition, in one place: the CLI's `table create`, the tests and the SAM
/// template (checked by a test) all use it.
pub mod schema {
    /// Partition key attribute (string).
    pub const PARTITION_KEY: &str = "pk";
    /// Sort key attribute (string).
    pub const SORT_KEY: &str = "sk";
    /// The TTL attribute (number, epoch seconds).
    pub const TTL_ATTRIBUTE: &str = "ttl";
    /// On-demand capacity: the cost follows the traffic, nothing to size.
    pub const BILLING_MODE: &str = "PAY_PER_REQUEST";
    /// No secondary index: every access pattern is a key lookup (see the module docs).
    pub const GLOBAL_SECONDARY_INDEXES: &[&str] = &[];
}

/// Creates the table (on-demand, `pk`/`sk`) and enables TTL on `ttl`; waits until it is
/// active. Returns `false` if a table of that name already existed (it is left as it is).
pub async fn create_table(client: &Client, table: &str) -> Result<bool> {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(internal)
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(internal)
    };
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::from(schema::BILLING_MODE))
        .key_schema(key(schema::PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(schema::SORT_KEY, KeyType::Range)?)
        .attribute_definitions(attribute(schema::PARTITION_KEY)?)
        .attribute_definitions(attribute(schema::SORT_KEY)?)
        .send()
        .await;
    let is_new = match created {
        Ok(_) => true,
        Err(error) if error.code() == Some("ResourceInUseException") => false,
        Err(error) => return Err(sdk_error("CreateTable", error)),
    };
    for _ in 0..120 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTable", e))?;
        let status = described
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str().to_owned());
        if status.as_deref() == Some("ACTIVE") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(schema::TTL_ATTRIBUTE)
        .enabled(true)
        .build()
        .map_err(internal)?;
    match client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
    {
        Ok(_) => {}
        // Already enabled on an existing table.
        Err(error) if is_new || error.code() != Some("ValidationException") => {
            return Err(sdk_error("UpdateTimeToLive", error));
        }
        Err(_) => {}
    }
    Ok(is_new)
}

// ---------------------------------------------------------------- client and metrics

/// What DynamoDB was asked to do: requests per operation (every HTTP request, retries
/// included) and the capacity units DynamoDB reported. This is the running cost of the
/// service, so tests assert it and benchmarks report it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub requests: BTreeMap<String, u64>,
    /// The item actions inside the `TransactWriteItems` sent (`PutItem`, `UpdateItem`,
    /// `DeleteItem`, `ConditionCheckItem`): IAM authorises a transaction item by item.
    pub transaction_item_actions: BTreeSet<&'static str>,
    pub read_units: f64,
    pub write_units: f64,
}

impl Usage {
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// The IAM actions (`dynamodb:...`) these requests need.
    pub fn iam_actions(&self) -> BTreeSet<String> {
        self.requests
            .keys()
            .map(String::as_str)
            .filter(|op| *op != "TransactWriteItems")
            .chain(self.transaction_item_actions.iter().copied())
            .map(|action| format!("dynamodb:{action}"))
            .collect()
    }
}

/// Meters [`Usage`]: an interceptor on the client counts requests; the store adds the
/// consumed capacity each response reports (`ReturnConsumedCapacity = TOTAL`).
#[derive(Debug, Default, Clone)]
pub struct UsageMeter(Arc<Mutex<Usage>>);

impl UsageMeter {
    fn usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The usage since the last `take`, and resets it.
    pub fn take(&self) -> Usage {
        std::mem::take(&mut *self.usage())
    }

    pub fn total_requests(&self) -> u64 {
        self.usage().total_requests()
    }

    fn record_transaction_items(&self, items: &[TransactWriteItem]) {
        let mut usage = self.usage();
        for item in items {
            let action = if item.put().is_some() {
                "PutItem"
            } else if item.update().is_some() {
                "UpdateItem"
            } else if item.delete().is_some() {
                "DeleteItem"
            } else {
                "ConditionCheckItem"
            };
            usage.transaction_item_actions.insert(action);
        }
    }

    fn record_read(&self, capacity: Option<&ConsumedCapacity>) {
        if let Some(c) = capacity {
            self.usage().read_units += c
                .read_capacity_units()
                .or(c.capacity_units())
                .unwrap_or(0.0);
        }
    }

    fn record_write(&self, capacity: &[ConsumedCapacity]) {
        let mut usage = self.usage();
        for c in capacity {
            usage.write_units += c
                .write_capacity_units()
                .or(c.capacity_units())
                .unwrap_or(0.0);
            usage.read_units += c.read_capacity_units().unwrap_or(0.0);
        }
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for UsageMeter {
    fn name(&self) -> &'static str {
        "UsageMeter"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map_or("unknown", |m| m.name())
            .to_owned();
        *self.usage().requests.entry(operation).or_default() += 1;
        Ok(())
    }
}

/// Where and how to reach DynamoDB.
#[derive(Debug, Clone, Default)]
pub struct DynamoConfig {
    /// An emulator's URL (dynoxide, moto); AWS when `None`.
    pub endpoint_url: Option<String>,
}

/// Builds the client once per process: credentials and region from the usual AWS chain, or
/// dummy ones for an emulator endpoint; bounded retries and timeouts, so a DynamoDB outage
/// turns into a prompt 503 rather than a hung request.
pub async fn client(config: &DynamoConfig, meter: UsageMeter) -> Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use std::time::Duration;

    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(6))
                .build(),
        );
    if let Some(url) = &config.endpoint_url {
        loader = loader
            .endpoint_url(url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local", "local", None, None, "emulator",
            ));
    }
    let shared = loader.load().await;
    let dynamo = aws_sdk_dynamodb::config::Builder::from(&shared)
        .interceptor(meter)
        .build();
    Client::from_conf(dynamo)
}

// ---------------------------------------------------------------- errors

fn internal(error: impl std::fmt::Display) -> Error {
    tracing::error!(error = %error, "dynamodb request could not be built");
    Error::Internal
}

/// Maps an SDK failure: throttling, timeouts, connection failures and 5xx are
/// `StoreUnavailable` (a 503: a retry can help); anything else is a bug, `Internal`.
fn sdk_error<E, R>(operation: &str, error: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = error.code().map(str::to_owned);
    let retryable = matches!(
        error,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) || matches!(
        code.as_deref(),
        Some(
            "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException"
        )
    );
    if retryable {
        tracing::warn!(operation, code = code.as_deref(), "dynamodb unavailable");
        Error::StoreUnavailable
    } else {
        tracing::error!(operation, code = code.as_deref(), error = %aws_sdk_dynamodb::error::DisplayErrorContext(&error), "dynamodb request failed");
        Error::Internal
    }
}

// ---------------------------------------------------------------- attribute helpers

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn get_s(item: &Item, name: &str) -> Result<String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(corrupt(name)),
    }
}

fn get_opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    }
}

fn get_n(item: &Item, name: &str) -> Result<i64> {
    get_opt_n(item, name).ok_or_else(|| corrupt(name))
}

fn get_opt_n(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().ok(),
        _ => None,
    }
}

fn corrupt(attribute: &str) -> Error {
    tracing::error!(attribute, "corrupt item in the dynamodb table");
    Error::Internal
}

fn json_attr<T: serde::Serialize>(value: &T) -> Result<AttributeValue> {
    serde_json::to_string(value)
        .map(AttributeValue::S)
        .map_err(|_| Error::Internal)
}

fn from_json_attr<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> Result<T> {
    serde_json::from_str(&get_s(item, name)?).map_err(|_| corrupt(name))
}

/// A closed enum stored as its wire string.
fn enum_attr<T: serde::Serialize>(value: &T) -> Result<AttributeValue> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => Ok(s(text)),
        _ => Err(Error::Internal),
    }
}

fn from_enum_attr<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(get_s(item, name)?)).map_err(|_| corrupt(name))
}

// ---------------------------------------------------------------- keys

fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

fn user_pk(tenant: &TenantId, user: &UserId) -> String {
    format!("T#{tenant}#U#{user}")
}

fn key_pk(tenant: &TenantId, namespace: Namespace, fingerprint: &str) -> String {
    format!("T#{tenant}#K#{}#{fingerprint}", namespace.segment())
}

fn mark_pk(tenant: &TenantId, challenge: &ChallengeId) -> String {
    format!("T#{tenant}#CH#{}", challenge.fingerprint())
}

fn config_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#CFG")
}

fn config_sk(key: &ConfigKey) -> String {
    format!("ACTION#{key}")
}

fn approval_key(tenant: &TenantId, slot: &ApprovalSlot) -> Item {
    match slot {
        ApprovalSlot::Push(user) => item_key(user_pk(tenant, user), "PUSH"),
        ApprovalSlot::QrCode(id) => item_key(format!("T#{tenant}#QR#{id}"), "QR"),
    }
}

fn approval_item(challenge: &ApprovalChallenge) -> Result<Item> {
    let mut item = approval_key(&challenge.tenant_id, &challenge.slot());
    item.insert("data".into(), json_attr(challenge)?);
    item.insert(
        "version".into(),
        n(i64::try_from(challenge.version).map_err(internal)?),
    );
    item.insert(
        schema::TTL_ATTRIBUTE.into(),
        n(challenge.retain_until.unix_seconds()),
    );
    Ok(item)
}

/// The condition that the slot still holds `expected` (or nothing), with its values.
fn version_condition(expected: Option<u64>) -> Result<(&'static str, Item)> {
    Ok(match expected {
        None => ("attribute_not_exists(pk)", Item::new()),
        Some(version) => (
            "version = :expected",
            HashMap::from([(
                ":expected".to_owned(),
                n(i64::try_from(version).map_err(internal)?),
            )]),
        ),
    })
}

/// The sort key of a user's enrolment counter, in the user's partition.
const ENROLMENT_SK: &str = "ENROLMENT";

fn action_sk(key: &ActionKey) -> String {
    format!("ACT#{}#{}", key.action_code, key.idempotency_key)
}

fn item_key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([
        (schema::PARTITION_KEY.to_owned(), s(pk)),
        (schema::SORT_KEY.to_owned(), s(sk)),
    ])
}

// ---------------------------------------------------------------- records <-> items

fn credential_item(c: &Credential, pk: String, sk: String) -> Item {
    let mut item = item_key(pk, sk);
    item.insert("credId".into(), s(c.id.as_str()));
    item.insert("userId".into(), s(c.user_id.as_str()));
    item.insert("namespace".into(), s(c.namespace.segment()));
    item.insert("publicKey".into(), s(&c.public_key));
    item.insert("fingerprint".into(), s(&c.key_fingerprint));
    item.insert("createdAt".into(), n(c.created_at.0));
    let optional = [
        ("deviceName", c.device_name.as_ref()),
        ("devicePlatform", c.device_platform.as_ref()),
        ("pushToken", c.push_token.as_ref()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            item.insert(name.into(), s(value));
        }
    }
    if let Some(at) = c.last_verified_at {
        item.insert("lastVerifiedAt".into(), n(at.0));
    }
    if let Some(at) = c.expires_at {
        item.insert("credExpiresAt".into(), n(at.0));
    }
    item
}

fn credential_from(tenant: &TenantId, item: &Item) -> Result<Credential> {
    Ok(Credential {
        id: CredentialId::parse(get_s(item, "credId")?).map_err(|_| corrupt("credId"))?,
        tenant_id: tenant.clone(),
        user_id: UserId::parse(get_s(item, "userId")?).map_err(|_| corrupt("userId"))?,
        namespace: Namespace::parse_segment(&get_s(item, "namespace")?)
            .ok_or_else(|| corrupt("namespace"))?,
        public_key: get_s(item, "publicKey")?,
        key_fingerprint: get_s(item, "fingerprint")?,
        device_name: get_opt_s(item, "deviceName"),
        device_platform: get_opt_s(item, "devicePlatform"),
        push_token: get_opt_s(item, "pushToken"),
        created_at: Timestamp(get_n(item, "createdAt")?),
        last_verified_at: get_opt_n(item, "lastVerifiedAt").map(Timestamp),
        expires_at: get_opt_n(item, "credExpiresAt").map(Timestamp),
    })
}

fn action_item(a: &Action) -> Result<Item> {
    let mut item = item_key(user_pk(&a.tenant_id, &a.key.user_id), action_sk(&a.key));
    item.insert("userId".into(), s(a.key.user_id.as_str()));
    item.insert("actionCode".into(), s(a.key.action_code.as_str()));
    item.insert("idempotencyKey".into(), s(a.key.idempotency_key.as_str()));
    item.insert("state".into(), s(a.state.as_str()));
    item.insert("createdAt".into(), n(a.created_at.0));
    item.insert("stateUpdatedAt".into(), n(a.state_updated_at.0));
    if let Some(method) = &a.verification_method {
        item.insert("verificationMethod".into(), enum_attr(method)?);
    }
    if let Some(by) = &a.verified_by_authenticator_id {
        item.insert("verifiedBy".into(), s(by.as_str()));
    }
    item.insert("context".into(), json_attr(&a.context)?);
    item.insert("ruleIds".into(), json_attr(&a.rule_ids)?);
    if !a.rules.is_empty() {
        item.insert("rules".into(), json_attr(&a.rules)?);
    }
    item.insert("origin".into(), enum_attr(&a.origin)?);
    item.insert("expiresAt".into(), n(a.expires_at.0));
    item.insert(schema::TTL_ATTRIBUTE.into(), n(a.expires_at.unix_seconds()));
    Ok(item)
}

fn action_from(tenant: &TenantId, item: &Item) -> Result<Action> {
    Ok(Action {
        tenant_id: tenant.clone(),
        key: ActionKey {
            user_id: UserId::parse(get_s(item, "userId")?).map_err(|_| corrupt("userId"))?,
            action_code: ActionCode::parse(get_s(item, "actionCode")?)
                .map_err(|_| corrupt("actionCode"))?,
            idempotency_key: IdempotencyKey::parse(get_s(item, "idempotencyKey")?)
                .map_err(|_| corrupt("idempotencyKey"))?,
        },
        state: from_enum_attr(item, "state")?,
        created_at: Timestamp(get_n(item, "createdAt")?),
        state_updated_at: Timestamp(get_n(item, "stateUpdatedAt")?),
        verification_method: match item.get("verificationMethod") {
            Some(_) => Some(from_enum_attr::<VerificationMethod>(
                item,
                "verificationMethod",
            )?),
            None => None,
        },
        verified_by_authenticator_id: get_opt_s(item, "verifiedBy")
            .map(CredentialId::parse)
            .transpose()
            .map_err(|_| corrupt("verifiedBy"))?,
        context: from_json_attr(item, "context")?,
        rule_ids: from_json_attr(item, "ruleIds")?,
        rules: match item.get("rules") {
            Some(_) => from_json_attr(item, "rules")?,
            None => Vec::new(),
        },
        origin: match item.get("origin") {
            Some(_) => from_enum_attr(item, "origin")?,
            None => ActionOrigin::Track,
        },
        expires_at: Timestamp(get_n(item, "expiresAt")?),
    })
}

// ---------------------------------------------------------------- the store

/// The DynamoDB adapter of every store trait.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    meter: UsageMeter,
}

impl DynamoStore {
    /// `meter` should be the one given to [`client`], so requests and capacity add up.
    pub fn new(client: Client, table: impl Into<String>, meter: UsageMeter) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            meter,
        }
    }

    /// Writes `item`, replacing whatever had its key.
    async fn put_unconditionally(&self, item: Item) -> Result<()> {
        let output = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        self.meter.record_write(one(output.consumed_capacity()));
        Ok(())
    }

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key(pk, sk)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        self.meter.record_read(output.consumed_capacity());
        Ok(output.item)
    }

    /// All items of a partition whose sort key starts with `prefix` (all of them when it is
    /// empty), strongly consistent.
    async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(pk.clone()));
            // DynamoDB refuses an empty string as a key condition value, so the whole
            // partition is asked for with the partition key alone.
            query = if prefix.is_empty() {
                query.key_condition_expression("pk = :pk")
            } else {
                query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix))
            };
            let output = query
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            self.meter.record_read(output.consumed_capacity());
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// Runs a transaction; on cancellation returns the per-item reasons (with the old item
    /// where a condition failed) for the caller to turn into the precise error.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<std::result::Result<(), Vec<CancellationReason>>> {
        self.meter.record_transaction_items(&items);
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
        {
            Ok(output) => {
                self.meter.record_write(output.consumed_capacity());
                Ok(Ok(()))
            }
            Err(error) => {
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                    error.as_service_error()
                {
                    let reasons = cancelled.cancellation_reasons().to_vec();
                    // Cancelled by a condition: the caller decides. Cancelled by a conflict
                    // with another transaction: retryable, a 503.
                    if reasons.iter().any(|r| r.code() == Some("ConditionalCheckFailed")) {
                        return Ok(Err(reasons));
                    }
                }
                Err(sdk_error("TransactWriteItems", error))
            }
        }
    }

    fn put(&self, item: Item, condition: Option<&str>) -> Result<TransactWriteItem> {
        self.put_if(item, condition, Item::new())
    }

    fn put_if(
        &self,
        item: Item,
        condition: Option<&str>,
        values: Item,
    ) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete(&self, key: Item, condition: Option<(&str, Item)>) -> Result<TransactWriteItem> {
        let (expression, values) = match condition {
            Some((expression, values)) => (
                Some(expression.to_owned()),
                (!values.is_empty()).then_some(values),
            ),
            None => (None, None),
        };
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .set_condition_expression(expression)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn condition_check(
        &self,
        key: Item,
        condition: &str,
        names: &[(&str, &str)],
        values: Item,
    ) -> Result<TransactWriteItem> {
        let names: Option<HashMap<String, String>> = (!names.is_empty()).then(|| {
            names
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        });
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// The user's enrolment counter (`ENROLMENT`, `credentials`) moved by `delta` in a
    /// transaction. With `only_if_none`, the transaction fails unless the user has no
    /// credential: what makes a scopeless token's first credential the only one (issue #11.7).
    /// A user enrolled before the counter existed has none (or a negative one after a
    /// removal); the use case's own read of the credentials covers them.
    fn count_enrolment(
        &self,
        tenant: &TenantId,
        user: &UserId,
        delta: i64,
        only_if_none: bool,
    ) -> Result<TransactWriteItem> {
        let mut values = HashMap::from([(":delta".to_owned(), n(delta))]);
        let condition = if only_if_none {
            values.insert(":zero".to_owned(), n(0));
            Some("attribute_not_exists(credentials) OR credentials <= :zero".to_owned())
        } else {
            None
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(item_key(user_pk(tenant, user), ENROLMENT_SK)))
            .update_expression("ADD credentials :delta")
            .set_condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn update(
        &self,
        key: Item,
        expression: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Item,
    ) -> Result<TransactWriteItem> {
        let names: Option<HashMap<String, String>> = (!names.is_empty()).then(|| {
            names
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        });
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// The capacity of a single-item response, as a slice.
fn one(capacity: Option<&ConsumedCapacity>) -> &[ConsumedCapacity] {
    capacity.map(std::slice::from_ref).unwrap_or_default()
}

fn failed(reason: &CancellationReason) -> bool {
    reason.code() == Some("ConditionalCheckFailed")
}

// ---------------------------------------------------------------- tenants

#[async_trait]
impl TenantStore for DynamoStore {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        match self.get_item(tenant_pk(id), "TENANT").await? {
            Some(item) => from_json_attr(&item, "data").map(Some),
            None => Ok(None),
        }
    }

    async fn find_tenant_by_secret_hash(&self, secret_hash: &str) -> Result<Option<TenantId>> {
        match self
            .get_item(format!("SECRET#{secret_hash}"), "SECRET")
            .await?
        {
            Some(item) => TenantId::parse(get_s(&item, "tenantId")?)
                .map(Some)
                .map_err(|_| corrupt("tenantId")),
            None => Ok(None),
        }
    }

    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        let old = self.get_tenant(&tenant.id).await?;
        let mut items = Vec::new();
        let mut tenant_item = item_key(tenant_pk(&tenant.id), "TENANT");
        tenant_item.insert("data".into(), json_attr(tenant)?);
        items.push(self.put(tenant_item, None)?);
        for hash in &tenant.secret_key_hashes {
            let mut index = item_key(format!("SECRET#{hash}"), "SECRET");
            index.insert("tenantId".into(), s(tenant.id.as_str()));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(index))
                .condition_expression("attribute_not_exists(pk) OR tenantId = :me")
                .expression_attribute_values(":me", s(tenant.id.as_str()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(internal)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        for stale in old
            .iter()
            .flat_map(|o| &o.secret_key_hashes)
            .filter(|h| !tenant.secret_key_hashes.contains(h))
        {
            items.push(self.delete(item_key(format!("SECRET#{stale}"), "SECRET"), None)?);
        }
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(Error::invalid_request(
                "This secret key is already used by another tenant.",
            )),
        }
    }
}

// ---------------------------------------------------------------- credentials

#[async_trait]
impl CredentialStore for DynamoStore {
    async fn get_credential(
        &self,
        tenant: &TenantId,
        namespace: Namespace,
        key_fingerprint: &str,
    ) -> Result<Option<Credential>> {
        match self
            .get_item(key_pk(tenant, namespace, key_fingerprint), "KEY")
            .await?
        {
            Some(item) => credential_from(tenant, &item).map(Some),
            None => Ok(None),
        }
    }

    async fn list_user_credentials(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<Credential>> {
        let items = self.query_prefix(user_pk(tenant, user), "CRED#").await?;
        let mut credentials = items
            .iter()
            .map(|item| credential_from(tenant, item))
            .collect::<Result<Vec<_>>>()?;
        credentials.sort_by_key(|c| c.created_at);
        Ok(credentials)
    }

    /// One transaction: the guard's action (`ConditionCheck`), both copies of the credential,
    /// the key in every other namespace free or the same user's (`ConditionCheck` each), and
    /// the user's enrolment counter. DynamoDB transactions are serializable, so of two users
    /// adding one key in two namespaces at once exactly one succeeds.
    async fn insert_credential(
        &self,
        credential: &Credential,
        guard: &EnrolmentGuard,
    ) -> Result<InsertOutcome> {
        let tenant = &credential.tenant_id;
        let user = &credential.user_id;
        let action_check = self.condition_check(
            item_key(user_pk(tenant, &guard.action.user_id), action_sk(&guard.action)),
            "attribute_exists(pk) AND expiresAt > :now AND NOT (#state IN (:block, :review, :reviewFailed, :failed))",
            &[("#state", "state")],
            HashMap::from([
                (":now".to_owned(), n(guard.now.0)),
                (":block".to_owned(), s(ActionState::Block.as_str())),
                (":review".to_owned(), s(ActionState::ReviewRequired.as_str())),
                (":reviewFailed".to_owned(), s(ActionState::ReviewFailed.as_str())),
                (":failed".to_owned(), s(ActionState::ChallengeFailed.as_str())),
            ]),
        )?;
        let by_key = credential_item(
            credential,
            key_pk(tenant, credential.namespace, &credential.key_fingerprint),
            "KEY".into(),
        );
        let by_user = credential_item(
            credential,
            user_pk(tenant, user),
            format!("CRED#{}", credential.id),
        );
        let mut items = vec![
            action_check,
            self.put(by_key, Some("attribute_not_exists(pk)"))?,
            self.put(by_user, Some("attribute_not_exists(pk)"))?,
        ];
        for namespace in Namespace::ALL
            .into_iter()
            .filter(|ns| *ns != credential.namespace)
        {
            items.push(self.condition_check(
                item_key(
                    key_pk(tenant, namespace, &credential.key_fingerprint),
                    "KEY",
                ),
                "attribute_not_exists(pk) OR userId = :user",
                &[],
                HashMap::from([(":user".to_owned(), s(user.as_str()))]),
            )?);
        }
        items.push(self.count_enrolment(tenant, user, 1, guard.first_credential_only)?);
        const ACTION: usize = 0;
        const BY_KEY: usize = 1;
        const COUNTER_FROM_END: usize = 1;
        match self.transact(items).await? {
            Ok(()) => Ok(InsertOutcome::Inserted),
            Err(reasons) => {
                let failed_at = |i: usize| reasons.get(i).filter(|r| failed(r));
                // The most decisive failure first: a withdrawn token, then another user's key.
                if let Some(reason) = failed_at(ACTION) {
                    return Err(match reason.item() {
                        Some(old) => {
                            let old = action_from(tenant, old)?;
                            if old.expires_at <= guard.now {
                                Error::ActionNotFound
                            } else {
                                Error::ActionForbidsEnrolment(old.state.as_str())
                            }
                        }
                        None => Error::ActionNotFound,
                    });
                }
                let others = BY_KEY + 2..reasons.len().saturating_sub(COUNTER_FROM_END);
                if others.into_iter().any(|i| failed_at(i).is_some()) {
                    return Err(Error::CredentialConflict);
                }
                if let Some(existing) = failed_at(BY_KEY).and_then(|r| r.item()) {
                    return Ok(InsertOutcome::AlreadyRegistered(credential_from(
                        tenant, existing,
                    )?));
                }
                if reasons.last().is_some_and(failed) {
                    return Err(Error::InsufficientScope(ADD_AUTHENTICATORS_SCOPE));
                }
                Err(Error::Internal)
            }
        }
    }

    async fn delete_credential(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: &CredentialId,
    ) -> Result<Option<Credential>> {
        let Some(item) = self
            .get_item(user_pk(tenant, user), &format!("CRED#{id}"))
            .await?
        else {
            return Ok(None);
        };
        let credential = credential_from(tenant, &item)?;
        let items = vec![
            self.count_enrolment(tenant, user, -1, false)?,
            self.delete(item_key(user_pk(tenant, user), format!("CRED#{id}")), None)?,
            self.delete(
                item_key(
                    key_pk(tenant, credential.namespace, &credential.key_fingerprint),
                    "KEY",
                ),
                Some((
                    "credId = :id",
                    HashMap::from([(":id".to_owned(), s(id.as_str()))]),
                )),
            )?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(Some(credential)),
            // Removed concurrently by someone else.
            Err(_) => Ok(None),
        }
    }

    async fn remove_credential_once(
        &self,
        credential: &Credential,
        receipt: &RemovalReceipt,
    ) -> Result<()> {
        let tenant = &credential.tenant_id;
        let pk = key_pk(tenant, credential.namespace, &credential.key_fingerprint);
        // Not per namespace: the signed window message names none (spec 3.2, 4.4).
        let receipt_pk = format!("T#{tenant}#RK#{}", credential.key_fingerprint);
        let mut receipt_item = item_key(receipt_pk, format!("RECEIPT#{}", receipt.window));
        receipt_item.insert("expiresAt".into(), n(receipt.expires_at.0));
        receipt_item.insert(
            schema::TTL_ATTRIBUTE.into(),
            n(receipt.expires_at.unix_seconds()),
        );
        let id_matches = || {
            Some((
                "credId = :id",
                HashMap::from([(":id".to_owned(), s(credential.id.as_str()))]),
            ))
        };
        let items = vec![
            self.put(receipt_item, Some("attribute_not_exists(pk)"))?,
            self.delete(item_key(pk, "KEY"), id_matches())?,
            self.delete(
                item_key(
                    user_pk(tenant, &credential.user_id),
                    format!("CRED#{}", credential.id),
                ),
                Some(("attribute_exists(pk)", HashMap::new())),
            )?,
            self.count_enrolment(tenant, &credential.user_id, -1, false)?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(reasons) if reasons.first().is_some_and(failed) => Err(Error::SignatureAlreadyUsed),
            Err(_) => Err(Error::InvalidCredential),
        }
    }
}

// ---------------------------------------------------------------- challenges

#[async_trait]
impl ChallengeStore for DynamoStore {
    async fn record_failed_attempt(
        &self,
        tenant: &TenantId,
        challenge: &ChallengeId,
        expires_at: Timestamp,
        max_attempts: u32,
    ) -> Result<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key(mark_pk(tenant, challenge), "MARK")))
            .update_expression(
                "ADD failedAttempts :one SET #consumed = if_not_exists(#consumed, :false), expiresAt = :exp, #ttl = :ttl",
            )
            .condition_expression("attribute_not_exists(pk) OR failedAttempts < :max")
            .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
            .expression_attribute_names("#consumed", "consumed")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(i64::from(max_attempts)))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":exp", n(expires_at.0))
            .expression_attribute_values(":ttl", n(expires_at.unix_seconds()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.meter.record_write(one(output.consumed_capacity()));
                Ok(true)
            }
            // Already at the limit: nothing more to count.
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(error) => Err(sdk_error("UpdateItem", error)),
        }
    }

    async fn get_challenge_mark(
        &self,
        tenant: &TenantId,
        challenge: &ChallengeId,
    ) -> Result<Option<ChallengeMark>> {
        match self.get_item(mark_pk(tenant, challenge), "MARK").await? {
            Some(item) => Ok(Some(ChallengeMark {
                consumed: matches!(item.get("consumed"), Some(AttributeValue::Bool(true))),
                failed_attempts: u32::try_from(get_opt_n(&item, "failedAttempts").unwrap_or(0))
                    .unwrap_or(u32::MAX),
                expires_at: Timestamp(get_n(&item, "expiresAt")?),
            })),
            None => Ok(None),
        }
    }
}

// ---------------------------------------------------------------- rate limits

#[async_trait]
impl RateLimitStore for DynamoStore {
    async fn hit(&self, tenant: &TenantId, bucket: &RateBucket, now: Timestamp) -> Result<bool> {
        // Each bucket is its own partition: a tenant-wide limit is split into shards by the
        // caller, so no counter takes every request of a tenant (DESIGN 4).
        if bucket.limit == 0 {
            return Ok(false);
        }
        let key = || item_key(format!("T#{tenant}#RL#{}", bucket.key), "RL");
        // Twice at most: a counter past its end (TTL deletes late) is started again from one,
        // and a concurrent restart of the same counter sends this one back to counting.
        for _ in 0..2 {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key()))
                .update_expression(
                    "SET hits = if_not_exists(hits, :zero) + :one, expiresAt = :exp, #ttl = :ttl",
                )
                .condition_expression(
                    "attribute_not_exists(pk) OR (hits < :limit AND expiresAt > :now)",
                )
                .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":limit", n(i64::from(bucket.limit)))
                .expression_attribute_values(":now", n(now.0))
                .expression_attribute_values(":exp", n(bucket.expires_at.0))
                .expression_attribute_values(":ttl", n(bucket.expires_at.unix_seconds()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            let old = match result {
                Ok(output) => {
                    self.meter.record_write(one(output.consumed_capacity()));
                    return Ok(true);
                }
                Err(error) => match error.as_service_error() {
                    Some(
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(failed),
                    ) => failed.item().cloned().unwrap_or_default(),
                    _ => return Err(sdk_error("UpdateItem", error)),
                },
            };
            if get_opt_n(&old, "expiresAt").is_none_or(|end| end > now.0) {
                // Full, and still in its window.
                return Ok(false);
            }
            // Expired: one hit, replacing the old count only if it is still the expired one.
            let mut fresh = key();
            fresh.insert("hits".into(), n(1));
            fresh.insert("expiresAt".into(), n(bucket.expires_at.0));
            fresh.insert(
                schema::TTL_ATTRIBUTE.into(),
                n(bucket.expires_at.unix_seconds()),
            );
            let restarted = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(fresh))
                .condition_expression("expiresAt <= :now")
                .expression_attribute_values(":now", n(now.0))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            match restarted {
                Ok(output) => {
                    self.meter.record_write(one(output.consumed_capacity()));
                    return Ok(true);
                }
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(error) => return Err(sdk_error("PutItem", error)),
            }
        }
        Ok(false)
    }
}

// ---------------------------------------------------------------- actions

#[async_trait]
impl ActionStore for DynamoStore {
    async fn create_action(&self, action: &Action) -> Result<Action> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(action_item(action)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.meter.record_write(one(output.consumed_capacity()));
                Ok(action.clone())
            }
            Err(error) => {
                if let Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(existing)) =
                    error.as_service_error()
                    && let Some(item) = existing.item()
                {
                    return action_from(&action.tenant_id, item);
                }
                Err(sdk_error("PutItem", error))
            }
        }
    }

    async fn get_action(&self, tenant: &TenantId, key: &ActionKey) -> Result<Option<Action>> {
        match self
            .get_item(user_pk(tenant, &key.user_id), &action_sk(key))
            .await?
        {
            Some(item) => action_from(tenant, &item).map(Some),
            None => Ok(None),
        }
    }

    async fn set_action_state(
        &self,
        tenant: &TenantId,
        key: &ActionKey,
        state: ActionState,
        now: Timestamp,
    ) -> Result<Option<Action>> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key(
                user_pk(tenant, &key.user_id),
                action_sk(key),
            )))
            .update_expression("SET #state = :state, stateUpdatedAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(state.as_str()))
            .expression_attribute_values(":now", n(now.0))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.meter.record_write(one(output.consumed_capacity()));
                output
                    .attributes
                    .as_ref()
                    .map(|item| action_from(tenant, item))
                    .transpose()
            }
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(None),
            Err(error) => Err(sdk_error("UpdateItem", error)),
        }
    }

    /// One `Query` of the user's whole partition: their profile, credentials and actions live
    /// there, so one request (paged past 1 MB) returns both lists; the profile is skipped.
    async fn list_user_activity(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Timestamp,
    ) -> Result<(Vec<Credential>, Vec<Action>)> {
        let items = self.query_prefix(user_pk(tenant, user), "").await?;
        let mut credentials = Vec::new();
        let mut actions = Vec::new();
        for item in &items {
            let sk = get_s(item, schema::SORT_KEY)?;
            if sk.starts_with("CRED#") {
                credentials.push(credential_from(tenant, item)?);
            } else if sk.starts_with("ACT#") {
                let action = action_from(tenant, item)?;
                if action.created_at >= since {
                    actions.push(action);
                }
            }
        }
        credentials.sort_by_key(|c| c.created_at);
        actions.sort_by_key(|a| std::cmp::Reverse(a.created_at));
        Ok((credentials, actions))
    }

    async fn list_actions(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Timestamp,
    ) -> Result<Vec<Action>> {
        let items = self.query_prefix(user_pk(tenant, user), "ACT#").await?;
        let mut actions: Vec<Action> = items
            .iter()
            .map(|item| action_from(tenant, item))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|a| a.created_at >= since)
            .collect();
        actions.sort_by_key(|a| std::cmp::Reverse(a.created_at));
        Ok(actions)
    }
}

// ---------------------------------------------------------------- action configs

#[async_trait]
impl ActionConfigStore for DynamoStore {
    async fn get_action_configs(
        &self,
        tenant: &TenantId,
        code: &ActionCode,
    ) -> Result<(Option<ActionConfig>, Option<ActionConfig>)> {
        let own_sk = config_sk(&ConfigKey::Action(code.clone()));
        let default_sk = config_sk(&ConfigKey::TenantDefault);
        let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .keys(item_key(config_pk(tenant), own_sk.clone()))
            .keys(item_key(config_pk(tenant), default_sk.clone()))
            // A config change must take effect at once (docs/api.md).
            .consistent_read(true)
            .build()
            .map_err(internal)?;
        let mut request = HashMap::from([(self.table.clone(), keys)]);
        let mut items: Vec<Item> = Vec::new();
        // BatchGetItem may leave keys unprocessed under load: ask again for those, a few
        // times, backing off as AWS advises.
        for attempt in 0..5u32 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            let output = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("BatchGetItem", e))?;
            for capacity in output.consumed_capacity() {
                self.meter.record_read(Some(capacity));
            }
            if let Some(mut responses) = output.responses {
                items.extend(responses.remove(&self.table).unwrap_or_default());
            }
            request = output.unprocessed_keys.unwrap_or_default();
            if request.is_empty() {
                break;
            }
        }
        if !request.is_empty() {
            return Err(Error::StoreUnavailable);
        }
        let mut own = None;
        let mut tenant_default = None;
        for item in &items {
            let sk = get_s(item, schema::SORT_KEY)?;
            let config: ActionConfig = from_json_attr(item, "data")?;
            if sk == own_sk {
                own = Some(config);
            } else if sk == default_sk {
                tenant_default = Some(config);
            }
        }
        Ok((own, tenant_default))
    }

    async fn get_action_config(
        &self,
        tenant: &TenantId,
        key: &ConfigKey,
    ) -> Result<Option<ActionConfig>> {
        match self.get_item(config_pk(tenant), &config_sk(key)).await? {
            Some(item) => from_json_attr(&item, "data").map(Some),
            None => Ok(None),
        }
    }

    async fn put_action_config(&self, tenant: &TenantId, config: &ActionConfig) -> Result<()> {
        let mut item = item_key(config_pk(tenant), config_sk(&config.key()?));
        item.insert("data".into(), json_attr(config)?);
        self.put_unconditionally(item).await
    }

    async fn list_action_configs(&self, tenant: &TenantId) -> Result<Vec<ActionConfig>> {
        let items = self.query_prefix(config_pk(tenant), "ACTION#").await?;
        let mut configs = items
            .iter()
            .map(|item| from_json_attr::<ActionConfig>(item, "data"))
            .collect::<Result<Vec<_>>>()?;
        configs.sort_by(|a, b| a.action_code.cmp(&b.action_code));
        Ok(configs)
    }

    async fn delete_action_config(&self, tenant: &TenantId, key: &ConfigKey) -> Result<bool> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item_key(config_pk(tenant), config_sk(key))))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        self.meter.record_write(one(output.consumed_capacity()));
        Ok(output.attributes.is_some_and(|a| !a.is_empty()))
    }
}

// ---------------------------------------------------------------- users

#[async_trait]
impl UserStore for DynamoStore {
    async fn get_user(&self, tenant: &TenantId, user: &UserId) -> Result<Option<UserProfile>> {
        match self.get_item(user_pk(tenant, user), "PROFILE").await? {
            Some(item) => from_json_attr(&item, "data").map(Some),
            None => Ok(None),
        }
    }

    async fn put_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
        profile: &UserProfile,
    ) -> Result<()> {
        let mut item = item_key(user_pk(tenant, user), "PROFILE");
        item.insert("data".into(), json_attr(profile)?);
        self.put_unconditionally(item).await
    }

    /// Deletes the user's partition and the key items of their credentials, 25 at a time.
    /// Not one transaction (a user may have many actions); repeating it finishes the job.
    ///
    /// In two passes, so that no credential survives an add racing the deletion: first
    /// everything but credentials (the actions too, which withdraws every token of the user:
    /// an add checks its action in its own transaction), then the credentials, read again
    /// after the actions are gone. An add that committed before its action was deleted is
    /// seen by the second read; one that comes after fails its action check.
    async fn delete_user(&self, tenant: &TenantId, user: &UserId) -> Result<()> {
        let items = self.query_prefix(user_pk(tenant, user), "").await?;
        let mut keys: Vec<Item> = Vec::with_capacity(items.len());
        for item in &items {
            let sk = get_s(item, schema::SORT_KEY)?;
            if !sk.starts_with("CRED#") {
                keys.push(item_key(user_pk(tenant, user), sk));
            }
        }
        self.delete_batch(&keys).await?;

        let credentials = self.query_prefix(user_pk(tenant, user), "CRED#").await?;
        let mut keys: Vec<Item> = Vec::with_capacity(credentials.len() * 2);
        for item in &credentials {
            let credential = credential_from(tenant, item)?;
            keys.push(item_key(
                key_pk(tenant, credential.namespace, &credential.key_fingerprint),
                "KEY",
            ));
            keys.push(item_key(
                user_pk(tenant, user),
                get_s(item, schema::SORT_KEY)?,
            ));
        }
        // A removal racing this may write the enrolment counter back, below zero: harmless,
        // as a counter at or below zero means "no credential" to the next add.
        self.delete_batch(&keys).await
    }
}

impl DynamoStore {
    /// Deletes `keys` with `BatchWriteItem`, 25 at a time, retrying unprocessed ones.
    async fn delete_batch(&self, keys: &[Item]) -> Result<()> {
        for chunk in keys.chunks(25) {
            let mut requests: Vec<aws_sdk_dynamodb::types::WriteRequest> = chunk
                .iter()
                .map(|key| {
                    let delete = aws_sdk_dynamodb::types::DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map_err(internal)?;
                    Ok(aws_sdk_dynamodb::types::WriteRequest::builder()
                        .delete_request(delete)
                        .build())
                })
                .collect::<Result<_>>()?;
            for _ in 0..5 {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchWriteItem", e))?;
                self.meter.record_write(output.consumed_capacity());
                requests = output
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
            }
            if !requests.is_empty() {
                return Err(Error::StoreUnavailable);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- verification

#[async_trait]
impl VerificationStore for DynamoStore {
    async fn complete_verification(&self, commit: &VerificationCommit) -> Result<ActionKey> {
        let tenant = &commit.tenant_id;
        let now = commit.now;
        if commit.single_use.expires_at() <= now {
            return Err(Error::ChallengeExpired);
        }
        let credential = &commit.credential;
        let method = enum_attr(&commit.method)?;

        // 1. The challenge, used now for the first time.
        let mark = self.use_once(tenant, &commit.single_use)?;

        // 2. The action: completed if still challengeable and retained, or created.
        let action_write = match &commit.action {
            ActionWrite::Complete(key) => {
                self.update(
                    item_key(user_pk(tenant, &key.user_id), action_sk(key)),
                    "SET #state = :succeeded, stateUpdatedAt = :now, verificationMethod = :method, verifiedBy = :by",
                    "attribute_exists(pk) AND expiresAt > :now AND #state IN (:allow, :required, :succeeded)",
                    &[("#state", "state")],
                    HashMap::from([
                        (":succeeded".to_owned(), s(ActionState::ChallengeSucceeded.as_str())),
                        (":allow".to_owned(), s(ActionState::Allow.as_str())),
                        (":required".to_owned(), s(ActionState::ChallengeRequired.as_str())),
                        (":now".to_owned(), n(now.0)),
                        (":method".to_owned(), method.clone()),
                        (":by".to_owned(), s(credential.id.as_str())),
                    ]),
                )?
            }
            ActionWrite::Create(action) => {
                let mut created = action.clone();
                created.state = ActionState::ChallengeSucceeded;
                created.state_updated_at = now;
                created.verification_method = Some(commit.method);
                created.verified_by_authenticator_id = Some(credential.id.clone());
                self.put(action_item(&created)?, Some("attribute_not_exists(pk)"))?
            }
        };

        // 3 and 4. Both copies of the credential: still registered, still this one.
        let touch = |pk: String, sk: String| {
            self.update(
                item_key(pk, sk),
                "SET lastVerifiedAt = :now",
                "credId = :id",
                &[],
                HashMap::from([
                    (":now".to_owned(), n(now.0)),
                    (":id".to_owned(), s(credential.id.as_str())),
                ]),
            )
        };
        let by_key = touch(
            key_pk(tenant, credential.namespace, &credential.key_fingerprint),
            "KEY".into(),
        )?;
        let by_user = touch(
            user_pk(tenant, &credential.user_id),
            format!("CRED#{}", credential.id),
        )?;

        match self
            .transact(vec![mark, action_write, by_key, by_user])
            .await?
        {
            Ok(()) => {}
            Err(reasons) => {
                let reason = |i: usize| reasons.get(i).filter(|r| failed(r));
                if reason(0).is_some() {
                    return Err(Error::ChallengeAlreadyUsed);
                }
                if let Some(r) = reason(1) {
                    return Err(match (r.item(), &commit.action) {
                        (Some(old), ActionWrite::Complete(_)) => {
                            let old = action_from(tenant, old)?;
                            if old.expires_at <= now {
                                Error::ActionNotFound
                            } else {
                                Error::ActionNotChallengeable(old.state.as_str())
                            }
                        }
                        (None, ActionWrite::Complete(_)) => Error::ActionNotFound,
                        (_, ActionWrite::Create(_)) => Error::Internal,
                    });
                }
                return Err(Error::InvalidCredential);
            }
        }
        Ok(match &commit.action {
            ActionWrite::Complete(key) => key.clone(),
            ActionWrite::Create(created) => created.key.clone(),
        })
    }

    async fn update_credential_once(&self, update: &CredentialUpdate) -> Result<()> {
        if update.challenge.expires_at() <= update.now {
            return Err(Error::ChallengeExpired);
        }
        let mark = self.use_once(&update.tenant_id, &update.challenge)?;
        let [by_key, by_user] = self.replace_credential(&update.credential)?;
        match self.transact(vec![mark, by_key, by_user]).await? {
            Ok(()) => Ok(()),
            Err(reasons) if reasons.first().is_some_and(failed) => Err(Error::ChallengeAlreadyUsed),
            Err(_) => Err(Error::InvalidCredential),
        }
    }
}

impl DynamoStore {
    /// The transaction item that uses a challenge once (see [`SingleUse`]).
    fn use_once(&self, tenant: &TenantId, single_use: &SingleUse) -> Result<TransactWriteItem> {
        match single_use {
            SingleUse::Mark {
                challenge_id,
                expires_at,
            } => self.update(
                item_key(mark_pk(tenant, challenge_id), "MARK"),
                "SET #consumed = :true, failedAttempts = if_not_exists(failedAttempts, :zero), expiresAt = :exp, #ttl = :ttl",
                // Failed attempts do not stop the right signature (DESIGN 6).
                "attribute_not_exists(pk) OR #consumed = :false",
                &[("#ttl", schema::TTL_ATTRIBUTE), ("#consumed", "consumed")],
                HashMap::from([
                    (":true".to_owned(), AttributeValue::Bool(true)),
                    (":false".to_owned(), AttributeValue::Bool(false)),
                    (":zero".to_owned(), n(0)),
                    (":exp".to_owned(), n(expires_at.0)),
                    (":ttl".to_owned(), n(expires_at.unix_seconds())),
                ]),
            ),
            SingleUse::Approval { approved } => {
                let (condition, values) =
                    version_condition(approved.version.checked_sub(1))?;
                self.put_if(approval_item(approved)?, Some(condition), values)
            }
        }
    }

    /// Both copies of a credential replaced by `new`, if still registered under its id.
    fn replace_credential(&self, new: &Credential) -> Result<[TransactWriteItem; 2]> {
        let condition = "credId = :id";
        let values = || HashMap::from([(":id".to_owned(), s(new.id.as_str()))]);
        let tenant = &new.tenant_id;
        Ok([
            self.put_if(
                credential_item(
                    new,
                    key_pk(tenant, new.namespace, &new.key_fingerprint),
                    "KEY".into(),
                ),
                Some(condition),
                values(),
            )?,
            self.put_if(
                credential_item(
                    new,
                    user_pk(tenant, &new.user_id),
                    format!("CRED#{}", new.id),
                ),
                Some(condition),
                values(),
            )?,
        ])
    }
}

#[async_trait]
impl ApprovalStore for DynamoStore {
    async fn get_approval(
        &self,
        tenant: &TenantId,
        slot: &ApprovalSlot,
    ) -> Result<Option<ApprovalChallenge>> {
        let key = approval_key(tenant, slot);
        let pk = get_s(&key, schema::PARTITION_KEY)?;
        let sk = get_s(&key, schema::SORT_KEY)?;
        self.get_item(pk, &sk)
            .await?
            .map(|item| from_json_attr(&item, "data"))
            .transpose()
    }

    async fn put_approval(
        &self,
        next: &ApprovalChallenge,
        expected_version: Option<u64>,
    ) -> Result<bool> {
        let (condition, values) = version_condition(expected_version)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(approval_item(next)?))
            .condition_expression(condition)
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.meter.record_write(one(output.consumed_capacity()));
                Ok(true)
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(sdk_error("PutItem", error)),
        }
    }
}

// ---------------------------------------------------------------- a local server for tests

/// A real DynamoDB-compatible server for tests: dynoxide's HTTP server, embedded, on a free
/// loopback port, over an in-memory database. It speaks the DynamoDB wire protocol, so the
/// adapter is exercised exactly as against AWS; it can be stopped and restarted on the same
/// port with its data, to test outages.
#[cfg(any(test, feature = "test-support"))]
pub mod local {
    use std::net::SocketAddr;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    pub struct LocalDynamo {
        db: dynoxide::Database,
        addr: SocketAddr,
        running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    }

    impl LocalDynamo {
        pub async fn start() -> LocalDynamo {
            let db = dynoxide::Database::memory().expect("an in-memory dynoxide database");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a free port");
            let addr = listener.local_addr().expect("a bound address");
            let mut local = LocalDynamo {
                db,
                addr,
                running: None,
            };
            local.serve(listener);
            local
        }

        fn serve(&mut self, listener: tokio::net::TcpListener) {
            let (tx, rx) = oneshot::channel::<()>();
            let task = tokio::spawn(dynoxide::server::serve_with_shutdown(
                listener,
                self.db.clone(),
                async {
                    let _ = rx.await;
                },
            ));
            let task = tokio::spawn(async move {
                let _ = task.await;
            });
            self.running = Some((tx, task));
        }

        /// The endpoint URL to give the AWS SDK.
        pub fn endpoint(&self) -> String {
            format!("http://{}", self.addr)
        }

        /// Stops serving; the data stays.
        pub async fn stop(&mut self) {
            if let Some((tx, task)) = self.running.take() {
                let _ = tx.send(());
                let _ = task.await;
            }
        }

        /// Serves the same data on the same port again.
        pub async fn restart(&mut self) {
            self.stop().await;
            let listener = tokio::net::TcpListener::bind(self.addr)
                .await
                .expect("the same port again");
            self.serve(listener);
        }
    }

    impl LocalDynamo {
        /// A fresh table on this server, named after `prefix`, in which `tenant` holds
        /// `secret`: what a Lambda function's binary needs before its first event (the
        /// bootstrap, Lambda conformance and init-time tests).
        pub async fn table_with_tenant(&self, prefix: &str, tenant: &str, secret: &str) -> String {
            use crate::usecase::tenants::ApiSecret;
            use std::sync::Arc;
            let table = unique_table(prefix);
            let meter = super::UsageMeter::default();
            let config = super::DynamoConfig {
                endpoint_url: Some(self.endpoint()),
            };
            let client = super::client(&config, meter.clone()).await;
            super::create_table(&client, &table)
                .await
                .expect("a table on the local server");
            let app = crate::App::new(
                crate::Ports {
                    store: Arc::new(super::DynamoStore::new(client, &table, meter)),
                    clock: Arc::new(crate::clock::SystemClock),
                    notifier: Arc::new(crate::webhook::WebhookNotifier::for_settings(
                        &crate::config::Settings::default(),
                    )),
                },
                crate::config::Settings::default(),
            );
            app.ensure_tenant(
                &crate::domain::TenantId::parse(tenant).expect("a valid tenant id"),
                &ApiSecret::parse(secret).expect("a valid secret"),
            )
            .await
            .expect("the tenant stored");
            table
        }
    }

    /// A table name no other test uses.
    pub fn unique_table(prefix: &str) -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::local::{LocalDynamo, unique_table};
    use super::*;

    #[test]
    fn an_approval_item_lives_until_its_retention_not_its_expiry() {
        use crate::domain::ApprovalKind;
        let tenant = TenantId::parse("t").unwrap();
        let user = UserId::parse("alice").unwrap();
        let push = crate::store::conformance::approval(&tenant, Some(&user), ApprovalKind::Push);
        let item = approval_item(&push).unwrap();
        assert_eq!(
            get_n(&item, schema::TTL_ATTRIBUTE).unwrap(),
            push.retain_until.unix_seconds()
        );
        assert_ne!(push.retain_until, push.expires_at);
    }

    async fn store(local: &LocalDynamo) -> (DynamoStore, UsageMeter) {
        let counter = UsageMeter::default();
        let client = client(
            &DynamoConfig {
                endpoint_url: Some(local.endpoint()),
            },
            counter.clone(),
        )
        .await;
        let table = unique_table("conformance");
        assert!(create_table(&client, &table).await.unwrap());
        counter.take();
        (DynamoStore::new(client, table, counter.clone()), counter)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_against_a_dynamodb_compatible_server() {
        let local = LocalDynamo::start().await;
        let (store, _) = store(&local).await;
        crate::store::conformance::run_all(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn create_table_is_idempotent_and_enables_ttl() {
        let local = LocalDynamo::start().await;
        let client = client(
            &DynamoConfig {
                endpoint_url: Some(local.endpoint()),
            },
            UsageMeter::default(),
        )
        .await;
        let table = unique_table("schema");
        assert!(create_table(&client, &table).await.unwrap());
        assert!(!create_table(&client, &table).await.unwrap());
        let ttl = client
            .describe_time_to_live()
            .table_name(&table)
            .send()
            .await
            .unwrap();
        let description = ttl.time_to_live_description().unwrap();
        assert_eq!(description.attribute_name(), Some(schema::TTL_ATTRIBUTE));
        let table = client
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .unwrap();
        let table = table.table().unwrap();
        let keys: Vec<(&str, &str)> = table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type().as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![(schema::PARTITION_KEY, "HASH"), (schema::SORT_KEY, "RANGE")]
        );
        assert!(table.global_secondary_indexes().is_empty());
    }
}
