//! A real DynamoDB-compatible server for tests: dynoxide's HTTP server, embedded, on a free
//! loopback port, over an in-memory database. It speaks the DynamoDB wire protocol, so the
//! adapter is exercised exactly as against AWS; it can be stopped and restarted on the same
//! port with its data, to test outages.

use shared::store::dynamodb;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct LocalDynamo {
    db: dynoxide::Database,
    addr: SocketAddr,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl LocalDynamo {
    pub async fn start() -> LocalDynamo {
        let db = dynoxide::Database::memory().expect("an in-memory dynoxide database");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("a bound address");
        let mut local = LocalDynamo {
            db,
            addr,
            running: None,
        };
        local.serve(listener);
        local
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(dynoxide::server::serve_with_shutdown(
            listener,
            self.db.clone(),
            async {
                let _ = rx.await;
            },
        ));
        let task = tokio::spawn(async move {
            let _ = task.await;
        });
        self.running = Some((tx, task));
    }

    /// The endpoint URL to give the AWS SDK.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving; the data stays.
    pub async fn stop(&mut self) {
        if let Some((tx, task)) = self.running.take() {
            let _ = tx.send(());
            let _ = task.await;
        }
    }

    /// Serves the same data on the same port again.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("the same port again");
        self.serve(listener);
    }
}

impl LocalDynamo {
    /// A fresh table on this server, named after `prefix`, in which `tenant` holds
    /// `secret`: what a Lambda function's binary needs before its first event (the
    /// bootstrap, Lambda conformance and init-time tests).
    pub async fn table_with_tenant(&self, prefix: &str, tenant: &str, secret: &str) -> String {
        use shared::usecase::tenants::ApiSecret;
        use std::sync::Arc;
        let table = unique_table(prefix);
        let meter = dynamodb::UsageMeter::default();
        let config = dynamodb::DynamoConfig {
            endpoint_url: Some(self.endpoint()),
        };
        let client = dynamodb::client(&config, meter.clone()).await;
        dynamodb::create_table(&client, &table)
            .await
            .expect("a table on the local server");
        let app = crate::app(
            Arc::new(dynamodb::DynamoStore::new(client, &table, meter)),
            Arc::new(shared::clock::SystemClock),
            shared::config::Settings::default(),
        );
        app.ensure_tenant(
            &shared::domain::TenantId::parse(tenant).expect("a valid tenant id"),
            &ApiSecret::parse(secret).expect("a valid secret"),
        )
        .await
        .expect("the tenant stored");
        table
    }
}

/// A table name no other test uses.
pub fn unique_table(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}
