//! The `validate` Lambda function: the routes of [`validate::ROUTES`] behind API Gateway.

/// mimalloc, as the local server: measured on these functions' cold init and warm invocations
/// next to glibc's allocator and a hello-world function (docs/performance.md, "Lambda
/// functions: the allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Built once per execution environment, shared by every invocation.
    let app = shared::lambda::app_from_env().await?;
    shared::lambda::serve(validate::router(app)).await
}
