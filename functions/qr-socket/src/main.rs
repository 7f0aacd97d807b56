//! The `qr-socket` Lambda function: the QR-code WebSocket's `$connect`, `$default` and
//! `$disconnect` routes behind an API Gateway WebSocket API ([`qr_socket`]).

use lambda_http::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Built once per execution environment, shared by every invocation.
    let app = shared::lambda::app_from_env().await?;
    lambda_http::lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let app = app.clone();
        // The EMF lines of this event, in its invocation (DESIGN 11).
        async move { shared::lambda::flushed(qr_socket::handler(&app, event)).await }
    }))
    .await
}
