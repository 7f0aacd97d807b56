//! The `events` Lambda function: the table's DynamoDB Stream into signed webhooks ([`events`]).

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use shared::clock::{Clock, SystemClock};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once per execution environment, shared by every invocation: the app (its tenant
    // cache, its DynamoDB client) and the HTTPS client of the webhooks.
    let app = shared::lambda::app_from_env().await?;
    let sender = Arc::new(shared::webhook::HttpWebhookSender::default());
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::dynamodb::Event>| {
            let app = app.clone();
            let sender = sender.clone();
            // The EMF lines of this batch (its store errors), in its invocation (DESIGN 11).
            async move {
                let handled =
                    events::handle(&app, sender.as_ref(), event.payload, || SystemClock.now());
                Ok::<_, lambda_runtime::Error>(shared::lambda::flushed(handled).await)
            }
        },
    ))
    .await
}
