//! `trusted-device`: the local server and the operator CLI.
//!
//! ```text
//! trusted-device serve [--addr 127.0.0.1:8787] [--data-dir ./.trusted-device]
//!                      [--tenant-id ID --secret-key SECRET]
//! trusted-device tenant create [--data-dir DIR] [--tenant-id ID]
//! ```

use clap::{Parser, Subcommand, ValueEnum};
use shared::App;
use shared::clock::{Clock, SystemClock};
use shared::config::Settings;
use shared::domain::TenantId;
use shared::store::embedded::EmbeddedStore;
use shared::telemetry::{self, LogFormat};
use shared::usecase::tenants::ApiSecret;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

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
}

#[derive(clap::Args)]
struct StoreArgs {
    /// Directory of the embedded store.
    #[arg(
        long,
        env = "TRUSTED_DEVICE_DATA_DIR",
        default_value = "./.trusted-device"
    )]
    data_dir: PathBuf,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TRUSTED_DEVICE_ADDR", default_value = "127.0.0.1:8787")]
    addr: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
    /// Create or update this tenant at start (needs --secret-key).
    #[arg(long, env = "TRUSTED_DEVICE_TENANT_ID", requires = "secret_key")]
    tenant_id: Option<String>,
    /// The API secret key of --tenant-id (at least 16 characters).
    #[arg(
        long,
        env = "TRUSTED_DEVICE_SECRET_KEY",
        requires = "tenant_id",
        hide_env_values = true
    )]
    secret_key: Option<String>,
    /// Log format.
    #[arg(
        long,
        env = "TRUSTED_DEVICE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormatArg,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its id and secret key (shown once).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The tenant id; a random UUID when omitted.
        #[arg(long)]
        tenant_id: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// Where the id of the development tenant made on first start is remembered.
const DEV_TENANT_FILE: &str = "dev-tenant-id";
const DB_FILE: &str = "trusted-device.redb";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Tenant(TenantCommand::Create { store, tenant_id }) => {
            telemetry::init(LogFormat::Text);
            create_tenant(&store.data_dir, tenant_id).await
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

fn open_app(data_dir: &Path) -> Result<(App, EmbeddedStore), String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let path = data_dir.join(DB_FILE);
    let store = EmbeddedStore::open(&path).map_err(|_| {
        format!(
            "cannot open {} (is another trusted-device process using this --data-dir?)",
            path.display()
        )
    })?;
    let settings = Settings::from_env()?;
    let app = App::new(Arc::new(store.clone()), Arc::new(SystemClock), settings);
    Ok((app, store))
}

async fn create_tenant(data_dir: &Path, tenant_id: Option<String>) -> Result<(), String> {
    let (app, _) = open_app(data_dir)?;
    let id = tenant_id
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let (id, secret) = app
        .create_tenant(id)
        .await
        .map_err(|e| e.description().into_owned())?;
    println!("tenant id:  {id}");
    println!("secret key: {}", secret.expose());
    println!("The secret key is shown only now; only its hash is stored.");
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    telemetry::init(match args.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    });
    let (app, store) = open_app(&args.store.data_dir)?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base_url = format!("http://{addr}/v1");

    match (args.tenant_id, args.secret_key) {
        (Some(id), Some(secret)) => {
            let id = TenantId::parse(id).map_err(|e| e.description().into_owned())?;
            let secret = ApiSecret::parse(&secret).map_err(|e| e.description().into_owned())?;
            let created = app
                .ensure_tenant(&id, &secret)
                .await
                .map_err(|e| e.to_string())?;
            let verb = if created { "created" } else { "updated" };
            println!("tenant {id} {verb}; base URL {base_url}");
        }
        _ => bootstrap_dev_tenant(&app, &args.store.data_dir, &base_url).await?,
    }

    // DynamoDB's TTL deletes expired items in production; here a sweep does. Reads check
    // expiry themselves, so this only keeps the file small.
    let sweeper = store.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            if let Ok(purged) = sweeper.purge_expired(SystemClock.now()).await
                && purged > 0
            {
                tracing::info!(purged, "expired records removed");
            }
        }
    });

    tracing::info!(%addr, "listening");
    trusted_device::serve(listener, Arc::new(app), shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// The first start makes a development tenant and prints its secret once; later starts
/// reuse it and print only its id.
async fn bootstrap_dev_tenant(app: &App, data_dir: &Path, base_url: &str) -> Result<(), String> {
    let id_file = data_dir.join(DEV_TENANT_FILE);
    if let Ok(text) = std::fs::read_to_string(&id_file)
        && let Ok(id) = TenantId::parse(text.trim())
        && app.tenant_exists(&id).await.map_err(|e| e.to_string())?
    {
        println!("Development tenant {id} (its secret key was printed on the first start)");
        println!("Base URL: {base_url}");
        return Ok(());
    }
    let (id, secret) = app.create_tenant(None).await.map_err(|e| e.to_string())?;
    std::fs::write(&id_file, id.as_str())
        .map_err(|e| format!("cannot write {}: {e}", id_file.display()))?;
    println!("Created a development tenant. Keep the secret key: it is shown only now.");
    println!("  tenant id:  {id}");
    println!("  secret key: {}", secret.expose());
    println!("  base URL:   {base_url}");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
