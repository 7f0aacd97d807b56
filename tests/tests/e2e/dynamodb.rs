//! The server on the DynamoDB store, through a real DynamoDB-compatible server: what a flow
//! costs in requests, and what an outage does.

use e2e_tests::{Auth, Device, Harness, StoreKind, jwt_payload};
use serde_json::json;
use shared::domain::{
    ActionCode, ActionKey, ActionState, IdempotencyKey, Namespace, TenantId, UserId,
};
use shared::signature::PublicKey;
use shared::store::dynamodb::Usage;
use shared::store::{ActionStore, CredentialStore};

fn total(usage: &Usage) -> u64 {
    usage.total_requests()
}

/// The request counts written down in docs/dynamodb.md. A change that adds a request to a flow
/// fails here, and the docs must say why.
#[tokio::test]
async fn dynamodb_requests_per_flow() {
    let h = Harness::start_on(StoreKind::DynamoDb).await;
    let requests = &h.dynamo.as_ref().unwrap().requests;
    // Warm the tenant cache, as any running server is after its first request. That first
    // track is a cold process's: the secret key resolves with one GetItem, the index entry
    // carrying its tenant (issue #18: cold init).
    requests.take();
    h.track(&h.a, "warm-up", "signIn", json!({})).await;
    let cold_track = requests.take();
    assert_eq!(
        cold_track.requests,
        [("BatchGetItem", 1), ("GetItem", 1), ("PutItem", 1)]
            .map(|(operation, count)| (operation.to_owned(), count))
            .into(),
        "the secret's index entry with its tenant, then the track itself"
    );

    let device = Device::new();
    h.register(&h.a, "alice", &device).await;
    let registration = requests.take();
    eprintln!("registration: {registration:?}");

    let tracked = h.track(&h.a, "alice", "signIn", json!({})).await;
    let track = requests.take();
    let challenge_id = h.challenge(&h.a, json!({})).await;
    let challenge = requests.take();
    let verified = h
        .verify(
            Auth::Bearer(tracked["token"].as_str().unwrap()),
            &device,
            &challenge_id,
        )
        .await
        .expect(200);
    let verify = requests.take();
    let validated = h.validate(&h.a, json!({"token": verified["token"]})).await;
    assert_eq!(validated["isValid"], true);
    let validate = requests.take();
    eprintln!(
        "track: {track:?}\nchallenge: {challenge:?}\nverify: {verify:?}\nvalidate: {validate:?}"
    );

    assert_eq!(
        total(&track),
        2,
        "BatchGetItem (configs + the user's enrolment) + PutItem action"
    );
    assert_eq!(track.requests["BatchGetItem"], 1);
    assert_eq!(total(&challenge), 0, "challenges are sealed, not stored");
    assert_eq!(total(&verify), 2, "GetItem credential + TransactWriteItems");
    assert_eq!(total(&validate), 1, "GetItem action");
    let full_flow = total(&track) + total(&challenge) + total(&verify) + total(&validate);
    // Issue #18: at most 5 with rules on, a config change still applying to the next track.
    assert_eq!(
        full_flow, 5,
        "a full in-app flow costs {full_flow} requests"
    );
    // ... and the capacity: 5 read units (as with 6 requests before), and 5 write units
    // (9 before the verify transaction kept single use and the credential's verification
    // time on the user's enrolment item: 2 transactional items instead of 4).
    let units = |f: fn(&Usage) -> f64| f(&track) + f(&challenge) + f(&verify) + f(&validate);
    let (read_units, write_units) = (units(|u| u.read_units), units(|u| u.write_units));
    eprintln!("full in-app flow: {read_units} read units, {write_units} write units");
    assert_eq!(read_units, 5.0, "read units");
    assert_eq!(
        verify.write_units, 4.0,
        "verify: 2 transactional items, 2 units each"
    );
    assert_eq!(write_units, 5.0, "write units");
    assert_eq!(
        total(&registration),
        6,
        "track (BatchGetItem + PutItem), add (GetItem key, GetItem action, Query credentials, TransactWriteItems)"
    );

    // A rule that reads the user's history costs no extra request: the one Query reads the
    // user's whole partition instead of only the credentials.
    h.send(
        reqwest::Method::PUT,
        "/action-configs/signIn",
        Auth::Secret(&h.a.secret),
        Some(
            &json!({"rules": [{"ruleId": "new-device", "name": "New device", "type": "BLOCK",
            "conditions": {"var": "device.isNew"}}]}),
        ),
    )
    .await
    .expect(200);
    requests.take();
    let blocked = h
        .track(&h.a, "alice", "signIn", json!({"deviceId": "never-seen"}))
        .await;
    assert_eq!(blocked["state"], "BLOCK");
    let with_history = requests.take();
    eprintln!("track with a history rule: {with_history:?}");
    assert_eq!(
        total(&with_history),
        3,
        "BatchGetItem configs + Query user partition + PutItem action"
    );
}

#[tokio::test]
async fn an_outage_gives_503s_and_leaves_nothing_half_written() {
    let mut h = Harness::start_on(StoreKind::DynamoDb).await;
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;
    let tracked = h.track(&h.a, "alice", "signIn", json!({})).await;
    let token = tracked["token"].as_str().unwrap().to_owned();
    let challenge_id = h.challenge(&h.a, json!({})).await;

    h.dynamo.as_mut().unwrap().local.stop().await;
    h.verify(Auth::Bearer(&token), &device, &challenge_id)
        .await
        .expect_error(503, "service_unavailable");
    h.post(
        "/validate",
        Auth::Secret(&h.a.secret),
        json!({"token": token}),
    )
    .await
    .expect_error(503, "service_unavailable");
    h.post(
        "/users/alice/actions/signIn",
        Auth::Secret(&h.a.secret),
        json!({}),
    )
    .await
    .expect_error(503, "service_unavailable");
    h.dynamo.as_mut().unwrap().local.restart().await;

    // Nothing of the failed verify was written: read the items themselves.
    let store = &h.dynamo.as_ref().unwrap().store;
    let tenant = TenantId::parse(h.a.id.clone()).unwrap();
    let claims = jwt_payload(&token);
    let key = ActionKey {
        user_id: UserId::parse("alice").unwrap(),
        action_code: ActionCode::parse("signIn").unwrap(),
        idempotency_key: IdempotencyKey::parse(claims["other"]["idempotencyKey"].as_str().unwrap())
            .unwrap(),
    };
    let action = store.get_action(&tenant, &key).await.unwrap().unwrap();
    assert_eq!(action.state, ActionState::ChallengeRequired);
    let public_key = PublicKey::from_base64(&device.public_key).unwrap();
    let credential = store
        .get_credential(&tenant, Namespace::InApp, &public_key.fingerprint())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.last_verified_at, None);

    // The same challenge still works once DynamoDB is back: it was never marked used.
    let verified = h
        .verify(Auth::Bearer(&token), &device, &challenge_id)
        .await
        .expect(200);
    let validated = h.validate(&h.a, json!({"token": verified["token"]})).await;
    assert_eq!(validated["isValid"], true);
}

/// What push and QR-code approval cost, step by step (docs/dynamodb.md). A change that adds a
/// request to one of these steps fails here.
#[tokio::test]
async fn dynamodb_requests_per_push_and_qr_code_flow() {
    let h = Harness::start_on(StoreKind::DynamoDb).await;
    let requests = &h.dynamo.as_ref().unwrap().requests;
    h.track(&h.a, "warm-up", "signIn", json!({})).await;
    let tenant_basic = || Auth::TenantAndroid(&h.a.id);

    // Push (spec 6.3).
    let phone = Device::in_namespace("push");
    let push_phone = &phone;
    h.register(&h.a, "alice", &phone).await;
    let tracked = h.track(&h.a, "alice", "signIn", json!({})).await;
    let token = tracked["token"].as_str().unwrap();
    requests.take();
    let started = h
        .post("/client/challenge/push", Auth::Bearer(token), json!({}))
        .await
        .expect(200);
    let id = started["challengeId"].as_str().unwrap();
    let start = requests.take();
    let pending = h
        .get(
            &format!(
                "/client/user-authenticators/push/challenge?publicKey={}",
                phone.query_android()
            ),
            tenant_basic(),
        )
        .await
        .expect(200);
    assert_eq!(pending["challengeId"], id);
    let read = requests.take();
    let answered = h
        .post(
            "/client/user-authenticators/push/challenge",
            tenant_basic(),
            json!({"challengeId": id, "publicKey": phone.public_key, "signature": phone.sign(id), "approved": true}),
        )
        .await
        .expect(200);
    assert_eq!(answered["isVerified"], true);
    let answer = requests.take();
    let polled = h
        .post(
            "/client/verify/push",
            Auth::Bearer(token),
            json!({"challengeId": id}),
        )
        .await
        .expect(200);
    let poll = requests.take();
    let validated = h
        .validate(&h.a, json!({"token": polled["accessToken"]}))
        .await;
    assert_eq!(validated["verificationMethod"], "PUSH");
    eprintln!("push start: {start:?}\nread: {read:?}\nanswer: {answer:?}\npoll: {poll:?}");
    assert_eq!(
        total(&start),
        4,
        "GetItem action, Query credentials, GetItem push slot, PutItem push slot"
    );
    assert_eq!(total(&read), 2, "GetItem credential, GetItem push slot");
    assert_eq!(
        total(&answer),
        3,
        "GetItem credential, GetItem push slot, TransactWriteItems"
    );
    assert_eq!(
        total(&poll),
        2,
        "GetItem push slot, PutItem (token handed out)"
    );

    // QR code (spec 6.4), an anonymous kiosk.
    let scanner = Device::in_namespace("qr-code");
    h.register(&h.a, "bob", &scanner).await;
    requests.take();
    let started = h
        .post(
            "/client/challenge/qr-code",
            tenant_basic(),
            json!({"action": "kioskSignIn"}),
        )
        .await
        .expect(200);
    let id = started["challengeId"].as_str().unwrap();
    let device_code = started["deviceCode"].as_str().unwrap();
    let start = requests.take();
    let signed =
        json!({"challengeId": id, "publicKey": scanner.public_key, "signature": scanner.sign(id)});
    h.post(
        "/client/user-authenticators/qr-code/challenge/claim",
        tenant_basic(),
        signed.clone(),
    )
    .await
    .expect(200);
    let claim = requests.take();
    let mut approve = signed;
    approve["approved"] = json!(true);
    h.post(
        "/client/user-authenticators/qr-code/challenge",
        tenant_basic(),
        approve,
    )
    .await
    .expect(200);
    let answer = requests.take();
    let polled = h
        .post(
            "/client/verify/qr-code",
            tenant_basic(),
            json!({"challengeId": id, "deviceCode": device_code}),
        )
        .await
        .expect(200);
    assert!(polled["accessToken"].is_string());
    let poll = requests.take();
    eprintln!("qr start: {start:?}\nclaim: {claim:?}\nanswer: {answer:?}\npoll: {poll:?}");
    assert_eq!(
        total(&start),
        3,
        "UpdateItem per-address counter, UpdateItem one tenant shard counter (DESIGN 6), PutItem code"
    );
    assert_eq!(start.requests["UpdateItem"], 2);
    assert_eq!(
        total(&claim),
        4,
        "GetItem credential, GetItem code, PutItem claimed, GetItem user (custom data)"
    );
    assert_eq!(
        total(&answer),
        4,
        "GetItem credential, GetItem code, BatchGetItem rules configs + the user's enrolment (the rules decide the new action), TransactWriteItems (code, new action, the user's enrolment item)"
    );
    assert_eq!(total(&poll), 2, "GetItem code, PutItem (token handed out)");

    // What a bad signature costs (DESIGN 6: throttled, bounded), and a device-created action.
    let phone = Device::new();
    h.register(&h.a, "carol", &phone).await;
    let id = h.challenge(&h.a, json!({"action": "approvePayment"})).await;
    requests.take();
    h.verify(tenant_basic(), &phone.impostor(), &id)
        .await
        .expect_error(400, "invalid_signature");
    let bad = requests.take();
    h.verify(tenant_basic(), &phone, &id).await.expect(200);
    let created = requests.take();
    eprintln!("bad signature: {bad:?}\ndevice-created action: {created:?}");
    assert_eq!(
        total(&bad),
        5,
        "GetItem credential, GetItem mark (past its count nothing is charged), UpdateItem per-address counter, UpdateItem tenant shard counter, UpdateItem mark"
    );
    assert_eq!(
        total(&created),
        4,
        "GetItem credential, BatchGetItem rules configs + the user's enrolment (the rules decide the new action), UpdateItem per-credential counter, TransactWriteItems"
    );

    // A bad signature on a push: counted on the push itself, and past the per-challenge
    // limit refused with no write at all.
    let tracked = h.track(&h.a, "alice", "signIn", json!({})).await;
    let token = tracked["token"].as_str().unwrap();
    let started = h
        .post("/client/challenge/push", Auth::Bearer(token), json!({}))
        .await
        .expect(200);
    let id = started["challengeId"].as_str().unwrap();
    let impostor = push_phone.impostor();
    let bad_answer = json!({"challengeId": id, "publicKey": impostor.public_key,
        "signature": impostor.sign(id), "approved": false});
    requests.take();
    h.post(
        "/client/user-authenticators/push/challenge",
        tenant_basic(),
        bad_answer.clone(),
    )
    .await
    .expect_error(400, "invalid_signature");
    let bad_push = requests.take();
    for _ in 0..4 {
        h.post(
            "/client/user-authenticators/push/challenge",
            tenant_basic(),
            bad_answer.clone(),
        )
        .await
        .expect_error(400, "invalid_signature");
    }
    requests.take();
    h.post(
        "/client/user-authenticators/push/challenge",
        tenant_basic(),
        bad_answer,
    )
    .await
    .expect_throttled();
    let throttled = requests.take();
    eprintln!("bad push signature: {bad_push:?}\nthrottled: {throttled:?}");
    assert_eq!(
        total(&bad_push),
        5,
        "GetItem credential, GetItem push, UpdateItem per-address counter, UpdateItem tenant shard counter, PutItem push (failure count)"
    );
    assert_eq!(
        total(&throttled),
        2,
        "GetItem credential, GetItem push: past 5 failures nothing is written"
    );
}

/// An item's size as DynamoDB bills it: each attribute's name plus its value (strings and
/// binary by length, numbers about one byte per two digits plus one, 1 for a boolean or null,
/// 3 plus the elements for a map or list, sets by their elements).
fn item_size(
    item: &std::collections::HashMap<String, shared::store::dynamodb::AttributeValue>,
) -> usize {
    fn value_size(value: &shared::store::dynamodb::AttributeValue) -> usize {
        if let Ok(s) = value.as_s() {
            s.len()
        } else if let Ok(n) = value.as_n() {
            n.trim_start_matches('-').replace('.', "").len().div_ceil(2) + 1
        } else if let Ok(b) = value.as_b() {
            b.as_ref().len()
        } else if let Ok(ss) = value.as_ss() {
            ss.iter().map(String::len).sum()
        } else if let Ok(ns) = value.as_ns() {
            ns.iter().map(|n| n.len().div_ceil(2) + 1).sum()
        } else if let Ok(m) = value.as_m() {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        } else if let Ok(l) = value.as_l() {
            3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>()
        } else {
            1
        }
    }
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// A partition key with its ids replaced by what they stand for: `T#{t}#U#{u}`,
/// `T#{t}#CFG#{shard}`, `T#{t}#K#in-app#{hash}`.
fn partition_pattern(pk: &str, tenant: &str, user: &str) -> String {
    let segments: Vec<&str> = pk.split('#').collect();
    segments
        .iter()
        .enumerate()
        .map(|(i, segment)| {
            let after = |name: &str| i > 0 && segments[i - 1] == name;
            if *segment == tenant && after("T") {
                "{t}".to_owned()
            } else if *segment == user && after("U") {
                "{u}".to_owned()
            } else if after("CFG") {
                "{shard}".to_owned()
            } else if segment.len() >= 32 && segment.chars().all(|c| c.is_ascii_hexdigit()) {
                "{hash}".to_owned()
            } else {
                (*segment).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("#")
}

/// Issue #18, docs/scaling.md: the per-partition load of ONE tenant doing 10,000 full in-app
/// flows a second (rules on), computed from the request log of a real flow on dynoxide. Each
/// item read strongly consistent costs 1 read unit and each write 1 write unit (2 in a
/// transaction) while items are under 4 KB / 1 KB: the sum is checked against the capacity
/// the server reported, so the model's units are the measured ones. A partition keyed by
/// user, key or challenge spreads by itself; a tenant-wide one must stay under DynamoDB's
/// per-partition limits (3,000 read and 1,000 write units a second) at that rate.
#[tokio::test]
async fn per_partition_load_of_one_tenant_at_10000_flows_per_second() {
    const FLOWS_PER_SECOND: f64 = 10_000.0;
    const CONFIG_COPIES: f64 = 16.0;
    let h = Harness::start_on(StoreKind::DynamoDb).await;
    let requests = &h.dynamo.as_ref().unwrap().requests;
    h.send(
        reqwest::Method::PUT,
        "/action-configs/signIn",
        Auth::Secret(&h.a.secret),
        Some(
            &json!({"defaultOutcome": "CHALLENGE", "rules": [{"ruleId": "bots", "name": "Bots",
            "type": "BLOCK", "conditions": {"var": "device.isBot"}}]}),
        ),
    )
    .await
    .expect(200);
    h.track(&h.a, "warm-up", "signIn", json!({})).await;
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;
    requests.take();

    let tracked = h.track(&h.a, "alice", "signIn", json!({})).await;
    assert_eq!(tracked["state"], "CHALLENGE_REQUIRED");
    let challenge_id = h.challenge(&h.a, json!({})).await;
    let verified = h
        .verify(
            Auth::Bearer(tracked["token"].as_str().unwrap()),
            &device,
            &challenge_id,
        )
        .await
        .expect(200);
    let validated = h.validate(&h.a, json!({"token": verified["token"]})).await;
    assert_eq!(validated["isValid"], true);
    let flow = requests.take();

    // pattern -> (read units, write units) per flow
    let mut per_pattern: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for access in &flow.items {
        let units = per_pattern
            .entry(partition_pattern(&access.partition, &h.a.id, "alice"))
            .or_default();
        match (access.write, access.transactional) {
            (false, _) => units.0 += 1.0,
            (true, false) => units.1 += 1.0,
            (true, true) => units.1 += 2.0,
        }
    }
    let (model_reads, model_writes) = per_pattern
        .values()
        .fold((0.0, 0.0), |(r, w), (pr, pw)| (r + pr, w + pw));
    assert_eq!(
        (model_reads, model_writes),
        (flow.read_units, flow.write_units),
        "the model's units are the measured ones: {flow:?}"
    );

    eprintln!(
        "| partition | read units per flow | write units per flow | spread over | per partition at 10,000 flows/s |"
    );
    eprintln!("|---|---|---|---|---|");
    for (pattern, (reads, writes)) in &per_pattern {
        let (spread, copies) = if pattern.contains("{u}") {
            ("the tenant's users", None)
        } else if pattern.contains("{hash}") {
            ("keys / challenges", None)
        } else if pattern.contains("{shard}") {
            ("16 copies", Some(CONFIG_COPIES))
        } else {
            ("nothing: one partition", Some(1.0))
        };
        let load = match copies {
            Some(copies) => {
                let (r, w) = (
                    reads * FLOWS_PER_SECOND / copies,
                    writes * FLOWS_PER_SECOND / copies,
                );
                // DESIGN 4: no tenant-wide item past a partition's limits at this rate.
                assert!(
                    r <= 3000.0 && w <= 1000.0,
                    "{pattern}: {r} RCU/s, {w} WCU/s"
                );
                format!("{r:.0} RCU/s, {w:.0} WCU/s")
            }
            None => "one user's (or key's) own rate".to_owned(),
        };
        eprintln!("| `{pattern}` | {reads} | {writes} | {spread} | {load} |");
    }
    eprintln!(
        "full flow: {} requests, {model_reads} read units, {model_writes} write units",
        flow.total_requests()
    );
    // The items' sizes, from what is stored, by DynamoDB's rules (attribute names count; a
    // read unit covers 4 KB, a write unit 1 KB): what the units above assume.
    let dynamo = h.dynamo.as_ref().unwrap();
    let client = shared::store::dynamodb::client(
        &shared::store::dynamodb::DynamoConfig {
            endpoint_url: Some(dynamo.local.endpoint()),
        },
        shared::store::dynamodb::UsageMeter::default(),
    )
    .await;
    let tables = client.list_tables().send().await.unwrap();
    let table = tables.table_names().first().unwrap().clone();
    let scanned = client.scan().table_name(&table).send().await.unwrap();
    let mut largest: std::collections::BTreeMap<String, usize> = Default::default();
    for item in scanned.items() {
        let pk = item["pk"].as_s().unwrap();
        let sk = item["sk"].as_s().unwrap();
        let kind = format!(
            "{} / {}",
            partition_pattern(pk, &h.a.id, "alice"),
            sk.split('#').next().unwrap()
        );
        let size = item_size(item);
        let entry = largest.entry(kind).or_default();
        *entry = (*entry).max(size);
    }
    eprintln!("| item (pk / sk prefix) | largest size (bytes) |\n|---|---|");
    for (kind, size) in &largest {
        eprintln!("| `{kind}` | {size} |");
        assert!(*size <= 1024, "{kind}: {size} bytes, over one write unit");
    }
    assert!(
        per_pattern
            .keys()
            .all(|p| p.contains("{u}") || p.contains("{hash}") || p.contains("{shard}")),
        "a tenant-wide partition on the flow's path: {per_pattern:?}"
    );
}
