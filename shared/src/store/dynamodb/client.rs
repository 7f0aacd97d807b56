//! The client, built once per process.

use super::meter::UsageMeter;
use aws_sdk_dynamodb::Client;

/// Where and how to reach DynamoDB.
#[derive(Debug, Clone, Default)]
pub struct DynamoConfig {
    /// An emulator's URL (dynoxide, moto); AWS when `None`.
    pub endpoint_url: Option<String>,
}

/// Builds the client once per process: credentials and region from the usual AWS chain, or
/// dummy ones for an emulator endpoint; bounded retries and timeouts, so a DynamoDB outage
/// turns into a prompt 503 rather than a hung request.
pub async fn client(config: &DynamoConfig, meter: UsageMeter) -> Client {
    build(config, meter, None).await
}

/// [`client`] for the Lambda functions: its HTTPS client trusts only Amazon Trust Services'
/// roots ([`crate::aws_tls`]), which spares a cold start the parsing of the platform's whole
/// certificate bundle.
pub async fn lambda_client(
    config: &DynamoConfig,
    meter: UsageMeter,
) -> Result<Client, aws_smithy_http_client::HttpClientError> {
    let https = crate::aws_tls::amazon_roots_https_client()?;
    Ok(build(config, meter, Some(https)).await)
}

async fn build(
    config: &DynamoConfig,
    meter: UsageMeter,
    http_client: Option<aws_smithy_runtime_api::client::http::SharedHttpClient>,
) -> Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use std::time::Duration;

    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(6))
                .build(),
        );
    if let Some(url) = &config.endpoint_url {
        loader = loader
            .endpoint_url(url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local", "local", None, None, "emulator",
            ));
    }
    if let Some(http_client) = http_client {
        loader = loader.http_client(http_client);
    }
    let shared = loader.load().await;
    let dynamo = aws_sdk_dynamodb::config::Builder::from(&shared)
        .interceptor(meter)
        .build();
    Client::from_conf(dynamo)
}
