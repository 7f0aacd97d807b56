//! [`SocketNotifier`] on AWS: API Gateway's `PostToConnection` and `DeleteConnection` on the
//! WebSocket API's management endpoint, `https://{api-id}.execute-api.{region}.amazonaws.com/
//! {stage}` (`TRUSTED_DEVICE_WEBSOCKET_ENDPOINT`, set by `template.yaml`). A connection that is
//! gone (410 `GoneException`) is [`Posted::Gone`], never an error: the caller forgets it.
//!
//! The IAM permission is `execute-api:ManageConnections` on that API's `@connections` only.

use crate::error::{Error, Result};
use crate::websocket::{ConnectionId, Posted, SocketNotifier};
use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::primitives::Blob;

/// The environment variable naming the management endpoint.
pub const ENDPOINT_ENV: &str = "TRUSTED_DEVICE_WEBSOCKET_ENDPOINT";

#[derive(Debug, Clone)]
pub struct ApiGatewaySockets {
    client: Client,
}

/// What the client talks to: AWS through the functions' HTTPS client, or a local stand-in
/// with dummy credentials.
enum Trust {
    AmazonRoots(aws_smithy_runtime_api::client::http::SharedHttpClient),
    StandIn(aws_sdk_apigatewaymanagement::config::Credentials),
}

impl ApiGatewaySockets {
    /// Credentials and region from the usual AWS chain (the function's role in Lambda); the
    /// same bounded retries and timeouts as the DynamoDB client, so a slow API Gateway delays
    /// a device's answer by seconds at most.
    pub async fn new(endpoint: &str) -> Result<Self, aws_smithy_http_client::HttpClientError> {
        let https = crate::aws_tls::amazon_roots_https_client()?;
        Ok(Self::build(endpoint, Trust::AmazonRoots(https)).await)
    }

    /// For a local stand-in endpoint: fixed dummy credentials and region.
    pub async fn with_dummy_credentials(endpoint: &str) -> Self {
        let credentials = aws_sdk_apigatewaymanagement::config::Credentials::new(
            "local", "local", None, None, "stand-in",
        );
        Self::build(endpoint, Trust::StandIn(credentials)).await
    }

    async fn build(endpoint: &str, trust: Trust) -> Self {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        use std::time::Duration;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_attempt_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_secs(4))
                    .build(),
            )
            .endpoint_url(endpoint);
        match trust {
            Trust::StandIn(credentials) => {
                loader = loader
                    .region(aws_config::Region::new("us-east-1"))
                    .credentials_provider(credentials);
            }
            // On AWS: the functions' HTTPS client (crate::aws_tls), as the DynamoDB client's.
            Trust::AmazonRoots(https) => loader = loader.http_client(https),
        }
        let shared = loader.load().await;
        ApiGatewaySockets {
            client: Client::new(&shared),
        }
    }
}

#[async_trait]
impl SocketNotifier for ApiGatewaySockets {
    async fn post(&self, connection: &ConnectionId, text: String) -> Result<Posted> {
        match self
            .client
            .post_to_connection()
            .connection_id(connection.as_str())
            .data(Blob::new(text.into_bytes()))
            .send()
            .await
        {
            Ok(_) => Ok(Posted::Sent),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_gone_exception()) =>
            {
                Ok(Posted::Gone)
            }
            Err(error) => {
                tracing::warn!(error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&error), "PostToConnection failed");
                Err(Error::Internal)
            }
        }
    }

    async fn close(&self, connection: &ConnectionId) -> Result<()> {
        match self
            .client
            .delete_connection()
            .connection_id(connection.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_gone_exception()) =>
            {
                Ok(())
            }
            Err(error) => {
                tracing::warn!(error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&error), "DeleteConnection failed");
                Err(Error::Internal)
            }
        }
    }
}
