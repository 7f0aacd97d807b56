//! The data points a rule's conditions can read with `var` (spec 7: device, IP and custom
//! data points from the track attributes `deviceId`, `ipAddress`, `userAgent` and `custom`).
//!
//! Every one is computed here, from the track request, the user's credentials, the user's
//! earlier actions and the clock: no external service (so no IP geolocation, anonymity or
//! travel signals). The earlier actions are read only when an active rule reads a
//! [`Source::History`] data point (see `domain::policy`), because that read costs more.

use super::ids::ActionCode;
use super::model::TrackContext;
use super::model::{Action, ActionState, Enrolment};
use crate::clock::Timestamp;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Where a data point comes from, which decides what track must read to compute it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The track request itself.
    Request,
    /// The user's credentials (track always reads them: it must know whether the user is
    /// enrolled).
    Credentials,
    /// The user's earlier actions within the retention period: an extra cost, read only
    /// when a rule needs it.
    History,
    /// The server's clock.
    Clock,
}

/// One data point: its `var` name, its JSON type, where it comes from, what it means.
#[derive(Debug, Clone, Copy)]
pub struct DataPoint {
    pub name: &'static str,
    pub kind: &'static str,
    pub source: Source,
    pub meaning: &'static str,
}

const fn point(
    name: &'static str,
    kind: &'static str,
    source: Source,
    meaning: &'static str,
) -> DataPoint {
    DataPoint {
        name,
        kind,
        source,
        meaning,
    }
}

/// Every data point besides `custom.*` (any key of the track request's `custom` object).
pub const DATA_POINTS: &[DataPoint] = &[
    point(
        "ip.address",
        "string|null",
        Source::Request,
        "the track attribute `ipAddress`",
    ),
    point(
        "ip.version",
        "4|6|null",
        Source::Request,
        "the IP version of `ipAddress`; null when absent or not an IP address",
    ),
    point(
        "ip.isPrivate",
        "boolean",
        Source::Request,
        "`ipAddress` is private, loopback, link-local, CGNAT (100.64.0.0/10), unique-local (fc00::/7) or unspecified",
    ),
    point(
        "userAgent",
        "string|null",
        Source::Request,
        "the track attribute `userAgent`",
    ),
    point(
        "device.id",
        "string|null",
        Source::Request,
        "the track attribute `deviceId`",
    ),
    point(
        "device.isBot",
        "boolean",
        Source::Request,
        "`userAgent` matches a known bot, crawler, script or headless-browser pattern (BOT_PATTERNS)",
    ),
    point(
        "device.isNew",
        "boolean|null",
        Source::History,
        "`deviceId` appears on none of this user's earlier actions within retention (30 days); null when no `deviceId` is given",
    ),
    point(
        "device.count",
        "number",
        Source::History,
        "distinct `deviceId`s on this user's actions within retention, this request's included",
    ),
    point(
        "user.isEnrolled",
        "boolean",
        Source::Credentials,
        "the user has at least one device credential",
    ),
    point(
        "user.credentialCount",
        "number",
        Source::Credentials,
        "how many device credentials the user has",
    ),
    point(
        "user.enrolledVerificationMethods",
        "string[]",
        Source::Credentials,
        "the user's verification methods, e.g. [\"DEVICE\", \"PUSH\"]",
    ),
    point(
        "user.email",
        "string|null",
        Source::Request,
        "the track attribute `email`",
    ),
    point(
        "user.phoneNumber",
        "string|null",
        Source::Request,
        "the track attribute `phoneNumber`",
    ),
    point(
        "user.actionCountLastHour",
        "number",
        Source::History,
        "this user's earlier actions of any code in the last hour",
    ),
    point(
        "action.code",
        "string",
        Source::Request,
        "the action code tracked",
    ),
    point(
        "action.countLastHour",
        "number",
        Source::History,
        "this user's earlier actions with this code in the last hour",
    ),
    point(
        "action.countLastDay",
        "number",
        Source::History,
        "this user's earlier actions with this code in the last 24 hours",
    ),
    point(
        "time.hourUtc",
        "number",
        Source::Clock,
        "the hour of the day, 0 to 23, UTC",
    ),
    point(
        "time.dayOfWeekUtc",
        "number",
        Source::Clock,
        "the day of the week, 0 (Sunday) to 6, UTC",
    ),
];

/// Lower-case substrings of a user agent that mark a bot, crawler, HTTP library or headless
/// browser. Deliberately short and documented: it catches the honest automation that says
/// what it is, not a determined attacker, who can send any user agent.
pub const BOT_PATTERNS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "headlesschrome",
    "phantomjs",
    "selenium",
    "puppeteer",
    "playwright",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "libwww-perl",
    "scrapy",
    "httpie",
    "java/",
];

/// Whether `name` is a data point `var` may read.
pub fn is_known(name: &str) -> bool {
    DATA_POINTS.iter().any(|p| p.name == name)
        || name
            .strip_prefix("custom.")
            .is_some_and(|key| !key.is_empty() && !key.split('.').any(str::is_empty))
}

/// Whether `name` is computed from the request's IP address.
pub fn is_ip_data_point(name: &str) -> bool {
    matches!(name, "ip.address" | "ip.version" | "ip.isPrivate")
}

/// Whether `ipAddress` was given but is not one IP address, so `ip.*` cannot be read
/// honestly (see `policy::Provenance::Track`).
pub fn is_unreadable_ip(ip_address: Option<&str>) -> bool {
    ip_address.is_some_and(|text| parse_ip(text).is_none())
}

/// The track attribute `ipAddress` as an address: one IPv4 or IPv6 address, surrounding
/// spaces allowed, nothing else (no list, port, brackets or legacy form).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    text.trim().parse().ok()
}

/// Whether `name` is known on a path where a device creates its action without a track
/// (tenant-Basic in-app verify, an anonymous QR code; see `policy::Provenance`). Known: what
/// the server computes itself (the user's credentials and history, the clock, the action
/// code) and the caller's address when the platform observed it. Not known: everything a
/// track's backend would have vouched for, because here it is absent or claimed by the
/// unauthenticated caller: `custom.*`, `userAgent` and `device.isBot` (any user agent can be
/// sent), `device.id` and `device.isNew` (no device id), `user.email`, `user.phoneNumber`.
pub fn is_vouched_on_device_path(name: &str, ip_observed: bool) -> bool {
    match name {
        name if is_ip_data_point(name) => ip_observed,
        "action.code" => true,
        // Computed from a device id, which nobody sent.
        "device.isNew" => false,
        // A request data point added later is unvouched until someone decides otherwise.
        _ => DATA_POINTS
            .iter()
            .any(|p| p.name == name && p.source != Source::Request),
    }
}

/// Whether any of these data points needs the user's earlier actions.
pub fn needs_history(names: &[String]) -> bool {
    names.iter().any(|name| {
        DATA_POINTS
            .iter()
            .any(|p| p.name == name && p.source == Source::History)
    })
}

/// The user's earlier actions, when a rule needs them.
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    pub actions: &'a [Action],
}

/// Everything the data points are computed from.
#[derive(Debug, Clone, Copy)]
pub struct SignalInputs<'a> {
    pub action_code: &'a ActionCode,
    pub context: &'a TrackContext,
    pub email: Option<&'a str>,
    pub phone_number: Option<&'a str>,
    /// How many credentials and passkeys (issue #15) the user has, per method.
    pub enrolment: Enrolment,
    pub history: Option<History<'a>>,
    pub now: Timestamp,
}

/// The data a rule's `var`s read: nested objects, so `device.isNew` is `data.device.isNew`.
/// History data points are `null` when the history was not read (no active rule reads them).
pub fn data(inputs: &SignalInputs<'_>) -> Value {
    let context = inputs.context;
    let ip = context.ip_address.as_deref().and_then(parse_ip);
    let methods = inputs.enrolment.methods();
    let methods: Vec<Value> = methods
        .into_iter()
        .filter_map(|m| serde_json::to_value(m).ok())
        .collect();

    let mut device = json!({
        "id": context.device_id,
        "isBot": context.user_agent.as_deref().is_some_and(is_bot),
        "isNew": null,
        "count": null,
    });
    let mut action = json!({
        "code": inputs.action_code.as_str(),
        "countLastHour": null,
        "countLastDay": null,
    });
    let mut user = json!({
        "isEnrolled": inputs.enrolment.is_enrolled(),
        "credentialCount": inputs.enrolment.total(),
        "enrolledVerificationMethods": methods,
        "email": inputs.email,
        "phoneNumber": inputs.phone_number,
        "actionCountLastHour": null,
    });
    if let Some(history) = inputs.history {
        let live: Vec<&Action> = history
            .actions
            .iter()
            .filter(|a| a.expires_at > inputs.now && a.created_at <= inputs.now)
            .collect();
        // A device is known once an action from it was proven: a challenge succeeded or a
        // reviewer approved it. An attempt that was blocked, sent to review or left
        // unchallenged proves nothing; counting it would let a second try from the same
        // unknown device pass as "seen before".
        let mut devices: BTreeSet<&str> = live
            .iter()
            .filter(|a| {
                matches!(
                    a.state,
                    ActionState::ChallengeSucceeded | ActionState::ReviewSucceeded
                )
            })
            .filter_map(|a| a.context.device_id.as_deref())
            .collect();
        // No `deviceId` (the browser's cookie can be deleted by whoever holds it): new, so
        // that a rule on new devices fails closed.
        device["isNew"] = Value::Bool(
            context
                .device_id
                .as_deref()
                .is_none_or(|id| !devices.contains(id)),
        );
        if let Some(id) = context.device_id.as_deref() {
            devices.insert(id);
        }
        device["count"] = json!(devices.len());
        let since = |seconds: i64| inputs.now.plus_seconds(-seconds);
        let count = |seconds: i64, same_code: bool| {
            live.iter()
                .filter(|a| a.created_at >= since(seconds))
                .filter(|a| !same_code || &a.key.action_code == inputs.action_code)
                .count()
        };
        action["countLastHour"] = json!(count(3600, true));
        action["countLastDay"] = json!(count(24 * 3600, true));
        user["actionCountLastHour"] = json!(count(3600, false));
    }
    let seconds = inputs.now.unix_seconds();
    let custom = match &context.custom {
        Some(Value::Object(map)) => Value::Object(map.clone()),
        _ => Value::Object(Map::new()),
    };
    json!({
        "ip": {
            "address": context.ip_address,
            "version": ip.map(|ip| if ip.is_ipv4() { 4 } else { 6 }),
            "isPrivate": ip.is_some_and(is_private),
        },
        "userAgent": context.user_agent,
        "device": device,
        "user": user,
        "action": action,
        "time": {
            "hourUtc": seconds.rem_euclid(86_400) / 3600,
            // 1970-01-01 was a Thursday (4).
            "dayOfWeekUtc": (seconds.div_euclid(86_400) + 4).rem_euclid(7),
        },
        "custom": custom,
    })
}

pub fn is_bot(user_agent: &str) -> bool {
    let lower = user_agent.to_ascii_lowercase();
    BOT_PATTERNS.iter().any(|pattern| lower.contains(pattern))
}

pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ActionKey, ActionOrigin, IdempotencyKey, UserId};

    /// An earlier action whose challenge succeeded: its device is proven.
    fn action(code: &str, device: Option<&str>, created: i64) -> Action {
        Action {
            state: ActionState::ChallengeSucceeded,
            ..attempt(code, device, created, ActionState::Allow)
        }
    }

    fn attempt(code: &str, device: Option<&str>, created: i64, state: ActionState) -> Action {
        Action {
            tenant_id: crate::domain::TenantId::parse("t").unwrap(),
            key: ActionKey {
                user_id: UserId::parse("u").unwrap(),
                action_code: ActionCode::parse(code).unwrap(),
                idempotency_key: IdempotencyKey::parse(format!("k{created}")).unwrap(),
            },
            state,
            created_at: Timestamp::from_unix_seconds(created),
            state_updated_at: Timestamp::from_unix_seconds(created),
            verification_method: None,
            verified_by_authenticator_id: None,
            context: TrackContext {
                device_id: device.map(str::to_owned),
                ..Default::default()
            },
            rule_ids: Vec::new(),
            rules: Vec::new(),
            origin: ActionOrigin::Track,
            enrolled_passkey_id: None,
            expires_at: Timestamp::from_unix_seconds(created + 30 * 86_400),
        }
    }

    #[test]
    fn every_data_point_is_in_the_data_at_its_path() {
        let code = ActionCode::parse("pay").unwrap();
        let context = TrackContext {
            ip_address: Some("10.1.2.3".into()),
            user_agent: Some("curl/8.1".into()),
            device_id: Some("d1".into()),
            custom: Some(json!({"amount": 12})),
            scope: None,
        };
        // 2026-11-29 (a Sunday) 13:20 UTC.
        let now = Timestamp::from_unix_seconds(1_795_910_400 + 13 * 3600 + 1200);
        let earlier = [
            action("pay", Some("d1"), now.unix_seconds() - 60),
            action("pay", Some("d2"), now.unix_seconds() - 7200),
            action("signIn", None, now.unix_seconds() - 30),
            action("pay", Some("d3"), now.unix_seconds() - 40 * 86_400),
        ];
        let data = data(&SignalInputs {
            action_code: &code,
            context: &context,
            email: Some("a@example.com"),
            phone_number: None,
            enrolment: Enrolment::default(),
            history: Some(History { actions: &earlier }),
            now,
        });
        let at = |path: &str| crate::rules::evaluate(&json!({"var": path}), &data);
        assert_eq!(at("ip.address"), json!("10.1.2.3"));
        assert_eq!(at("ip.version"), json!(4));
        assert_eq!(at("ip.isPrivate"), json!(true));
        assert_eq!(at("userAgent"), json!("curl/8.1"));
        assert_eq!(at("device.id"), json!("d1"));
        assert_eq!(at("device.isBot"), json!(true));
        assert_eq!(at("device.isNew"), json!(false));
        assert_eq!(at("device.count"), json!(2), "d1, d2; d3 is past retention");
        assert_eq!(at("user.isEnrolled"), json!(false));
        assert_eq!(at("user.credentialCount"), json!(0));
        assert_eq!(at("user.enrolledVerificationMethods"), json!([]));
        assert_eq!(at("user.email"), json!("a@example.com"));
        assert_eq!(at("user.phoneNumber"), json!(null));
        assert_eq!(at("user.actionCountLastHour"), json!(2));
        assert_eq!(at("action.code"), json!("pay"));
        assert_eq!(at("action.countLastHour"), json!(1));
        assert_eq!(at("action.countLastDay"), json!(2));
        assert_eq!(at("time.hourUtc"), json!(13));
        assert_eq!(at("time.dayOfWeekUtc"), json!(0));
        assert_eq!(at("custom.amount"), json!(12));
        for point in DATA_POINTS {
            assert!(
                data.pointer(&format!("/{}", point.name.replace('.', "/")))
                    .is_some(),
                "{} is missing",
                point.name
            );
        }
    }

    #[test]
    fn only_proven_devices_are_known_and_a_missing_device_id_is_new() {
        let code = ActionCode::parse("pay").unwrap();
        let now = Timestamp::from_unix_seconds(1_000_000);
        let earlier = [
            attempt("pay", Some("dX"), 999_000, ActionState::Block),
            attempt("pay", Some("dX"), 999_100, ActionState::ReviewRequired),
            attempt("pay", Some("dX"), 999_200, ActionState::ChallengeRequired),
            attempt("pay", Some("dX"), 999_300, ActionState::ChallengeFailed),
            attempt("pay", Some("dR"), 999_400, ActionState::ReviewSucceeded),
        ];
        let seen = |device: Option<&str>| {
            let context = TrackContext {
                device_id: device.map(str::to_owned),
                ..Default::default()
            };
            data(&SignalInputs {
                action_code: &code,
                context: &context,
                email: None,
                phone_number: None,
                enrolment: Enrolment::default(),
                history: Some(History { actions: &earlier }),
                now,
            })["device"]
                .clone()
        };
        assert_eq!(
            seen(Some("dX"))["isNew"],
            json!(true),
            "attempts prove nothing"
        );
        assert_eq!(seen(Some("dX"))["count"], json!(2), "dR and dX");
        assert_eq!(
            seen(Some("dR"))["isNew"],
            json!(false),
            "a reviewer approved it"
        );
        assert_eq!(seen(None)["isNew"], json!(true), "no deviceId fails closed");
        assert_eq!(seen(None)["count"], json!(1));
    }

    #[test]
    fn a_new_device_and_history_points_unread() {
        let code = ActionCode::parse("pay").unwrap();
        let context = TrackContext {
            device_id: Some("d9".into()),
            ip_address: Some("2001:db8::1".into()),
            ..Default::default()
        };
        let now = Timestamp::from_unix_seconds(1_000_000);
        let earlier = [action("pay", Some("d1"), 999_000)];
        let with = data(&SignalInputs {
            action_code: &code,
            context: &context,
            email: None,
            phone_number: None,
            enrolment: Enrolment::default(),
            history: Some(History { actions: &earlier }),
            now,
        });
        assert_eq!(with["device"]["isNew"], json!(true));
        assert_eq!(with["device"]["count"], json!(2));
        assert_eq!(with["ip"]["version"], json!(6));
        assert_eq!(with["ip"]["isPrivate"], json!(false));
        let without = data(&SignalInputs {
            history: None,
            ..SignalInputs {
                action_code: &code,
                context: &context,
                email: None,
                phone_number: None,
                enrolment: Enrolment::default(),
                history: None,
                now,
            }
        });
        assert_eq!(without["device"]["isNew"], json!(null));
        assert_eq!(without["action"]["countLastHour"], json!(null));
    }

    #[test]
    fn private_addresses_and_bots() {
        for private in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.1.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "100.128.0.1", "2001:4860::8888", "172.32.0.1"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
        assert!(is_bot("Googlebot/2.1 (+http://www.google.com/bot.html)"));
        assert!(is_bot("Mozilla/5.0 HeadlessChrome/120.0"));
        assert!(!is_bot(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) AuthsignalIOSSDK/2.13.0"
        ));
    }

    #[test]
    fn known_data_points() {
        assert!(is_known("device.isNew"));
        assert!(is_known("custom.amount"));
        assert!(is_known("custom.a.b"));
        assert!(!is_known("custom."));
        assert!(!is_known("custom.a..b"));
        assert!(!is_known("ip.country"));
        assert!(needs_history(&["device.count".into()]));
        assert!(!needs_history(&["device.id".into(), "custom.x".into()]));
    }
}
