//! Rate limits on the writes that need no secret and no token (DESIGN 6), shared by every
//! instance through the store ([`crate::store::RateLimitStore`]), never kept in memory: a
//! Lambda function runs as many instances as there are concurrent requests.
//!
//! Each limit is a fixed-window counter: the key names the scope, the subject and the window
//! index (`floor(now / window)`), so a new window starts a new counter and the old one expires
//! (TTL at the window's end; expiry is checked in code too). A hit is one conditional write that
//! refuses at the limit and writes nothing then, so refused requests cost no storage.
//!
//! | subject | key | why |
//! |---|---|---|
//! | source address | the address (an IPv6 address by its /64, what one host usually gets) | one client cannot exhaust a tenant's budget |
//! | tenant | one of `rate_limit_shards` counters picked at random, each holding `limit / shards` | a tenant's traffic spreads over that many partitions: no hot item (DESIGN 4) |
//! | credential | the credential id | per-user partitions spread already |
//!
//! The sharded tenant limit is an approximation: a request is refused when the shard it drew is
//! full, even if another still has room, so a tenant sees its first refusals before `limit`
//! hits (after about 890 of 1,000 over 8 shards, on average); it never admits more than `limit`
//! per window. A fixed window admits up to twice a limit across a window boundary.
//! docs/api.md ("Rate limits") lists every limit and its default.

use crate::App;
use crate::clock::Timestamp;
use crate::domain::{CredentialId, TenantId};
use crate::error::{Error, Result, Throttled};
use crate::store::RateBucket;
use std::net::IpAddr;

/// Where a request came from, as the platform saw it: API Gateway's
/// `requestContext.http.sourceIp` or the local server's peer address, never a header the
/// client sets (`X-Forwarded-For`). `None` when unknown: all such requests share one counter.
pub type Source = Option<IpAddr>;

/// DESIGN 6, for every signature a device sends over a challenge: the signature is verified
/// first, so a valid one always goes through and is never throttled; only one that does not
/// verify is counted, by `count_failure`, which may answer 429 instead (past the budget) and
/// otherwise leaves the answer `invalid_signature`. Any other verification error (a malformed
/// encoding) is returned as it is, uncounted.
pub(crate) async fn signature_checked<F>(verified: Result<()>, count_failure: F) -> Result<()>
where
    F: std::future::Future<Output = Result<()>>,
{
    match verified {
        Ok(()) => Ok(()),
        Err(Error::InvalidSignature) => {
            count_failure.await?;
            Err(Error::InvalidSignature)
        }
        Err(other) => Err(other),
    }
}

/// What a limit counts per.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    Source(Source),
    Tenant,
    Credential(&'a CredentialId),
}

/// What [`App::charge_anonymous_start`] counts.
struct AnonymousStart {
    scope: &'static str,
    source: Source,
    per_source: u32,
    live_cap: u32,
    lifetime_seconds: i64,
}

/// One limit: `limit` hits per `window_seconds` per subject, in a named scope.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit<'a> {
    pub scope: &'static str,
    pub subject: Subject<'a>,
    pub limit: u32,
    pub window_seconds: i64,
}

/// The key of a source address: IPv4 as it is, IPv6 by its /64 prefix.
pub(crate) fn source_key(source: Source) -> String {
    match source.map(source_prefix) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => format!("{v6}/64"),
        None => "unknown".to_owned(),
    }
}

/// One client's address as the limits count it: an IPv4 address (an IPv4-mapped IPv6 one
/// too), or an IPv6 address's /64, which is what one host usually gets. The local server's
/// per-address connection cap counts the same way.
pub fn source_prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
    }
}

impl App {
    /// Charges one hit to each limit, in order; the first one that is full refuses with 429
    /// and a `Retry-After` of the rest of its window. Put the per-source limit first: a
    /// client refused there costs the tenant's shared budget nothing.
    pub(crate) async fn charge(
        &self,
        tenant: &TenantId,
        reason: &'static str,
        limits: &[Limit<'_>],
    ) -> Result<()> {
        let now = self.now();
        for limit in limits {
            let bucket = self.bucket(limit, now)?;
            if !self.store.hit(tenant, &bucket, now).await? {
                return Err(Error::throttled(
                    reason,
                    bucket.expires_at.seconds_after(now),
                ));
            }
        }
        Ok(())
    }

    /// An anonymous QR-code start (spec 3.4.7, tenant Basic): per source address per
    /// window, and the tenant's live cap. A code lives one QR lifetime, so the codes alive at
    /// any moment were started in at most two consecutive windows of that length: half the
    /// cap per window keeps them within the cap.
    pub(crate) async fn charge_anonymous_qr_start(
        &self,
        tenant: &TenantId,
        source: Source,
    ) -> Result<()> {
        let s = &self.settings;
        self.charge_anonymous_start(
            tenant,
            AnonymousStart {
                scope: "anon-qr",
                source,
                per_source: s.anonymous_qr_starts_per_source,
                live_cap: s.anonymous_qr_live_cap,
                lifetime_seconds: s.qr_challenge_lifetime_seconds,
            },
        )
        .await
    }

    /// A usernameless passkey sign-in's options (spec 3.5, tenant Basic): each stores a
    /// ceremony for its lifetime, so counted as an anonymous QR start is.
    pub(crate) async fn charge_anonymous_passkey_options(
        &self,
        tenant: &TenantId,
        source: Source,
    ) -> Result<()> {
        let s = &self.settings;
        self.charge_anonymous_start(
            tenant,
            AnonymousStart {
                scope: "anon-pk",
                source,
                per_source: s.anonymous_passkey_options_per_source,
                live_cap: s.anonymous_passkey_live_cap,
                lifetime_seconds: crate::domain::PASSKEY_CEREMONY_SECONDS,
            },
        )
        .await
    }

    /// Something stored for `lifetime_seconds` on a call with only the public tenant id:
    /// `per_source` per address per window, and half of `live_cap` per lifetime for the
    /// tenant (what is alive at any moment was started in at most two such windows).
    async fn charge_anonymous_start(&self, tenant: &TenantId, start: AnonymousStart) -> Result<()> {
        self.charge(
            tenant,
            Throttled::ANONYMOUS_STARTS,
            &[
                Limit {
                    scope: start.scope,
                    subject: Subject::Source(start.source),
                    limit: start.per_source,
                    window_seconds: self.settings.rate_limit_window_seconds,
                },
                Limit {
                    scope: start.scope,
                    subject: Subject::Tenant,
                    limit: (start.live_cap / 2).max(1),
                    window_seconds: start.lifetime_seconds,
                },
            ],
        )
        .await
    }

    /// A device signature that failed to verify, on any route, before it is counted on its
    /// challenge: counting writes (a mark, or a new version of the challenge), so the writes
    /// bad signatures can cause are bounded per source address and per tenant.
    pub(crate) async fn charge_failed_signature(
        &self,
        tenant: &TenantId,
        source: Source,
    ) -> Result<()> {
        let s = &self.settings;
        self.charge(
            tenant,
            Throttled::FAILED_SIGNATURES,
            &[
                Limit {
                    scope: "bad-sig",
                    subject: Subject::Source(source),
                    limit: s.failed_signatures_per_source,
                    window_seconds: s.rate_limit_window_seconds,
                },
                Limit {
                    scope: "bad-sig",
                    subject: Subject::Tenant,
                    limit: s.failed_signatures_per_tenant,
                    window_seconds: s.rate_limit_window_seconds,
                },
            ],
        )
        .await
    }

    /// An action a device creates without a token (in-app verify with tenant Basic, spec
    /// 3.4.4), kept for `action_retention_days`: per credential per hour. Not per address:
    /// mobile carriers put many phones behind one address. Enrolment takes a token from the
    /// tenant's backend, so credentials times this limit bounds it per tenant.
    pub(crate) async fn charge_device_action(
        &self,
        tenant: &TenantId,
        credential: &CredentialId,
    ) -> Result<()> {
        self.charge(
            tenant,
            Throttled::DEVICE_ACTIONS,
            &[Limit {
                scope: "dev-action",
                subject: Subject::Credential(credential),
                limit: self.settings.device_actions_per_credential_per_hour,
                window_seconds: 3600,
            }],
        )
        .await
    }

    fn bucket(&self, limit: &Limit<'_>, now: Timestamp) -> Result<RateBucket> {
        let window_seconds = limit.window_seconds.max(1);
        let window = now.unix_seconds().div_euclid(window_seconds);
        let expires_at = Timestamp::from_unix_seconds((window + 1) * window_seconds);
        let (subject, capacity) = match limit.subject {
            Subject::Source(source) => (format!("src#{}", source_key(source)), limit.limit),
            Subject::Credential(id) => (format!("cred#{id}"), limit.limit),
            Subject::Tenant => {
                // Split the limit over the shards exactly: shard i holds limit / n, plus one
                // for the first limit % n shards.
                let shards = self
                    .settings
                    .rate_limit_shards
                    .clamp(1, 256)
                    .min(limit.limit.max(1));
                let [random] = self.random_bytes::<1>()?;
                let shard = u32::from(random) % shards;
                let capacity = limit.limit / shards + u32::from(shard < limit.limit % shards);
                (format!("tenant#{shard}"), capacity)
            }
        };
        Ok(RateBucket {
            key: format!("{}#{subject}#{window_seconds}#{window}", limit.scope),
            limit: capacity,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Settings;
    use crate::domain::ActionCode;
    use crate::http::error::Describe as _;
    use crate::store::embedded::EmbeddedStore;
    use crate::usecase::approvals::{QrStarter, StartQrCode};
    use crate::usecase::tenants::ApiSecret;
    use std::sync::Arc;

    /// Issue #11: anonymous QR starts need only the public tenant id. 10,000 of them, each
    /// as large as allowed (4 KiB `custom`, a 512-character User-Agent), first from one
    /// address, then from 10,000 addresses (a botnet), all within one minute: what the store
    /// holds afterwards is bounded by the limits, not by the attempts (docs/performance.md).
    #[tokio::test]
    async fn ten_thousand_anonymous_qr_starts_leave_the_store_bounded() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_seconds(
            1_790_000_000,
        )));
        let store = Arc::new(EmbeddedStore::in_memory().unwrap());
        let settings = Settings::default();
        let app = App::new(
            crate::Ports {
                store: store.clone(),
                clock: clock.clone(),
                notifier: Arc::new(crate::webhook::WebhookNotifier::for_settings(
                    &settings.clone(),
                )),
            },
            settings.clone(),
        );
        let id = TenantId::parse("tenant-test").unwrap();
        app.ensure_tenant(&id, &ApiSecret::parse("sk_test_0123456789abcdef").unwrap())
            .await
            .unwrap();
        let tenant = app.tenant_by_id(&id).await.unwrap();
        let (items_before, bytes_before) = store.live_counts().unwrap();
        let start = |source: IpAddr| StartQrCode {
            action: Some(ActionCode::parse("kioskSignIn").unwrap()),
            custom: Some(serde_json::json!({ "blob": "x".repeat(4080) })),
            user_agent: Some("U".repeat(512)),
            ip_address: Some(source.to_string()),
            source: Some(source),
            number_matching: false,
        };
        let run = async |sources: &mut dyn Iterator<Item = IpAddr>| {
            let (mut admitted, mut refused) = (0u32, 0u32);
            for source in sources {
                match app
                    .start_qr_code(&tenant, QrStarter::Tenant, start(source))
                    .await
                {
                    Ok(_) => admitted += 1,
                    Err(error) => {
                        assert_eq!(error.code(), "too_many_requests", "{error:?}");
                        assert!(error.retry_after_seconds().is_some());
                        refused += 1;
                    }
                }
            }
            let (items, bytes) = store.live_counts().unwrap();
            (
                admitted,
                refused,
                items - items_before,
                bytes - bytes_before,
            )
        };

        let one: IpAddr = "203.0.113.7".parse().unwrap();
        let (admitted, refused, items, bytes) = run(&mut std::iter::repeat_n(one, 10_000)).await;
        eprintln!(
            "one address: {admitted} admitted, {refused} refused, {items} records, {bytes} bytes"
        );
        assert_eq!(admitted, settings.anonymous_qr_starts_per_source);
        // The codes, plus one per-address counter and at most one counter per tenant shard.
        assert!(items as u32 <= admitted + 1 + settings.rate_limit_shards);
        assert!(bytes < admitted as usize * 6_000 + 2_000, "{bytes} bytes");

        let mut botnet =
            (0..10_000u32).map(|i| IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]));
        let (admitted, refused, items, bytes) = run(&mut botnet).await;
        eprintln!(
            "10,000 addresses: {admitted} admitted, {refused} refused, {items} records, {bytes} bytes"
        );
        // Half the live cap per QR lifetime, counting the first address's codes, and no
        // more: 10,000 random draws fill every shard (each gets about 1,250 draws for 125
        // places), so the shards' approximation costs nothing under a flood.
        assert_eq!(
            admitted + settings.anonymous_qr_starts_per_source,
            settings.anonymous_qr_live_cap / 2
        );
        let codes = admitted as usize + settings.anonymous_qr_starts_per_source as usize;
        assert!(bytes < codes * 6_000 + 10_000 * 120, "{bytes} bytes");
    }

    #[test]
    fn an_ipv6_source_is_counted_by_its_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(Some(a)), source_key(Some(b)));
        assert_ne!(source_key(Some(a)), source_key(Some(c)));
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(source_key(Some(mapped)), "203.0.113.7");
        assert_eq!(source_key(None), "unknown");
    }
}
