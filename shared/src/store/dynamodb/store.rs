//! The adapter's struct and the request builders every store trait implementation shares.

use super::error::{failed, internal, sdk_error};
use super::item::{Item, n, s};
use super::keys::Key;
use super::meter::UsageMeter;
use crate::clock::Timestamp;
use crate::domain::{Credential, TenantId, UserId, VerificationMethod};
use crate::error::Result;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, ConsumedCapacity, Delete, Put,
    ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use std::collections::HashMap;

/// The attribute of the enrolment item holding the ids of a user's authenticators of
/// `method` (a string set; absent when empty).
pub(super) fn enrolment_set(method: VerificationMethod) -> &'static str {
    match method {
        VerificationMethod::Device => "deviceIds",
        VerificationMethod::Push => "pushIds",
        VerificationMethod::Passkey => "passkeyIds",
    }
}

/// The attribute of the enrolment item holding when the credential `id` was last verified
/// (a number; set by every verification and approval, removed with the credential). Kept
/// there rather than on the credential's two copies so that a verify writes one item for the
/// credential instead of two (docs/dynamodb.md, "The verify transaction").
pub(super) fn last_verified_attribute(id: &str) -> String {
    format!("lastVerifiedAt#{id}")
}

/// The attribute of the enrolment item holding the [`ChallengeOrder`] of the user's last
/// used in-app challenge (a string).
///
/// [`ChallengeOrder`]: crate::domain::ChallengeOrder
pub(super) const LAST_CHALLENGE_ATTRIBUTE: &str = "lastChallenge";

/// `credentials` with the verification times kept on their user's enrolment item: the later
/// of that and the copy's own (which a push credential update writes).
pub(super) fn with_last_verified(credentials: &mut [Credential], enrolment: Option<&Item>) {
    let Some(enrolment) = enrolment else { return };
    for credential in credentials {
        let kept = match enrolment.get(&last_verified_attribute(credential.id.as_str())) {
            Some(AttributeValue::N(at)) => at.parse().ok().map(Timestamp),
            _ => None,
        };
        credential.last_verified_at = credential.last_verified_at.max(kept);
    }
}

/// Which sort keys of a partition a query reads.
pub(super) enum SortKeys<'a> {
    /// The whole partition.
    All,
    /// Those that start with this prefix.
    Prefix(&'a str),
    /// Those from the first to the second, both included.
    Between(&'a str, &'a str),
}

/// The DynamoDB adapter of every store trait.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    pub(super) client: Client,
    pub(super) table: String,
    pub(super) meter: UsageMeter,
}

impl DynamoStore {
    /// `meter` should be the one given to [`super::client`], so requests and capacity add up.
    pub fn new(client: Client, table: impl Into<String>, meter: UsageMeter) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            meter,
        }
    }

    /// Writes `item`, replacing whatever had its key.
    pub(super) async fn put_unconditionally(&self, item: Item) -> Result<()> {
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

    pub(super) async fn get_item(&self, key: &Key) -> Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.item()))
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
    pub(super) async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<Item>> {
        let keys = if prefix.is_empty() {
            SortKeys::All
        } else {
            SortKeys::Prefix(prefix)
        };
        self.query(pk, keys).await
    }

    /// The items of a partition that `keys` selects, strongly consistent, every page.
    pub(super) async fn query(&self, pk: String, keys: SortKeys<'_>) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(pk.clone()));
            // DynamoDB refuses an empty string as a key condition value, so the whole
            // partition is asked for with the partition key alone.
            let query = match keys {
                SortKeys::All => query.key_condition_expression("pk = :pk"),
                SortKeys::Prefix(prefix) => query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                SortKeys::Between(from, to) => query
                    .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                    .expression_attribute_values(":from", s(from))
                    .expression_attribute_values(":to", s(to)),
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
    pub(super) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<std::result::Result<(), Vec<CancellationReason>>> {
        // A transaction cancelled without a failed condition, by a conflict with another one
        // on the same item (two verifies of one user both write their enrolment item) or by
        // throttling, changed nothing: sent again a little later its conditions are checked
        // afresh, so it is retried twice before it becomes a 503 (a retry later can succeed;
        // it is no bug, so never a 500).
        const ATTEMPTS: u32 = 3;
        const TRANSIENT: [&str; 3] = [
            "TransactionConflict",
            "ThrottlingError",
            "ProvisionedThroughputExceeded",
        ];
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.meter.record_transaction_items(&items);
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
            {
                Ok(output) => {
                    self.meter.record_write(output.consumed_capacity());
                    return Ok(Ok(()));
                }
                Err(error) => {
                    if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                        error.as_service_error()
                    {
                        let reasons = cancelled.cancellation_reasons().to_vec();
                        // Cancelled by a condition: the caller decides.
                        if reasons.iter().any(failed) {
                            return Ok(Err(reasons));
                        }
                        // Transient only if every item was cancelled for a transient reason
                        // or for none ("None": another item's failure cancelled it): a
                        // `ValidationError` next to a conflict is a bug, and stays a 500.
                        let transient = reasons.iter().any(|r| {
                            r.code().is_some_and(|code| TRANSIENT.contains(&code))
                        }) && reasons.iter().all(|r| {
                            r.code()
                                .is_none_or(|code| code == "None" || TRANSIENT.contains(&code))
                        });
                        if transient && attempt < ATTEMPTS {
                            tokio::time::sleep(std::time::Duration::from_millis(
                                10 << attempt,
                            ))
                            .await;
                            continue;
                        }
                        if transient {
                            let codes: Vec<&str> =
                                reasons.iter().filter_map(CancellationReason::code).collect();
                            tracing::warn!(
                                operation = "TransactWriteItems",
                                attempts = ATTEMPTS,
                                ?codes,
                                "dynamodb unavailable: the transaction was cancelled each time"
                            );
                            crate::metric::store_error(
                                crate::metric::StoreKind::DynamoDb,
                                &crate::error::Error::StoreUnavailable,
                            );
                            return Err(crate::error::Error::StoreUnavailable);
                        }
                    }
                    return Err(sdk_error("TransactWriteItems", error));
                }
            }
        }
    }

    pub(super) fn put(&self, item: Item, condition: Option<&str>) -> Result<TransactWriteItem> {
        self.put_if(item, condition, Item::new())
    }

    pub(super) fn put_if(
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

    pub(super) fn delete(
        &self,
        key: &Key,
        condition: Option<(&str, Item)>,
    ) -> Result<TransactWriteItem> {
        let (expression, values) = match condition {
            Some((expression, values)) => (
                Some(expression.to_owned()),
                (!values.is_empty()).then_some(values),
            ),
            None => (None, None),
        };
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key.item()))
            .set_condition_expression(expression)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    pub(super) fn condition_check(
        &self,
        key: &Key,
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
            .set_key(Some(key.item()))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// The user's enrolment item moved in a transaction: its counter (`credentials`) by
    /// `delta`, and the authenticator's id added to (`delta > 0`) or removed from the set of
    /// its method (`deviceIds`, `pushIds`, `passkeyIds`), which track reads to know the user's
    /// methods in the same request as the rules configs (DESIGN 4). Sets, not counters: adding
    /// or removing an id twice changes nothing, so a removal racing a user's deletion cannot
    /// leave a count that disagrees with the credentials. With `only_if_none`, the
    /// transaction fails unless the user has no credential: what makes a scopeless token's
    /// first credential the only one (issue #11.7). A user enrolled before the counter existed
    /// has none (or a negative one after a removal); the use case's own read of the
    /// credentials covers them.
    pub(super) fn count_enrolment(
        &self,
        tenant: &TenantId,
        user: &UserId,
        delta: i64,
        only_if_none: bool,
        member: (VerificationMethod, &str),
    ) -> Result<TransactWriteItem> {
        let (method, id) = member;
        let mut values = HashMap::from([
            (":delta".to_owned(), n(delta)),
            (":id".to_owned(), AttributeValue::Ss(vec![id.to_owned()])),
        ]);
        let condition = if only_if_none {
            values.insert(":zero".to_owned(), n(0));
            Some("attribute_not_exists(credentials) OR credentials <= :zero".to_owned())
        } else {
            None
        };
        let (expression, names) = if delta > 0 {
            ("ADD credentials :delta, #set :id", vec![])
        } else {
            // The removed authenticator's verification time goes with it.
            (
                "ADD credentials :delta DELETE #set :id REMOVE #lastVerified",
                vec![("#lastVerified".to_owned(), last_verified_attribute(id))],
            )
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Key::enrolment(tenant, user).item()))
            .update_expression(expression)
            .set_condition_expression(condition)
            .set_expression_attribute_names(Some(
                names
                    .into_iter()
                    .chain([("#set".to_owned(), enrolment_set(method).to_owned())])
                    .collect(),
            ))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    pub(super) fn update(
        &self,
        key: &Key,
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
            .set_key(Some(key.item()))
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
pub(super) fn one(capacity: Option<&ConsumedCapacity>) -> &[ConsumedCapacity] {
    capacity.map(std::slice::from_ref).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    //! [`DynamoStore::transact`]'s retry of a transaction cancelled by a conflict, against an
    //! HTTP endpoint that answers with DynamoDB's own error bodies, in the order given. A
    //! conflict cannot be made to happen on demand in an emulator: two transactions must
    //! overlap on an item inside the server.

    use super::*;
    use crate::error::Error;
    use std::sync::{Arc, Mutex};

    const CONFLICT: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]","CancellationReasons":[{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#;
    const CONDITION_FAILED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed]","CancellationReasons":[{"Code":"ConditionalCheckFailed","Message":"The conditional request failed"}]}"#;
    const THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [ThrottlingError]","CancellationReasons":[{"Code":"ThrottlingError","Message":"Throughput exceeds the current capacity for one or more global secondary indexes"}]}"#;
    const CONFLICT_AND_INVALID: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict, ValidationError]","CancellationReasons":[{"Code":"None"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"},{"Code":"ValidationError","Message":"Item size has exceeded the maximum allowed size"}]}"#;
    const OVER_CAPACITY: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, ProvisionedThroughputExceeded]","CancellationReasons":[{"Code":"None"},{"Code":"ProvisionedThroughputExceeded","Message":"The level of configured provisioned throughput for the table was exceeded"}]}"#;
    const SUCCESS: &str = "{}";

    /// Serves `answers` one per request (400 for an error body, 200 for `{}`) and counts the
    /// requests; returns the store pointed at it and the count.
    async fn store_answering(answers: &[&'static str]) -> (DynamoStore, Arc<Mutex<usize>>) {
        let queue = Arc::new(Mutex::new(answers.to_vec()));
        let requests = Arc::new(Mutex::new(0));
        let app = axum::Router::new().fallback({
            let requests = requests.clone();
            move || async move {
                *requests.lock().unwrap() += 1;
                let answer = {
                    let mut queue = queue.lock().unwrap();
                    if queue.is_empty() {
                        SUCCESS
                    } else {
                        queue.remove(0)
                    }
                };
                let status = if answer == SUCCESS { 200 } else { 400 };
                axum::response::Response::builder()
                    .status(status)
                    .header("content-type", "application/x-amz-json-1.0")
                    .body(axum::body::Body::from(answer))
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let meter = UsageMeter::default();
        let config = super::super::DynamoConfig {
            endpoint_url: Some(url),
        };
        let client = super::super::client(&config, meter.clone()).await;
        (DynamoStore::new(client, "t", meter), requests)
    }

    fn one_put(store: &DynamoStore) -> Vec<TransactWriteItem> {
        let item = Item::from([("pk".to_owned(), s("a")), ("sk".to_owned(), s("b"))]);
        vec![store.put(item, None).unwrap()]
    }

    #[tokio::test]
    async fn a_transaction_cancelled_by_a_conflict_or_throttling_is_sent_again() {
        let (store, requests) = store_answering(&[CONFLICT, THROTTLED]).await;
        let outcome = store.transact(one_put(&store)).await;
        assert!(matches!(outcome, Ok(Ok(()))), "{outcome:?}");
        assert_eq!(
            *requests.lock().unwrap(),
            3,
            "twice cancelled, then written"
        );
    }

    #[tokio::test]
    async fn a_conflict_that_outlasts_the_retries_is_unavailable() {
        let (store, requests) = store_answering(&[CONFLICT, CONFLICT, CONFLICT, SUCCESS]).await;
        let outcome = store.transact(one_put(&store)).await;
        assert!(
            matches!(outcome, Err(Error::StoreUnavailable)),
            "{outcome:?}"
        );
        assert_eq!(*requests.lock().unwrap(), 3, "three attempts, no fourth");
    }

    /// Over capacity next to an item cancelled for no reason of its own: retried, then 503.
    #[tokio::test]
    async fn a_transaction_over_capacity_is_retried_then_unavailable() {
        let (store, requests) =
            store_answering(&[OVER_CAPACITY, OVER_CAPACITY, OVER_CAPACITY]).await;
        let outcome = store.transact(one_put(&store)).await;
        assert!(
            matches!(outcome, Err(Error::StoreUnavailable)),
            "{outcome:?}"
        );
        assert_eq!(*requests.lock().unwrap(), 3);
    }

    /// A reason that is neither a failed condition nor transient (a bug of ours, such as an
    /// item too large) is not retried because another item conflicted: 500 at once.
    #[tokio::test]
    async fn a_conflict_next_to_an_invalid_item_is_not_retried() {
        let (store, requests) = store_answering(&[CONFLICT_AND_INVALID]).await;
        let outcome = store.transact(one_put(&store)).await;
        assert!(matches!(outcome, Err(Error::Internal)), "{outcome:?}");
        assert_eq!(*requests.lock().unwrap(), 1);
    }

    /// A failed condition is the caller's answer (a 4xx), never retried.
    #[tokio::test]
    async fn a_failed_condition_is_returned_at_once() {
        let (store, requests) = store_answering(&[CONDITION_FAILED]).await;
        let outcome = store.transact(one_put(&store)).await;
        let reasons = match outcome {
            Ok(Err(reasons)) => reasons,
            other => panic!("{other:?}"),
        };
        assert_eq!(reasons[0].code(), Some("ConditionalCheckFailed"));
        assert_eq!(*requests.lock().unwrap(), 1);
    }
}
