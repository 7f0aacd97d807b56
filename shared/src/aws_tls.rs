//! The HTTPS client of the AWS SDK clients in the Lambda functions: it trusts only the roots
//! of Amazon Trust Services, which sign every AWS endpoint the functions call (DynamoDB, the
//! API Gateway management API).
//!
//! Why not the platform's roots, the SDK's default: the default client reads and parses every
//! certificate of the system's bundle (about 145 here) when it makes its first connector, and
//! in a cold Lambda start that was the largest single cost of init (issue #18, a `perf`
//! profile in docs/performance.md). Five roots parse in a fraction of that, and a trust store
//! limited to the issuer of AWS's endpoints is also the stricter one. The local server and the
//! CLI keep the platform's roots: their `--endpoint-url` may be any DynamoDB-compatible server.

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder, HttpClientError, proxy::ProxyConfig};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Amazon Root CA 1 to 4 and Starfield Services Root G2 (PEM, from Debian's
/// ca-certificates), the roots of Amazon Trust Services.
pub const AMAZON_TRUST_ROOTS: &str = include_str!("amazon-trust-roots.pem");

/// The SDK's default HTTPS client (hyper 1, rustls on aws-lc, the proxy settings of the
/// environment), with [`AMAZON_TRUST_ROOTS`] as its only roots. An error here fails the
/// function's start: it never falls back to the platform's roots.
pub fn amazon_roots_https_client() -> Result<SharedHttpClient, HttpClientError> {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_ROOTS.as_bytes());
    let context = TlsContext::builder().with_trust_store(trust).build()?;
    Ok(
        Builder::new().build_with_connector_fn(move |settings, components| {
            let mut connector = ConnectorBuilder::default()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .tls_context(context.clone());
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            connector.build()
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDK adds each certificate with `expect("cert parsable")` when it builds a
    /// connector: a damaged file would panic on the first request, so it is parsed here.
    #[test]
    fn the_amazon_roots_are_five_parsable_certificates() {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let certificates = CertificateDer::pem_slice_iter(AMAZON_TRUST_ROOTS.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("valid PEM");
        assert_eq!(certificates.len(), 5);
        let mut roots = rustls::RootCertStore::empty();
        for certificate in certificates {
            roots.add(certificate).expect("a parsable root certificate");
        }
        assert_eq!(roots.len(), 5);
    }
}
