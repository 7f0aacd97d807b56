//! What the service counts, named once (docs/operations.md lists every metric).
//!
//! Every signal is recorded at one place through the [`metrics`] facade: the HTTP layer
//! ([`http_request`], from the request log middleware; [`error_response`], from the one error
//! mapping in `http/error.rs`), the use cases ([`flow_started`], [`flow_completed`],
//! [`verification_failed`], [`approval_answered`]; they pass domain values, never HTTP) and the
//! store adapters ([`store_error`]). Which backend receives them is the composition root's
//! choice: CloudWatch Embedded Metric Format lines on the Lambda functions (`shared::lambda`),
//! Prometheus text at the local server's `--metrics-addr`, and nothing at all where no recorder
//! is installed (the facade's no-op: tests and the CLI pay nothing).
//!
//! Labels become CloudWatch dimensions, so each one has a small, fixed set of values that no
//! caller chooses freely (DESIGN 11): a route template (never the raw path), an HTTP method
//! from a fixed list, an error code of the contract, a verification method, an outcome. No
//! user id, tenant id, key, token, signature or address is ever a label or a property.

use crate::domain::Namespace;
use crate::error::{Error, Throttled};
use crate::http::error::Describe as _;
use std::time::Duration;

/// The environment variable naming the CloudWatch namespace of the Lambda functions' metrics
/// (`template.yaml` sets `TrustedDevice/<Stage>`).
pub const NAMESPACE_ENV: &str = "TRUSTED_DEVICE_METRICS_NAMESPACE";

/// The namespace when [`NAMESPACE_ENV`] is not set.
pub const DEFAULT_NAMESPACE: &str = "TrustedDevice";

/// The metric names, shared by both backends (the Prometheus exporter adds `_total` to
/// counters and the unit to the latency, its naming convention).
pub mod name {
    /// Every response, by route template, method and status class (`2xx`, `4xx`, `5xx`).
    pub const HTTP_REQUESTS: &str = "http_requests";
    /// Every response's latency in milliseconds, by route template and method.
    pub const HTTP_REQUEST_DURATION: &str = "http_request_duration";
    /// Responses with a 5xx status, without dimensions: what the outage alarm watches.
    pub const HTTP_SERVER_ERRORS: &str = "http_server_errors";
    /// Error responses by the contract's `errorCode` (spec 1.3), 4xx and 5xx.
    pub const ERROR_RESPONSES: &str = "error_responses";
    /// `429 too_many_requests` answers, by which of our limits refused (DESIGN 6).
    pub const RATE_LIMIT_REFUSALS: &str = "rate_limit_refusals";
    /// A verification flow started, by method: a challenge id handed out, a push sent, a
    /// QR code shown, passkey options issued.
    pub const FLOWS_STARTED: &str = "flows_started";
    /// A verification flow completed: its action is `CHALLENGE_SUCCEEDED` (or, for a push or
    /// QR code the approver rejected, `CHALLENGE_FAILED`: see [`APPROVALS_ANSWERED`]).
    pub const FLOWS_COMPLETED: &str = "flows_completed";
    /// A verification refused, by method and error code (`invalid_signature`, ...).
    pub const VERIFICATIONS_FAILED: &str = "verifications_failed";
    /// A push or QR code answered by the approving device, by method and outcome.
    pub const APPROVALS_ANSWERED: &str = "approvals_answered";
    /// A store request that failed, by store and kind (`unavailable`: a retry may help, a
    /// 503; `internal`: a bug or a misconfiguration, a 500).
    pub const STORE_ERRORS: &str = "store_errors";
}

/// The method of a verification flow, as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowMethod {
    /// A device key's signature over a challenge id (`in-app` and `device` credentials).
    DeviceKey,
    Push,
    QrCode,
    Passkey,
}

impl FlowMethod {
    pub fn label(self) -> &'static str {
        match self {
            FlowMethod::DeviceKey => "device-key",
            FlowMethod::Push => "push",
            FlowMethod::QrCode => "qr-code",
            FlowMethod::Passkey => "passkey",
        }
    }

    /// The approval flow of a namespace that has one (spec 3.3).
    pub fn approval(namespace: Namespace) -> FlowMethod {
        match namespace {
            Namespace::Push => FlowMethod::Push,
            Namespace::QrCode => FlowMethod::QrCode,
            Namespace::InApp | Namespace::Device => FlowMethod::DeviceKey,
        }
    }
}

/// Which store failed, as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    DynamoDb,
    Embedded,
}

/// Describes the metrics to the installed recorder (units, help text). Call it once after
/// installing one.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        name::HTTP_REQUESTS,
        Unit::Count,
        "Responses by route, method and status class."
    );
    describe_histogram!(
        name::HTTP_REQUEST_DURATION,
        Unit::Milliseconds,
        "Time from request to response, by route and method."
    );
    describe_counter!(
        name::HTTP_SERVER_ERRORS,
        Unit::Count,
        "Responses with a 5xx status."
    );
    describe_counter!(
        name::ERROR_RESPONSES,
        Unit::Count,
        "Error responses by errorCode."
    );
    describe_counter!(
        name::RATE_LIMIT_REFUSALS,
        Unit::Count,
        "429 answers by the limit that refused."
    );
    describe_counter!(
        name::FLOWS_STARTED,
        Unit::Count,
        "Verification flows started, by method."
    );
    describe_counter!(
        name::FLOWS_COMPLETED,
        Unit::Count,
        "Verification flows completed, by method."
    );
    describe_counter!(
        name::VERIFICATIONS_FAILED,
        Unit::Count,
        "Verifications refused, by method and error code."
    );
    describe_counter!(
        name::APPROVALS_ANSWERED,
        Unit::Count,
        "Push and QR-code approvals answered, by method and outcome."
    );
    describe_counter!(
        name::STORE_ERRORS,
        Unit::Count,
        "Failed store requests, by store and kind."
    );
}

/// The HTTP methods that are label values; anything else a client sends is `other`, so a
/// client cannot mint dimensions.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// One response: `route` is the matched route template (`unmatched` when none matched), never
/// the raw path, which holds user ids and keys.
pub fn http_request(route: &str, method: &axum::http::Method, status: u16, elapsed: Duration) {
    let method = method_label(method);
    metrics::counter!(
        name::HTTP_REQUESTS,
        "route" => route.to_owned(),
        "method" => method,
        "status_class" => status_class(status)
    )
    .increment(1);
    metrics::histogram!(name::HTTP_REQUEST_DURATION, "route" => route.to_owned(), "method" => method)
        .record(elapsed.as_secs_f64() * 1000.0);
    if status >= 500 {
        metrics::counter!(name::HTTP_SERVER_ERRORS).increment(1);
    }
}

/// One error response, with its `errorCode`; a `429` also counts under the limit that refused.
pub fn error_response(code: &'static str, error: Option<&Error>) {
    metrics::counter!(name::ERROR_RESPONSES, "code" => code).increment(1);
    if let Some(Error::TooManyRequests(throttled)) = error {
        metrics::counter!(name::RATE_LIMIT_REFUSALS, "limit" => limit_label(throttled))
            .increment(1);
    }
}

/// A short name for each of our limits (the reason text is for people).
fn limit_label(throttled: &Throttled) -> &'static str {
    match throttled.reason {
        Throttled::PUSH_STARTS => "push_starts",
        Throttled::ANONYMOUS_STARTS => "anonymous_starts",
        Throttled::FAILED_SIGNATURES => "failed_signatures",
        Throttled::DEVICE_ACTIONS => "device_actions",
        _ => "other",
    }
}

pub fn flow_started(method: FlowMethod) {
    metrics::counter!(name::FLOWS_STARTED, "method" => method.label()).increment(1);
}

pub fn flow_completed(method: FlowMethod) {
    metrics::counter!(name::FLOWS_COMPLETED, "method" => method.label()).increment(1);
}

/// A verification the use case refused, labelled with the `errorCode` the caller is answered.
pub fn verification_failed(method: FlowMethod, error: &Error) {
    metrics::counter!(
        name::VERIFICATIONS_FAILED,
        "method" => method.label(),
        "code" => error.code()
    )
    .increment(1);
}

/// A use case's result, counted: completed on `Ok`, failed with its code on `Err`.
pub fn verification_outcome<T>(method: FlowMethod, result: &Result<T, Error>) {
    match result {
        Ok(_) => flow_completed(method),
        Err(error) => verification_failed(method, error),
    }
}

/// An approving device's answer to a push or QR code.
pub fn approval_answered(method: FlowMethod, approved: bool) {
    let outcome = if approved { "approved" } else { "rejected" };
    metrics::counter!(name::APPROVALS_ANSWERED, "method" => method.label(), "outcome" => outcome)
        .increment(1);
}

/// A failed store request; `error` is what the adapter answers with.
pub fn store_error(store: StoreKind, error: &Error) {
    let store = match store {
        StoreKind::DynamoDb => "dynamodb",
        StoreKind::Embedded => "embedded",
    };
    let kind = match error {
        Error::StoreUnavailable => "unavailable",
        _ => "internal",
    };
    metrics::counter!(name::STORE_ERRORS, "store" => store, "kind" => kind).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn a_method_a_client_invents_is_not_a_label() {
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").unwrap()),
            "other"
        );
        assert_eq!(method_label(&Method::POST), "POST");
    }

    #[test]
    fn every_limit_has_its_own_label() {
        for (reason, label) in [
            (Throttled::PUSH_STARTS, "push_starts"),
            (Throttled::ANONYMOUS_STARTS, "anonymous_starts"),
            (Throttled::FAILED_SIGNATURES, "failed_signatures"),
            (Throttled::DEVICE_ACTIONS, "device_actions"),
        ] {
            assert_eq!(limit_label(&Throttled::new(reason, 1)), label);
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
