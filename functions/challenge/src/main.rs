//! The `challenge` Lambda function: the routes of [`challenge::ROUTES`] behind API Gateway.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Built once per execution environment, shared by every invocation.
    let app = shared::lambda::app_from_env().await?;
    shared::lambda::serve(challenge::router(app)).await
}
