//! The `qr-socket` function: the QR-code WebSocket (spec 3.8) behind an API Gateway WebSocket
//! API. API Gateway holds the connections; each of its routes invokes this function once:
//!
//! | route | here |
//! |---|---|
//! | `$connect` | the `Sec-WebSocket-Protocol` credential checked ([`shared::App::open_socket`]); accepted with `authsignal-ws` echoed and the session stored (one PutItem), or refused with the error's status, so the handshake fails |
//! | `$default` | one message: the session read (one GetItem), the message handled as on the local server ([`shared::App::socket_message`]), the answer sent with `PostToConnection` |
//! | `$disconnect` | the session deleted (one DeleteItem) |
//!
//! A message from a connection without a session (expired after API Gateway's 2 hours, or
//! never accepted) is answered `unauthorized` and the connection is closed.
//!
//! Why a function of its own rather than the `challenge` function: WebSocket events are not
//! HTTP API events (no method or path to route on; `lambda_http` would have to accept every
//! event shape in every function), the socket's traffic (a message per kiosk every 9 minutes,
//! connects and disconnects) scales apart from the device routes, and its IAM policy is its
//! own. The `challenge` function, where claims and answers happen, only pushes: it reads the
//! connection stored with the QR code and calls `PostToConnection` (`shared::sockets_aws`).

use lambda_http::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_http::{Error, LambdaEvent};
use serde_json::{Value, json};
use shared::App;
use shared::error::Error as AppError;
use shared::http::error::HttpError;
use shared::usecase::qr_socket::Handshake;
use shared::websocket::{self, ConnectionId, ServerMessage};

/// The Lambda handler: what `main` runs for every event.
pub async fn handler(
    app: &App,
    event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
) -> Result<Value, Error> {
    Ok(handle(app, event.payload).await)
}

/// One WebSocket event; returns the integration response API Gateway expects.
pub async fn handle(app: &App, event: ApiGatewayWebsocketProxyRequest) -> Value {
    let context = &event.request_context;
    let route = context.route_key.clone().unwrap_or_default();
    let Some(connection) = context
        .connection_id
        .as_deref()
        .and_then(|id| ConnectionId::parse(id).ok())
    else {
        return refusal(&AppError::invalid_request("no connection id"), &route);
    };
    let response = match route.as_str() {
        "$connect" => connect(app, connection.clone(), &event).await,
        "$disconnect" => {
            if let Err(error) = app.forget_socket(&connection).await {
                tracing::warn!(error = %error, "could not delete a socket's session");
            }
            ok()
        }
        _ => message(app, connection.clone(), &event).await,
    };
    tracing::info!(
        route = %route,
        connection = %connection,
        status = response["statusCode"].as_u64().unwrap_or_default(),
        "socket event"
    );
    response
}

fn ok() -> Value {
    json!({ "statusCode": 200 })
}

/// A refused event in the REST error shape: for `$connect`, API Gateway answers the handshake
/// with this status, so no socket opens.
fn refusal(error: &AppError, route: &str) -> Value {
    let error = HttpError::from(error.clone());
    tracing::info!(route, error = error.code(), "socket event refused");
    json!({
        "statusCode": error.status().as_u16(),
        "headers": { "Content-Type": "application/json" },
        "body": error.body().to_string(),
    })
}

async fn connect(
    app: &App,
    connection: ConnectionId,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Value {
    let header = lambda_http::http::header::SEC_WEBSOCKET_PROTOCOL;
    let from = if event.multi_value_headers.contains_key(&header) {
        &event.multi_value_headers
    } else {
        &event.headers
    };
    let subprotocols: Vec<&str> = from
        .get_all(&header)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let user_agent = event
        .headers
        .get(lambda_http::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .or(event.request_context.identity.user_agent.as_deref());
    let handshake = Handshake {
        subprotocols,
        ip: event
            .request_context
            .identity
            .source_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok()),
        user_agent,
        origin: event
            .headers
            .get(lambda_http::http::header::ORIGIN)
            .map(|v| v.to_str().unwrap_or_default()),
        host: event
            .headers
            .get(lambda_http::http::header::HOST)
            .and_then(|v| v.to_str().ok()),
    };
    let session = match app.open_socket(connection, handshake).await {
        Ok(session) => session,
        Err(error) => return refusal(&error, "$connect"),
    };
    if let Err(error) = app.remember_socket(&session).await {
        return refusal(&error, "$connect");
    }
    json!({
        "statusCode": 200,
        "headers": { "Sec-WebSocket-Protocol": websocket::SUBPROTOCOL },
    })
}

async fn message(
    app: &App,
    connection: ConnectionId,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Value {
    let session = match app.socket_session(&connection).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            let error = ServerMessage::error(&AppError::Unauthorized);
            app.send_to_socket(&connection, &error).await;
            app.close_socket(&connection).await;
            return ok();
        }
        Err(error) => {
            app.send_to_socket(&connection, &ServerMessage::error(&error))
                .await;
            return ok();
        }
    };
    let reply = if event.is_base64_encoded {
        ServerMessage::error(&AppError::invalid_request(
            "Messages are JSON text, not binary.",
        ))
    } else {
        ServerMessage::answer(
            app.socket_message(&session, event.body.as_deref().unwrap_or_default())
                .await,
        )
    };
    app.send_to_socket(&connection, &reply).await;
    ok()
}
