//! The usage meter: what DynamoDB was asked to do, the running cost of the service.

use aws_sdk_dynamodb::types::{ConsumedCapacity, TransactWriteItem};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

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
    /// Every item each request named, in order, when the meter was made with
    /// [`UsageMeter::recording_items`] (empty otherwise): the request log that
    /// docs/scaling.md's per-partition model is computed from.
    pub items: Vec<ItemAccess>,
}

/// One item a request read or wrote (or, for a `Query`, the partition it read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemAccess {
    pub operation: String,
    /// The item's partition key (`pk`).
    pub partition: String,
    pub write: bool,
    /// Inside a `TransactWriteItems`: twice the write units of a plain write.
    pub transactional: bool,
}

/// The items a request body names: `(partition, write, transactional)` for each.
fn accessed_items(operation: &str, body: &serde_json::Value) -> Vec<(String, bool, bool)> {
    let pk = |item: &serde_json::Value| item["pk"]["S"].as_str().map(str::to_owned);
    let mut out = Vec::new();
    match operation {
        "GetItem" => out.extend(pk(&body["Key"]).map(|p| (p, false, false))),
        "UpdateItem" | "DeleteItem" => out.extend(pk(&body["Key"]).map(|p| (p, true, false))),
        "PutItem" => out.extend(pk(&body["Item"]).map(|p| (p, true, false))),
        "Query" => out.extend(
            body["ExpressionAttributeValues"][":pk"]["S"]
                .as_str()
                .map(|p| (p.to_owned(), false, false)),
        ),
        "BatchGetItem" => {
            for table in body["RequestItems"].as_object().into_iter().flatten() {
                for key in table.1["Keys"].as_array().into_iter().flatten() {
                    out.extend(pk(key).map(|p| (p, false, false)));
                }
            }
        }
        "BatchWriteItem" => {
            for table in body["RequestItems"].as_object().into_iter().flatten() {
                for request in table.1.as_array().into_iter().flatten() {
                    let item = if request["PutRequest"].is_object() {
                        &request["PutRequest"]["Item"]
                    } else {
                        &request["DeleteRequest"]["Key"]
                    };
                    out.extend(pk(item).map(|p| (p, true, false)));
                }
            }
        }
        "TransactWriteItems" => {
            for item in body["TransactItems"].as_array().into_iter().flatten() {
                let named = ["Put", "Update", "Delete", "ConditionCheck"]
                    .into_iter()
                    .find_map(|kind| {
                        let action = &item[kind];
                        pk(&action["Item"]).or_else(|| pk(&action["Key"]))
                    });
                out.extend(named.map(|p| (p, true, true)));
            }
        }
        _ => {}
    }
    out
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
pub struct UsageMeter(Arc<Mutex<Usage>>, bool);

impl UsageMeter {
    /// A meter that also logs every item each request names ([`Usage::items`]): for the
    /// scaling model's tests, not for serving (it parses each request body).
    pub fn recording_items() -> UsageMeter {
        UsageMeter(Arc::default(), true)
    }

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

    pub(super) fn record_transaction_items(&self, items: &[TransactWriteItem]) {
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

    pub(super) fn record_read(&self, capacity: Option<&ConsumedCapacity>) {
        if let Some(c) = capacity {
            self.usage().read_units += c
                .read_capacity_units()
                .or(c.capacity_units())
                .unwrap_or(0.0);
        }
    }

    pub(super) fn record_write(&self, capacity: &[ConsumedCapacity]) {
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
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map_or("unknown", |m| m.name())
            .to_owned();
        let accessed = if self.1 {
            let body = context
                .request()
                .body()
                .bytes()
                .and_then(|bytes| serde_json::from_slice(bytes).ok())
                .unwrap_or_default();
            accessed_items(&operation, &body)
        } else {
            Vec::new()
        };
        let mut usage = self.usage();
        usage.items.extend(
            accessed
                .into_iter()
                .map(|(partition, write, transactional)| ItemAccess {
                    operation: operation.clone(),
                    partition,
                    write,
                    transactional,
                }),
        );
        *usage.requests.entry(operation).or_default() += 1;
        Ok(())
    }
}
