//! `trusted-device`: the local server and the operator CLI.
//!
//! ```text
//! trusted-device serve [--addr 127.0.0.1:8787] [STORE] [--tenant-id ID --secret-key SECRET]
//!                      [--public-url URL] [--metrics-addr ADDR]
//! trusted-device tenant create [STORE] [--tenant-id ID]
//! trusted-device tenant list [STORE]
//! trusted-device tenant show|rotate-secret [STORE] --tenant-id ID
//! trusted-device tenant revoke-secret [STORE] --tenant-id ID --key-id KEY
//! trusted-device tenant rotate-keys [STORE] --tenant-id ID [--revoke-previous]
//! trusted-device tenant configure [STORE] --tenant-id ID
//!                                 [--push-webhook-url URL [--push-webhook-secret S] | --remove-push-webhook]
//!                                 [--events-webhook-url URL [--events-webhook-secret S] | --remove-events-webhook]
//!                                 [--require-decision-signature true|false]
//!                                 [--allowed-origin ORIGIN ... | --no-allowed-origins]
//!                                 [--session-client-id ID]... [--access-token-ttl SECONDS]
//!                                 [--refresh-token-ttl SECONDS] [--rotate-session-key]
//!                                 [--passkey-rp-id ID ... | --remove-passkeys]
//!                                 [--ui-name N] [--ui-logo-url URL] [--ui-colour #RRGGBB] [--reset-ui]
//! trusted-device table create --table NAME [--endpoint-url URL]
//! trusted-device action-config set --config F.yaml|F.json --tenant-id ID [STORE]
//! trusted-device action-config get|delete CODE --tenant-id ID [STORE]     (CODE `*`: the tenant default)
//! trusted-device action-config list --tenant-id ID [STORE]
//! trusted-device rules test --config F --request R                       (a dry run: no store)
//! trusted-device device enroll|verify|pending|approve|reject|claim|remove|list [--url URL]
//!                       --tenant-id ID [--key-file F] [--platform ios|android] [--json]
//! trusted-device conformance --url URL --tenant-id ID   (secret: TRUSTED_DEVICE_SECRET_KEY)
//! trusted-device openapi                                 (the OpenAPI document, on stdout)
//!
//! STORE: --store embedded [--data-dir ./.trusted-device] [--durability full|normal]  (the default)
//!        --store dynamodb --table NAME [--endpoint-url URL]
//! ```
//!
//! A flag that does not apply is refused, never ignored: `--table` or `--endpoint-url` with the
//! embedded store, `--data-dir` or `--durability` with DynamoDB (from the command line or from
//! their environment variables alike).

use clap::{Parser, Subcommand, ValueEnum};
use shared::App;
use shared::clock::SystemClock;
use shared::config::{PublicUrl, Settings};
use shared::domain::policy::ConfigKey;
use shared::domain::{AllowedOrigin, TenantId, WebhookEndpoint};
use shared::http::error::Describe as _;
use shared::store::Store;
use shared::store::dynamodb::{self, DynamoConfig, DynamoStore, UsageMeter};
use shared::store::embedded::{Durability, EmbeddedStore, OpenError};
use shared::telemetry::{self, LogFormat};
use shared::usecase::keys::Retirement;
use shared::usecase::tenants::{ApiSecret, TenantSettingsChange};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use trusted_device::say;
use trusted_device::secret_strength;

/// mimalloc: the profile of the local server under load put glibc malloc/free at about 10% of
/// its CPU (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "trusted-device",
    version,
    about = "Self-hosted trusted-device authentication, Authsignal-compatible"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Server API and Client API under /v1 on the embedded store.
    Serve(ServeArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage the DynamoDB table.
    #[command(subcommand)]
    Table(TableCommand),
    /// Manage a tenant's rules configs (per action code, and `*` for the tenant default).
    #[command(subcommand)]
    ActionConfig(ActionConfigCommand),
    /// Try rules without a server or a store.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// A software device: a P-256 key in a file, speaking the iOS or Android SDK's wire.
    Device(trusted_device::device_cli::DeviceArgs),
    /// Check a running deployment against the contract, with only the tenant's keys.
    Conformance(trusted_device::conformance::ConformanceArgs),
    /// Print the OpenAPI 3.1 document of every route, generated from the code (what
    /// docs/openapi.json holds and GET /v1/openapi.json serves).
    Openapi,
}

#[derive(clap::Args)]
struct TenantStoreArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The tenant whose configs these are.
    #[arg(long, env = "TRUSTED_DEVICE_TENANT_ID")]
    tenant_id: String,
}

#[derive(Subcommand)]
enum ActionConfigCommand {
    /// Validate a config (JSON or YAML; its `actionCode` says which action, `*` for the
    /// tenant default) and save it, replacing the one before.
    #[command(after_help = SETTINGS_HELP)]
    Set {
        /// The config file (JSON or YAML), as `rules test --config` reads it. `--file` is
        /// accepted too (its earlier name, kept for scripts).
        #[arg(long, alias = "file")]
        config: PathBuf,
        #[command(flatten)]
        target: TenantStoreArgs,
    },
    /// Print a config as JSON.
    #[command(after_help = SETTINGS_HELP)]
    Get {
        /// The action code, or `*` for the tenant default.
        code: String,
        #[command(flatten)]
        target: TenantStoreArgs,
    },
    /// Print every config of the tenant as a JSON array.
    #[command(after_help = SETTINGS_HELP)]
    List {
        #[command(flatten)]
        target: TenantStoreArgs,
    },
    /// Delete a config: the action falls back to the tenant default.
    #[command(after_help = SETTINGS_HELP)]
    Delete {
        code: String,
        #[command(flatten)]
        target: TenantStoreArgs,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Evaluate a config against a sample request and show which rule matched and why.
    Test {
        /// A config (JSON or YAML), or an array of configs (an action's and `*`).
        #[arg(long)]
        config: PathBuf,
        /// The data points of the request (JSON or YAML), nested or with dotted keys.
        #[arg(long)]
        request: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// A SQLite database in --data-dir on this machine.
    Embedded,
    /// A DynamoDB table (AWS, or an emulator with --endpoint-url).
    Dynamodb,
}

/// What the commands that open a store also read, besides their flags (`--help` shows it).
/// `shared::config::ENV_VARIABLES` is the list; a test checks that every one is here.
const SETTINGS_HELP: &str = "\
Lifetimes and limits, from the environment only (positive integers; README, Configuration):
  TRUSTED_DEVICE_TOKEN_LIFETIME_SECONDS (600), TRUSTED_DEVICE_CHALLENGE_LIFETIME_SECONDS (300),
  TRUSTED_DEVICE_MAX_FAILED_SIGNATURES_PER_CHALLENGE (5),
  TRUSTED_DEVICE_ANONYMOUS_QR_STARTS_PER_SOURCE (30), TRUSTED_DEVICE_ANONYMOUS_QR_LIVE_CAP (2000),
  TRUSTED_DEVICE_ANONYMOUS_PASSKEY_OPTIONS_PER_SOURCE (120),
  TRUSTED_DEVICE_ANONYMOUS_PASSKEY_LIVE_CAP (10000),
  TRUSTED_DEVICE_FAILED_SIGNATURES_PER_SOURCE (30),
  TRUSTED_DEVICE_FAILED_SIGNATURES_PER_TENANT (1200),
  TRUSTED_DEVICE_DEVICE_ACTIONS_PER_CREDENTIAL_PER_HOUR (120),
  TRUSTED_DEVICE_RATE_LIMIT_WINDOW_SECONDS (60), TRUSTED_DEVICE_RATE_LIMIT_SHARDS (8).
Logs: RUST_LOG filters them (default info; webauthn_rs_core off unless named).";

/// Where the embedded store lives when `--data-dir` is not given.
const DEFAULT_DATA_DIR: &str = "./.trusted-device";

#[derive(clap::Args)]
struct StoreArgs {
    /// Where data lives.
    #[arg(
        long,
        env = "TRUSTED_DEVICE_STORE",
        value_enum,
        default_value = "embedded"
    )]
    store: StoreKind,
    /// Directory of the embedded store (with --store embedded) [default: ./.trusted-device]
    #[arg(long, env = "TRUSTED_DEVICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// What an answered write survives on the embedded store (with --store embedded): `full`,
    /// also a power loss (a disk flush per commit, shared by concurrent writes); `normal`, a
    /// killed process [default: full]
    #[arg(long, env = "TRUSTED_DEVICE_DURABILITY", value_enum)]
    durability: Option<DurabilityArg>,
    #[command(flatten)]
    dynamodb: DynamoArgs,
}

/// The store the flags name, once the flags that do not apply to it have been refused.
enum StoreChoice {
    Embedded {
        dir: PathBuf,
        durability: Durability,
    },
    Dynamodb {
        table: String,
        endpoint_url: Option<String>,
    },
}

impl StoreArgs {
    /// The store chosen, or why the flags are contradictory: a flag of the other store would
    /// otherwise be ignored silently (`tenant create --table prod` making a local tenant).
    fn choice(&self) -> Result<StoreChoice, String> {
        let misplaced = |flag: &str, env: &str, store: &str, chosen: &str| {
            format!(
                "{flag} (or {env}) applies only to --store {store}, and this command uses \
                 --store {chosen}: add --store {store}, or remove {flag}"
            )
        };
        match self.store {
            StoreKind::Embedded => {
                let embedded = "embedded (the default, or TRUSTED_DEVICE_STORE)";
                if self.dynamodb.table.is_some() {
                    return Err(misplaced(
                        "--table",
                        "TRUSTED_DEVICE_TABLE",
                        "dynamodb",
                        embedded,
                    ));
                }
                if self.dynamodb.endpoint_url.is_some() {
                    return Err(misplaced(
                        "--endpoint-url",
                        "TRUSTED_DEVICE_DYNAMODB_ENDPOINT",
                        "dynamodb",
                        embedded,
                    ));
                }
                Ok(StoreChoice::Embedded {
                    dir: self
                        .data_dir
                        .clone()
                        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
                    durability: match self.durability.unwrap_or(DurabilityArg::Full) {
                        DurabilityArg::Normal => Durability::Normal,
                        DurabilityArg::Full => Durability::Full,
                    },
                })
            }
            StoreKind::Dynamodb => {
                if self.data_dir.is_some() {
                    return Err(misplaced(
                        "--data-dir",
                        "TRUSTED_DEVICE_DATA_DIR",
                        "embedded",
                        "dynamodb",
                    ));
                }
                if self.durability.is_some() {
                    return Err(misplaced(
                        "--durability",
                        "TRUSTED_DEVICE_DURABILITY",
                        "embedded",
                        "dynamodb",
                    ));
                }
                // `DynamoArgs::table` is `required_if_eq("store", "dynamodb")`, so clap refuses
                // this first (tests/integration/cli.rs checks it); an error, never a panic.
                let Some(table) = self.dynamodb.table.clone() else {
                    return Err("--store dynamodb needs --table (or TRUSTED_DEVICE_TABLE)".into());
                };
                Ok(StoreChoice::Dynamodb {
                    table,
                    endpoint_url: self.dynamodb.endpoint_url.clone(),
                })
            }
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    /// SQLite `synchronous = NORMAL` (WAL): survives a killed process; a power loss may lose
    /// the last writes answered, never half of one.
    Normal,
    /// SQLite `synchronous = FULL` (WAL): every write is flushed to disk before its answer.
    Full,
}

#[derive(clap::Args)]
struct DynamoArgs {
    /// The DynamoDB table (with --store dynamodb, which needs it).
    #[arg(
        long,
        env = "TRUSTED_DEVICE_TABLE",
        required_if_eq("store", "dynamodb")
    )]
    table: Option<String>,
    /// A DynamoDB-compatible endpoint (with --store dynamodb), e.g. http://127.0.0.1:8000 for
    /// dynoxide; AWS when omitted (credentials and region from the usual AWS chain).
    #[arg(long, env = "TRUSTED_DEVICE_DYNAMODB_ENDPOINT")]
    endpoint_url: Option<String>,
}

#[derive(Subcommand)]
enum TableCommand {
    /// Create the table from the shared schema and enable TTL; does nothing if it exists.
    Create {
        /// The DynamoDB table to create.
        #[arg(long, env = "TRUSTED_DEVICE_TABLE")]
        table: String,
        /// A DynamoDB-compatible endpoint, e.g. http://127.0.0.1:8000 for dynoxide; AWS when
        /// omitted (credentials and region from the usual AWS chain).
        #[arg(long, env = "TRUSTED_DEVICE_DYNAMODB_ENDPOINT")]
        endpoint_url: Option<String>,
    },
}

#[derive(clap::Args)]
#[command(after_help = SETTINGS_HELP)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TRUSTED_DEVICE_ADDR", default_value = "127.0.0.1:8787")]
    addr: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
    /// Create or update this tenant at start (needs --secret-key).
    #[arg(long, env = "TRUSTED_DEVICE_TENANT_ID", requires = "secret_key")]
    tenant_id: Option<String>,
    /// The API secret key of --tenant-id: at least 32 characters with no guessable pattern,
    /// e.g. `sk_$(openssl rand -hex 32)` (it is stored as a fast hash).
    #[arg(
        long,
        env = "TRUSTED_DEVICE_SECRET_KEY",
        requires = "tenant_id",
        hide_env_values = true
    )]
    secret_key: Option<String>,
    /// Deliver push.created for --tenant-id to this URL (https, or http to localhost).
    #[arg(long, env = "TRUSTED_DEVICE_PUSH_WEBHOOK_URL", requires_all = ["tenant_id", "push_webhook_secret"])]
    push_webhook_url: Option<String>,
    /// The secret that signs those webhooks (X-Signature-V2): at least 32 characters with no
    /// guessable pattern, e.g. `whsec_$(openssl rand -hex 32)`.
    #[arg(
        long,
        env = "TRUSTED_DEVICE_PUSH_WEBHOOK_SECRET",
        requires = "push_webhook_url",
        hide_env_values = true
    )]
    push_webhook_secret: Option<String>,
    /// Log format: one line per request, `json` for log pipelines; RUST_LOG filters.
    #[arg(
        long,
        env = "TRUSTED_DEVICE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormatArg,
    /// Serve the metrics in the Prometheus text format at `GET /metrics` on this address
    /// (e.g. 127.0.0.1:9464); off when not given. Never the API's address: the counters are
    /// for the operator, not for the SDKs' clients (docs/operations.md).
    #[arg(long, env = "TRUSTED_DEVICE_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// The API's base URL as browsers reach it, for the pre-built UI that track's `url` points
    /// at (e.g. https://auth.example/v1 behind a proxy). Default: http://ADDR/v1 of --addr, or
    /// the request's Host when --addr is an unspecified address (0.0.0.0, [::]).
    #[arg(long, env = "TRUSTED_DEVICE_PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<PublicUrl>,
    #[command(flatten)]
    limits: LimitArgs,
}

fn parse_public_url(text: &str) -> Result<PublicUrl, String> {
    PublicUrl::parse(text)
}

/// The connection limits of `serve` (infra/src/server.rs says what each one does).
#[derive(clap::Args)]
struct LimitArgs {
    /// Seconds a client has to send a request line and headers, from its first byte (from
    /// connecting, for the first request); then the connection is closed.
    #[arg(long, env = "TRUSTED_DEVICE_HEADER_READ_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_read_timeout: u64,
    /// Seconds a client has to send a request body, from the end of its headers; then 408.
    #[arg(long, env = "TRUSTED_DEVICE_BODY_READ_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_read_timeout: u64,
    /// Seconds a kept-alive connection may wait for its next request; then it is closed.
    #[arg(long, env = "TRUSTED_DEVICE_IDLE_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    idle_timeout: u64,
    /// Connections served at once; more wait in the listen backlog until one closes.
    #[arg(long, env = "TRUSTED_DEVICE_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    max_connections: u64,
    /// Connections served at once from one address (an IPv6 /64); more get 429 and are closed.
    #[arg(long, env = "TRUSTED_DEVICE_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    max_connections_per_address: u64,
    /// Largest request line and headers, in bytes; larger ones get 431.
    #[arg(long, env = "TRUSTED_DEVICE_MAX_HEADER_BYTES", default_value_t = 16384,
          value_parser = clap::value_parser!(u64).range(1024..=1_048_576))]
    max_header_bytes: u64,
}

impl LimitArgs {
    fn limits(&self) -> trusted_device::Limits {
        // The ranges above keep every value within usize.
        let size = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
        trusted_device::Limits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            body_read_timeout: Duration::from_secs(self.body_read_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_connections: size(self.max_connections),
            max_connections_per_address: size(self.max_connections_per_address),
            max_header_bytes: size(self.max_header_bytes),
        }
    }
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its id and secret key (shown once).
    #[command(after_help = SETTINGS_HELP)]
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The tenant id; a random UUID when omitted.
        #[arg(long, env = "TRUSTED_DEVICE_TENANT_ID")]
        tenant_id: Option<String>,
    },
    /// Change a tenant's push and QR-code approval settings, its allowed web origins and its
    /// session settings.
    #[command(after_help = SETTINGS_HELP)]
    Configure(Box<ConfigureArgs>),
    /// Print every tenant as JSON: ids, settings, key ids and their times; never a secret or
    /// a private key.
    #[command(after_help = SETTINGS_HELP)]
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print one tenant as JSON, as `tenant list` does.
    #[command(after_help = SETTINGS_HELP)]
    Show(TenantStoreArgs),
    /// Make a second API secret key and print it (shown once); the current one keeps working
    /// until `tenant revoke-secret`. A tenant holds two at most.
    #[command(after_help = SETTINGS_HELP)]
    RotateSecret(TenantStoreArgs),
    /// Revoke an API secret key, named by the key id `tenant show` prints (never the secret).
    /// It stops working at once on a local server, within 60 s on warm Lambda instances.
    #[command(after_help = SETTINGS_HELP)]
    RevokeSecret {
        #[command(flatten)]
        target: TenantStoreArgs,
        /// The key id of the secret to revoke (`secretKeys[].keyId` of `tenant show`).
        #[arg(long)]
        key_id: String,
    },
    /// New token-signing (and challenge-sealing) and session signing keys sign from now on;
    /// the replaced ones keep verifying until everything they signed has expired.
    #[command(after_help = SETTINGS_HELP)]
    RotateKeys {
        #[command(flatten)]
        target: TenantStoreArgs,
        /// The replaced keys retire at once (a key that leaked): every token, sealed
        /// challenge id and access token they signed stops verifying now.
        #[arg(long)]
        revoke_previous: bool,
    },
}

#[derive(clap::Args)]
#[command(group(
    clap::ArgGroup::new("change")
        .args([
            "push_webhook_url",
            "remove_push_webhook",
            "events_webhook_url",
            "remove_events_webhook",
            "require_decision_signature",
            "allowed_origin",
            "no_allowed_origins",
            "session_client_id",
            "access_token_ttl",
            "refresh_token_ttl",
            "rotate_session_key",
            "passkey_rp_id",
            "remove_passkeys",
            "ui_name",
            "ui_logo_url",
            "ui_colour",
            "reset_ui",
        ])
        .required(true)
        .multiple(true)
))]
struct ConfigureArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The tenant to change.
    #[arg(long, env = "TRUSTED_DEVICE_TENANT_ID")]
    tenant_id: String,
    /// Deliver push.created webhooks here (https, or http to localhost), signed with
    /// --push-webhook-secret, or else with a secret generated and printed once.
    #[arg(
        long,
        env = "TRUSTED_DEVICE_PUSH_WEBHOOK_URL",
        conflicts_with = "remove_push_webhook"
    )]
    push_webhook_url: Option<String>,
    /// The secret that signs those webhooks (X-Signature-V2): at least 32 characters with no
    /// guessable pattern, e.g. `whsec_$(openssl rand -hex 32)`. Prefer the environment
    /// variable: arguments show in `ps`.
    #[arg(
        long,
        env = "TRUSTED_DEVICE_PUSH_WEBHOOK_SECRET",
        requires = "push_webhook_url",
        conflicts_with = "remove_push_webhook",
        hide_env_values = true
    )]
    push_webhook_secret: Option<String>,
    /// Stop delivering push.created; apps find push challenges by polling.
    #[arg(long)]
    remove_push_webhook: bool,
    /// Deliver the tenant's events here (authenticator.created, authenticator.deleted,
    /// action.state_changed, challenge.attempts_exceeded; https, or http to localhost), signed
    /// with --events-webhook-secret, or else with a secret generated and printed once.
    #[arg(
        long,
        env = "TRUSTED_DEVICE_EVENTS_WEBHOOK_URL",
        conflicts_with = "remove_events_webhook"
    )]
    events_webhook_url: Option<String>,
    /// The secret that signs events (X-Signature-V2), as strong as --push-webhook-secret.
    /// Prefer the environment variable: arguments show in `ps`.
    #[arg(
        long,
        env = "TRUSTED_DEVICE_EVENTS_WEBHOOK_SECRET",
        requires = "events_webhook_url",
        conflicts_with = "remove_events_webhook",
        hide_env_values = true
    )]
    events_webhook_secret: Option<String>,
    /// Stop sending events (changes waiting for delivery are dropped as they come up).
    #[arg(long)]
    remove_events_webhook: bool,
    /// Require a decisionSignature on every approve or reject.
    #[arg(long)]
    require_decision_signature: Option<bool>,
    /// A web origin whose pages may call the Client API from a browser (CORS), e.g.
    /// https://app.example: scheme, host and port, no path; https, or http://localhost.
    /// Repeat it for several; the list given replaces the tenant's list.
    #[arg(
        long = "allowed-origin",
        value_name = "ORIGIN",
        conflicts_with = "no_allowed_origins"
    )]
    allowed_origin: Vec<String>,
    /// Allow no web origin: browsers on other origins can no longer call the Client API.
    #[arg(long)]
    no_allowed_origins: bool,
    /// A client id sessions may be created for (the access tokens' `aud`); repeat it or
    /// separate ids with commas. Replaces the tenant's list. The first session setting also
    /// creates the tenant's ES256 signing key (published at
    /// /v1/tenants/ID/.well-known/jwks.json).
    #[arg(long, value_delimiter = ',')]
    session_client_id: Vec<String>,
    /// Lifetime of session access tokens, in seconds (1 to 86400; default 600).
    #[arg(long, value_name = "SECONDS")]
    access_token_ttl: Option<i64>,
    /// Lifetime of session refresh tokens, in seconds (at least the access token's, at most
    /// 365 days; default 2592000, 30 days). Each refresh starts a new lifetime.
    #[arg(long, value_name = "SECONDS")]
    refresh_token_ttl: Option<i64>,
    /// Make a new access-token signing key; the previous one stays published and verifying.
    #[arg(long)]
    rotate_session_key: bool,
    /// Turn passkeys on with this WebAuthn relying party id (a domain, e.g. example.com, or
    /// localhost). Replaces the tenant's whole passkey setting: give every --passkey-* option.
    #[arg(long, conflicts_with = "remove_passkeys")]
    passkey_rp_id: Option<String>,
    /// The relying party name browsers show; the RP id when omitted.
    #[arg(long, requires = "passkey_rp_id")]
    passkey_rp_name: Option<String>,
    /// An origin allowed in WebAuthn clientData (https://app.example.com, or http://localhost:PORT);
    /// repeat for several. Its host must be the RP id or under it.
    #[arg(long = "passkey-origin", requires = "passkey_rp_id", num_args = 1)]
    passkey_origins: Vec<String>,
    /// User verification for passkeys: required (the default) or preferred.
    #[arg(long, requires = "passkey_rp_id", value_parser = ["required", "preferred"])]
    passkey_user_verification: Option<String>,
    /// Require a registration attestation that chains to this CA (a PEM file); repeat for
    /// several. Without it, attestation `none` is accepted.
    #[arg(
        long = "passkey-attestation-ca",
        requires = "passkey_rp_id",
        num_args = 1
    )]
    passkey_attestation_cas: Vec<std::path::PathBuf>,
    /// Turn passkeys off (registered passkeys stay stored, unusable until turned on again).
    #[arg(long)]
    remove_passkeys: bool,
    /// The name the pre-built UI shows (track's `url`): 1 to 80 printable characters. The
    /// --ui-* options given replace the tenant's whole UI branding.
    #[arg(long, conflicts_with = "reset_ui")]
    ui_name: Option<String>,
    /// The pre-built UI's logo: an https image URL (its origin is added to the page's CSP).
    #[arg(long, conflicts_with = "reset_ui")]
    ui_logo_url: Option<String>,
    /// The pre-built UI's accent colour, #rrggbb.
    #[arg(long, conflicts_with = "reset_ui")]
    ui_colour: Option<String>,
    /// Back to the pre-built UI's default name, no logo and the default colour.
    #[arg(long)]
    reset_ui: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// Where the id of the development tenant made on first start is remembered.
const DEV_TENANT_FILE: &str = "dev-tenant-id";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Tenant(TenantCommand::Create { store, tenant_id }) => {
            telemetry::init(LogFormat::Text);
            create_tenant(&store, tenant_id).await
        }
        Command::Tenant(TenantCommand::Configure(args)) => {
            telemetry::init(LogFormat::Text);
            configure_tenant(*args).await
        }
        Command::Tenant(TenantCommand::List { store }) => {
            telemetry::init(LogFormat::Text);
            list_tenants(&store).await
        }
        Command::Tenant(TenantCommand::Show(target)) => {
            telemetry::init(LogFormat::Text);
            show_tenant(&target).await
        }
        Command::Tenant(TenantCommand::RotateSecret(target)) => {
            telemetry::init(LogFormat::Text);
            rotate_secret(&target).await
        }
        Command::Tenant(TenantCommand::RevokeSecret { target, key_id }) => {
            telemetry::init(LogFormat::Text);
            revoke_secret(&target, &key_id).await
        }
        Command::Tenant(TenantCommand::RotateKeys {
            target,
            revoke_previous,
        }) => {
            telemetry::init(LogFormat::Text);
            rotate_keys(&target, revoke_previous).await
        }
        Command::Table(TableCommand::Create {
            table,
            endpoint_url,
        }) => {
            telemetry::init(LogFormat::Text);
            create_table(&table, endpoint_url).await
        }
        Command::ActionConfig(command) => {
            telemetry::init(LogFormat::Text);
            action_config(command).await
        }
        Command::Rules(RulesCommand::Test { config, request }) => rules_test(&config, &request),
        Command::Device(args) => trusted_device::device_cli::run(args).await,
        Command::Conformance(args) => trusted_device::conformance::cli(args).await,
        Command::Openapi => {
            trusted_device::write_stdout(&trusted_device::openapi_json());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The store the arguments name, and the embedded store itself when it is that one (for the
/// expiry sweep). A store that cannot be opened is an error with its cause, at once: the
/// embedded store's file is opened, a DynamoDB table is described.
async fn open_store(args: &StoreArgs) -> Result<(Arc<dyn Store>, Option<EmbeddedStore>), String> {
    match args.choice()? {
        StoreChoice::Embedded { dir, durability } => {
            // 0700 when created here: the store's files hold the tenants' signing keys (the
            // store makes the files themselves 0600 whatever the umask).
            create_private_dir(&dir).map_err(|e| {
                format!(
                    "cannot create data directory {}: {}",
                    dir.display(),
                    chain(&e)
                )
            })?;
            let (store, import) = EmbeddedStore::open_data_dir(&dir, durability)
                .map_err(|e| explain_embedded_failure(&dir, &e))?;
            if let Some(import) = import {
                eprintln!(
                    "imported {} items from the old journal into {}; the journal is kept as {}",
                    import.items,
                    dir.join(shared::store::embedded::DB_FILE).display(),
                    import.renamed_to.display()
                );
            }
            Ok((Arc::new(store.clone()), Some(store)))
        }
        StoreChoice::Dynamodb {
            table,
            endpoint_url,
        } => {
            let shown = endpoint_url.clone().unwrap_or_else(|| "AWS".into());
            let config = DynamoConfig { endpoint_url };
            let meter = UsageMeter::default();
            let client = dynamodb::client(&config, meter.clone()).await;
            // One DescribeTable: a wrong endpoint, missing credentials or a missing table is
            // reported now with the SDK's own words, not later as "service unavailable".
            client
                .describe_table()
                .table_name(&table)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot open the DynamoDB table {table} ({shown}): {}",
                        chain(&e)
                    )
                })?;
            Ok((Arc::new(DynamoStore::new(client, table, meter)), None))
        }
    }
}

/// An error and its sources, `outer: inner: ...`, without repeating a source that the outer
/// message already includes.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// SQLite says only "unable to open database file" when the operating system refused; the
/// database file opened the ordinary way gives the system's reason, which is added. (A damaged
/// or newer database, or a journal that cannot be imported, is explained by the store.)
///
/// Nothing is created: a diagnosis must not leave an empty database file behind. When there
/// is no database file yet, the folder that SQLite would have created it in is asked instead.
fn explain_embedded_failure(dir: &std::path::Path, error: &OpenError) -> String {
    let mut text = chain(error);
    if !matches!(error, OpenError::Io { .. }) {
        return text;
    }
    let db = dir.join(shared::store::embedded::DB_FILE);
    let refused = match std::fs::OpenOptions::new().read(true).write(true).open(&db) {
        Ok(_) => None,
        Err(os) if os.kind() == std::io::ErrorKind::NotFound => {
            std::fs::metadata(dir).err().or_else(|| {
                std::fs::metadata(dir)
                    .is_ok_and(|folder| folder.permissions().readonly())
                    .then(|| std::io::Error::from(std::io::ErrorKind::PermissionDenied))
            })
        }
        Err(os) => Some(os),
    };
    if let Some(os) = refused {
        text.push_str(&format!(" (the system says: {os})"));
    }
    text
}

async fn open_app(args: &StoreArgs) -> Result<(App, Option<EmbeddedStore>), String> {
    open_app_with(args, |_| {}).await
}

/// [`open_app`] with the settings changed by `adjust` (`serve`'s flags) before the app is made.
async fn open_app_with(
    args: &StoreArgs,
    adjust: impl FnOnce(&mut Settings),
) -> Result<(App, Option<EmbeddedStore>), String> {
    let (store, embedded) = open_store(args).await?;
    let mut settings = Settings::from_env()?;
    adjust(&mut settings);
    Ok((
        App::new(
            shared::Ports {
                store,
                clock: Arc::new(SystemClock),
                notifier: Arc::new(shared::webhook::WebhookNotifier::for_settings(&settings)),
            },
            settings,
        ),
        embedded,
    ))
}

async fn create_table(table: &str, endpoint_url: Option<String>) -> Result<(), String> {
    let client = dynamodb::client(&DynamoConfig { endpoint_url }, UsageMeter::default()).await;
    let created = dynamodb::create_table(&client, table)
        .await
        .map_err(|e| format!("cannot create table {table}: {}", e.description()))?;
    if created {
        say!(
            "table {table} created, TTL enabled on `{}`",
            dynamodb::schema::TTL_ATTRIBUTE
        );
    } else {
        say!("table {table} already exists; left as it is");
    }
    Ok(())
}

async fn create_tenant(store: &StoreArgs, tenant_id: Option<String>) -> Result<(), String> {
    let (app, _) = open_app(store).await?;
    let id = tenant_id
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let (id, secret) = app
        .create_tenant(id)
        .await
        .map_err(|e| e.description().into_owned())?;
    say!("tenant id:  {id}");
    say!("secret key: {}", secret.expose());
    say!("The secret key is shown only now; only its hash is stored.");
    Ok(())
}

/// The app on the target's store and the tenant id it names.
async fn open_tenant(target: &TenantStoreArgs) -> Result<(App, TenantId), String> {
    let (app, _) = open_app(&target.store).await?;
    let id = TenantId::parse(target.tenant_id.clone()).map_err(|e| e.description().into_owned())?;
    Ok((app, id))
}

/// Prints a serialisable value as indented JSON (what `tenant list` and `show` print).
macro_rules! print_json {
    ($value:expr) => {{
        let text = serde_json::to_string_pretty($value).map_err(|e| e.to_string())?;
        say!("{text}");
        Ok(())
    }};
}

async fn list_tenants(store: &StoreArgs) -> Result<(), String> {
    let (app, _) = open_app(store).await?;
    let tenants = app
        .list_tenants()
        .await
        .map_err(|e| e.description().into_owned())?;
    print_json!(&tenants)
}

async fn show_tenant(target: &TenantStoreArgs) -> Result<(), String> {
    let (app, id) = open_tenant(target).await?;
    let tenant = app
        .show_tenant(&id)
        .await
        .map_err(|e| e.description().into_owned())?;
    print_json!(&tenant)
}

async fn rotate_secret(target: &TenantStoreArgs) -> Result<(), String> {
    let (app, id) = open_tenant(target).await?;
    let rotated = app
        .rotate_secret(&id)
        .await
        .map_err(|e| e.description().into_owned())?;
    say!("tenant id:  {id}");
    say!("key id:     {}", rotated.key_id);
    say!("secret key: {}", rotated.secret.expose());
    say!(
        "The secret key is shown only now; only its hash is stored. The previous one keeps \
         working until `trusted-device tenant revoke-secret --tenant-id {id} --key-id <its id>` \
         (`tenant show` lists the ids)."
    );
    Ok(())
}

async fn revoke_secret(target: &TenantStoreArgs, key_id: &str) -> Result<(), String> {
    let (app, id) = open_tenant(target).await?;
    app.revoke_secret(&id, key_id)
        .await
        .map_err(|e| e.description().into_owned())?;
    say!(
        "secret key {key_id} of tenant {id} revoked: refused at once by a local server on this \
         store, within {} s by warm Lambda instances (their tenant cache)",
        shared::tenant::TENANT_CACHE_TTL.as_secs()
    );
    Ok(())
}

async fn rotate_keys(target: &TenantStoreArgs, revoke_previous: bool) -> Result<(), String> {
    let (app, id) = open_tenant(target).await?;
    let retirement = if revoke_previous {
        Retirement::Now
    } else {
        Retirement::AfterUse
    };
    let rotated = app
        .rotate_keys(&id, retirement)
        .await
        .map_err(|e| e.description().into_owned())?;
    say!(
        "token signing key:   {} (the replaced one verifies until {})",
        rotated.token_kid,
        rotated.token_previous_retire_at.to_iso8601()
    );
    match rotated.session {
        Some((kid, retire_at)) => say!(
            "session signing key: {kid} (the replaced one stays in the JWKS until {})",
            retire_at.to_iso8601()
        ),
        None => say!("session signing key: none (sessions are not configured)"),
    }
    Ok(())
}

async fn action_config(command: ActionConfigCommand) -> Result<(), String> {
    let target = match &command {
        ActionConfigCommand::Set { target, .. }
        | ActionConfigCommand::Get { target, .. }
        | ActionConfigCommand::List { target }
        | ActionConfigCommand::Delete { target, .. } => target,
    };
    let (app, id) = open_tenant(target).await?;
    if !app.tenant_exists(&id).await.map_err(|e| e.to_string())? {
        return Err(format!("no tenant {id} in this store"));
    }
    let tenant = app
        .tenant_by_id(&id)
        .await
        .map_err(|e| e.description().into_owned())?;
    let key = |code: &str| ConfigKey::parse(code).map_err(|e| e.description().into_owned());
    match &command {
        ActionConfigCommand::Set { config, .. } => {
            let document = trusted_device::dry_run::read_document(config)?;
            let saved = app
                .put_action_config(&tenant, None, document)
                .await
                .map_err(|e| e.description().into_owned())?;
            say!(
                "saved the config of {} for tenant {id}: {} rule(s){}",
                saved.action_code,
                saved.rules.len(),
                saved
                    .default_outcome
                    .map(|o| format!(", default outcome {}", o.as_str()))
                    .unwrap_or_default()
            );
        }
        ActionConfigCommand::Get { code, .. } => {
            let config = app
                .get_action_config(&tenant, &key(code)?)
                .await
                .map_err(|e| e.description().into_owned())?;
            say!(
                "{}",
                serde_json::to_string_pretty(&config).map_err(|e| e.to_string())?
            );
        }
        ActionConfigCommand::List { .. } => {
            let configs = app
                .list_action_configs(&tenant)
                .await
                .map_err(|e| e.description().into_owned())?;
            say!(
                "{}",
                serde_json::to_string_pretty(&configs).map_err(|e| e.to_string())?
            );
        }
        ActionConfigCommand::Delete { code, .. } => {
            app.delete_action_config(&tenant, &key(code)?)
                .await
                .map_err(|e| e.description().into_owned())?;
            say!("deleted the config of {code} for tenant {id}");
        }
    }
    Ok(())
}

async fn configure_tenant(args: ConfigureArgs) -> Result<(), String> {
    let (app, _) = open_app(&args.store).await?;
    let id = TenantId::parse(args.tenant_id).map_err(|e| e.description().into_owned())?;
    let mut change = TenantSettingsChange {
        require_decision_signature: args.require_decision_signature,
        ..TenantSettingsChange::default()
    };
    if args.no_allowed_origins {
        change.allowed_origins = Some(Vec::new());
    } else if !args.allowed_origin.is_empty() {
        let origins = args
            .allowed_origin
            .iter()
            .map(|origin| AllowedOrigin::parse(origin))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.description().into_owned())?;
        change.allowed_origins = Some(origins);
    }
    let sessions_change = !args.session_client_id.is_empty()
        || args.access_token_ttl.is_some()
        || args.refresh_token_ttl.is_some()
        || args.rotate_session_key;
    let tenant_change = change.require_decision_signature.is_some()
        || change.allowed_origins.is_some()
        || args.passkey_rp_id.is_some()
        || args.remove_passkeys
        || args.push_webhook_url.is_some()
        || args.remove_push_webhook
        || args.events_webhook_url.is_some()
        || args.remove_events_webhook
        || args.ui_name.is_some()
        || args.ui_logo_url.is_some()
        || args.ui_colour.is_some()
        || args.reset_ui;
    if sessions_change {
        if !app
            .tenant_exists(&id)
            .await
            .map_err(|e| e.description().into_owned())?
        {
            return Err(format!("no tenant {id}"));
        }
        let config = app
            .configure_sessions(
                &id,
                (!args.session_client_id.is_empty()).then_some(args.session_client_id),
                args.access_token_ttl,
                args.refresh_token_ttl,
                args.rotate_session_key,
            )
            .await
            .map_err(|e| e.description().into_owned())?;
        say!(
            "tenant {id} sessions: client ids [{}], access tokens {} s, refresh tokens {} s, {} signing key(s)",
            config.client_ids.join(", "),
            config.access_token_ttl_seconds,
            config.refresh_token_ttl_seconds,
            config.signing_keys.len()
        );
        if !tenant_change {
            return Ok(());
        }
    }
    let mut new_secret = None;
    if let Some(url) = args.push_webhook_url {
        let secret = match args.push_webhook_secret {
            Some(secret) => {
                secret_strength::check(&secret, "The webhook secret (--push-webhook-secret)")?;
                secret
            }
            None => {
                let secret = app.new_webhook_secret().map_err(|e| e.to_string())?;
                new_secret = Some(secret.clone());
                secret
            }
        };
        change.push_webhook = Some(Some(WebhookEndpoint { url, secret }));
    } else if args.remove_push_webhook {
        change.push_webhook = Some(None);
    }
    let mut new_events_secret = None;
    if let Some(url) = args.events_webhook_url {
        let secret = match args.events_webhook_secret {
            Some(secret) => {
                secret_strength::check(&secret, "The webhook secret (--events-webhook-secret)")?;
                secret
            }
            None => {
                let secret = app.new_webhook_secret().map_err(|e| e.to_string())?;
                new_events_secret = Some(secret.clone());
                secret
            }
        };
        change.events_webhook = Some(Some(WebhookEndpoint { url, secret }));
    } else if args.remove_events_webhook {
        change.events_webhook = Some(None);
    }
    if let Some(rp_id) = args.passkey_rp_id {
        let mut attestation_cas = Vec::new();
        for path in &args.passkey_attestation_cas {
            attestation_cas.push(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            );
        }
        change.passkey = Some(Some(shared::domain::PasskeyConfig {
            rp_name: args.passkey_rp_name.unwrap_or_else(|| rp_id.clone()),
            rp_id,
            origins: args.passkey_origins,
            user_verification: args
                .passkey_user_verification
                .as_deref()
                .and_then(shared::domain::UserVerification::parse)
                .unwrap_or_default(),
            require_attestation: !attestation_cas.is_empty(),
            attestation_cas,
        }));
    } else if args.remove_passkeys {
        change.passkey = Some(None);
    }
    if args.reset_ui {
        change.ui = Some(None);
    } else if args.ui_name.is_some() || args.ui_logo_url.is_some() || args.ui_colour.is_some() {
        change.ui = Some(Some(shared::domain::UiBranding {
            name: args.ui_name,
            logo_url: args.ui_logo_url,
            colour: args.ui_colour,
        }));
    }
    let origins = change.allowed_origins.clone();
    app.configure_tenant(&id, change)
        .await
        .map_err(|e| e.description().into_owned())?;
    say!("tenant {id} configured");
    match origins.as_deref() {
        Some([]) => say!("allowed origins: none (browsers cannot call the Client API)"),
        Some(origins) => {
            let list: Vec<&str> = origins.iter().map(AllowedOrigin::as_str).collect();
            say!("allowed origins: {}", list.join(" "));
        }
        None => {}
    }
    if let Some(secret) = new_events_secret {
        say!("events webhook signing secret: {secret}");
        say!("It is shown only now. Verify X-Signature-V2 with it, as for push.created.");
    }
    if let Some(secret) = new_secret {
        say!("webhook signing secret: {secret}");
        say!("It is shown only now. Verify X-Signature-V2 with it, e.g. with @authsignal/node:");
        say!(
            "  new Authsignal({{ apiSecretKey: <this secret> }}).webhook.constructEvent(body, signature)"
        );
    }
    Ok(())
}

fn rules_test(config: &std::path::Path, request: &std::path::Path) -> Result<(), String> {
    use trusted_device::dry_run;
    let configs = dry_run::parse_configs(dry_run::read_document(config)?)?;
    let request = dry_run::read_document(request)?;
    trusted_device::write_stdout(&dry_run::explain(configs, request)?);
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    telemetry::init(match args.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    });
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base_url = format!("http://{addr}/v1");
    // Off by default: no recorder, no listener (DESIGN 11).
    if let Some(metrics_addr) = args.metrics_addr {
        // Port 0 asks for any free port, so two port-0 addresses never collide.
        if (metrics_addr == args.addr && metrics_addr.port() != 0) || metrics_addr == addr {
            return Err(format!(
                "--metrics-addr {metrics_addr} is the API's address; give the metrics their own"
            ));
        }
        let metrics_listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .map_err(|e| format!("cannot listen on {metrics_addr} for metrics: {e}"))?;
        let metrics_addr = metrics_listener.local_addr().map_err(|e| e.to_string())?;
        let handle = trusted_device::metrics_endpoint::install()?;
        trusted_device::metrics_endpoint::spawn(metrics_listener, handle);
        say!("metrics at http://{metrics_addr}/metrics");
    }
    // Track's `url` (issue #16): the flag, else this address, else each request's Host.
    let public_url = args.public_url.clone().unwrap_or_else(|| {
        if addr.ip().is_unspecified() {
            PublicUrl::FromHost { scheme: "http" }
        } else {
            PublicUrl::Fixed(base_url.clone())
        }
    });
    let (app, embedded) = open_app_with(&args.store, |settings| {
        settings.public_url = public_url;
    })
    .await?;

    match (args.tenant_id, args.secret_key) {
        (Some(id), Some(secret)) => {
            let id = TenantId::parse(id).map_err(|e| e.description().into_owned())?;
            secret_strength::check(&secret, "The secret key (--secret-key)")?;
            // Every secret is checked before the tenant is touched: a refused one changes nothing.
            if let Some(webhook_secret) = &args.push_webhook_secret {
                secret_strength::check(
                    webhook_secret,
                    "The webhook secret (--push-webhook-secret)",
                )?;
            }
            let secret = ApiSecret::parse(&secret).map_err(|e| e.description().into_owned())?;
            let created = app
                .ensure_tenant(&id, &secret)
                .await
                .map_err(|e| e.to_string())?;
            let verb = if created { "created" } else { "updated" };
            if let (Some(url), Some(secret)) = (args.push_webhook_url, args.push_webhook_secret) {
                let change = TenantSettingsChange {
                    push_webhook: Some(Some(WebhookEndpoint { url, secret })),
                    ..TenantSettingsChange::default()
                };
                app.configure_tenant(&id, change)
                    .await
                    .map_err(|e| e.description().into_owned())?;
            }
            say!("tenant {id} {verb}; base URL {base_url}");
        }
        _ => bootstrap_dev_tenant(&app, &args.store, &base_url).await?,
    }

    if let Some(store) = embedded {
        let policy = shared::events::outbox::RetryPolicy::from_lookup(
            |name| std::env::var(name).ok(),
            Duration::from_millis(app.settings().webhook_timeout_ms),
        )?;
        trusted_device::spawn_embedded_housekeeping(
            store,
            policy,
            app.settings().max_failed_attempts,
        );
    }

    let shutdown = shutdown_signal()?;
    tracing::info!(%addr, "listening");
    trusted_device::serve(
        listener,
        app,
        args.limits.limits(),
        trusted_device::SocketLimits::default(),
        shutdown,
    )
    .await
    .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// On the embedded store, the first start makes a development tenant and prints its secret
/// once; later starts reuse it and print only its id, remembered in the data directory.
async fn bootstrap_dev_tenant(app: &App, store: &StoreArgs, base_url: &str) -> Result<(), String> {
    let StoreChoice::Embedded { dir, .. } = store.choice()? else {
        // Tenants live in the table (`trusted-device tenant create --store dynamodb`); a
        // development tenant is only made for the embedded store.
        say!("Serving the tenants of the DynamoDB table; base URL: {base_url}");
        return Ok(());
    };
    let id_file = dir.join(DEV_TENANT_FILE);
    if let Ok(text) = std::fs::read_to_string(&id_file)
        && let Ok(id) = TenantId::parse(text.trim())
        && app.tenant_exists(&id).await.map_err(|e| e.to_string())?
    {
        say!("Development tenant {id} (its secret key was printed on the first start)");
        say!("Base URL: {base_url}");
        return Ok(());
    }
    let (id, secret) = app.create_tenant(None).await.map_err(|e| e.to_string())?;
    std::fs::write(&id_file, id.as_str())
        .map_err(|e| format!("cannot write {}: {e}", id_file.display()))?;
    say!("Created a development tenant. Keep the secret key: it is shown only now.");
    say!("  tenant id:  {id}");
    say!("  secret key: {}", secret.expose());
    say!("  base URL:   {base_url}");
    Ok(())
}

/// Ctrl-C and SIGTERM, registered now: a signal that arrives before the server is polled must
/// still stop it cleanly rather than kill it.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down");
    })
}

#[cfg(test)]
mod tests {
    use super::SETTINGS_HELP;
    use shared::config::{ENV_VARIABLES, Settings};
    use std::collections::HashMap;

    /// The `NAME (default)` pairs the help shows.
    fn help_defaults() -> HashMap<String, String> {
        let mut pairs = HashMap::new();
        let mut rest = SETTINGS_HELP;
        while let Some(start) = rest.find("TRUSTED_DEVICE_") {
            rest = &rest[start..];
            let name_end = rest.find(" (").expect("a default after the name");
            let value_end = rest.find(')').expect("the default's closing parenthesis");
            let name = &rest[..name_end];
            let value = &rest[name_end + 2..value_end];
            assert!(
                pairs.insert(name.to_owned(), value.to_owned()).is_none(),
                "{name} twice"
            );
            rest = &rest[value_end..];
        }
        pairs
    }

    /// The help names every variable the settings read, each once, and the default it shows
    /// is `Settings::default()`'s: the settings read from exactly the shown defaults are the
    /// defaults.
    #[test]
    fn the_settings_help_shows_the_real_defaults() {
        let shown = help_defaults();
        let mut names: Vec<&str> = shown.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = ENV_VARIABLES.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
        assert_eq!(
            Settings::from_lookup(|name| shown.get(name).cloned()),
            Ok(Settings::default())
        );
    }
}
