//! The `validate` Lambda function: the routes of [`validate::ROUTES`] behind API Gateway.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Built once per execution environment, shared by every invocation.
    let app = shared::lambda::app_from_env().await?;
    shared::lambda::serve(validate::router(app)).await
}
