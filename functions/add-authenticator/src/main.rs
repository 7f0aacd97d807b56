//! The `add-authenticator` Lambda function: the routes of [`add_authenticator::ROUTES`] behind API Gateway.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Built once per execution environment, shared by every invocation.
    let app = shared::lambda::app_from_env().await?;
    shared::lambda::serve(add_authenticator::router(app)).await
}
