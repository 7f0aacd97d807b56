//! Attribute values: the item type and the typed reads and writes of one attribute. The bottom
//! of the module: it imports nothing of its siblings, so keys, errors and the item mapping can
//! all use it without a circle.

use crate::error::Error;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub(super) type Item = HashMap<String, AttributeValue>;

// ---------------------------------------------------------------- attribute helpers

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn get_s(item: &Item, name: &str) -> Result<String, Error> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(corrupt(name)),
    }
}

pub(super) fn get_opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    }
}

pub(super) fn get_n(item: &Item, name: &str) -> Result<i64, Error> {
    get_opt_n(item, name).ok_or_else(|| corrupt(name))
}

pub(super) fn get_opt_n(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().ok(),
        _ => None,
    }
}

pub(super) fn corrupt(attribute: &str) -> Error {
    tracing::error!(attribute, "corrupt item in the dynamodb table");
    Error::Internal
}
