//! Unit tests of the item mapping (the adapter against a DynamoDB-compatible server, and the
//! conformance suite on it, are in `testkit/tests/conformance.rs`).

use super::item::{approval_item, get_n};
use super::schema;
use crate::domain::{TenantId, UserId};

#[test]
fn an_approval_item_lives_until_its_retention_not_its_expiry() {
    use crate::domain::ApprovalKind;
    let tenant = TenantId::parse("t").unwrap();
    let user = UserId::parse("alice").unwrap();
    let push = crate::store::samples::approval(&tenant, Some(&user), ApprovalKind::Push);
    let item = approval_item(&push).unwrap();
    assert_eq!(
        get_n(&item, schema::TTL_ATTRIBUTE).unwrap(),
        push.retain_until.unix_seconds()
    );
    assert_ne!(push.retain_until, push.expires_at);
}
