//! The `challenge` Lambda function: the routes of [`challenge::ROUTES`] behind API Gateway.

// An execution environment serves one request at a time: a current-thread runtime starts no
// worker threads and hands no task between them (init and warm CPU measured lower in
// docs/performance.md, "The runtime's flavour").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    // Built once per execution environment, shared by every invocation.
    let app = shared::lambda::app_from_env().await?;
    shared::lambda::serve(challenge::router(app)).await
}
