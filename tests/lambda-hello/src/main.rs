//! A hello-world `lambda_http` function: the smallest thing the Lambda runtime can run, built
//! with the workspace's release profile. `measure-lambda-init` starts it next to the real
//! functions so that their cold init is read against what the runtime alone costs
//! (docs/performance.md, "Lambda functions"). Not deployed: `template.yaml` does not name it.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_request: Request| async {
        Ok::<_, Error>(
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from("{\"hello\":\"world\"}"))?,
        )
    }))
    .await
}
