//! Each function's routes, declared once.
//!
//! [`routes!`](crate::routes) takes one table of `METHOD "path" => handler` and generates both
//! the function's `ROUTES` (the `(method, path)` list that `template.yaml`, its test and the API
//! Gateway fixture generator read) and its `router(app)` (what the Lambda and the local server
//! serve). A route is a line of that table, so it cannot be served locally and be missing from
//! API Gateway, or the other way round.
//!
//! The methods are axum's routing functions, so behaviour is as with hand-written
//! `get(h).post(h2)` chains (a `GET` route answers `HEAD` too). Two lines with the same method
//! and path panic when the router is built (axum refuses overlapping method routes), which every
//! test that builds a router sees.

#[doc(hidden)]
pub use axum::Router as __Router;
#[doc(hidden)]
pub use axum::routing::{
    delete as __delete, get as __get, options as __options, patch as __patch, post as __post,
    put as __put,
};

/// Declares a function's routes once; see the [module docs](crate::http::routes).
///
/// ```ignore
/// shared::routes! {
///     POST "/v1/validate" => validate,
///     // Java and .NET send POST, the others GET (spec 2.2).
///     GET "/v1/challenges" => get_challenge,
///     POST "/v1/challenges" => get_challenge,
/// }
/// ```
/// generates `pub const ROUTES: &[(&str, &str)]` (in table order),
/// `pub fn router(app: SharedApp) -> axum::Router` and `pub fn openapi_operations(..)` (the
/// lines as the OpenAPI document describes them, [`crate::openapi`]). The methods are `GET`, `POST`, `PUT`,
/// `PATCH`, `DELETE` and `OPTIONS` (each path's CORS preflight, [`crate::http::cors::preflight`]);
/// any other word does not compile.
#[macro_export]
macro_rules! routes {
    ($($method:ident $path:literal => $handler:expr),+ $(,)?) => {
        /// The routes this function serves, as `(method, path)`: the table [`router`] serves.
        pub const ROUTES: &[(&str, &str)] = &[$(($crate::__route_method_name!($method), $path)),+];

        /// This function's routes: exactly those of [`ROUTES`].
        pub fn router(app: $crate::http::SharedApp) -> $crate::http::routes::__Router {
            $crate::http::routes::__Router::new()
                $(.route($path, $crate::__route_method!($method, $handler)))+
                .with_state(app)
        }

        /// This function's routes as the OpenAPI document describes them: each line of
        /// [`ROUTES`], with what its handler's types say (`shared::openapi`, issue #19).
        pub fn openapi_operations(
            generators: &mut $crate::openapi::Generators,
        ) -> ::std::vec::Vec<$crate::openapi::Operation> {
            ::std::vec![$($crate::openapi::describe(
                &$handler,
                $crate::__route_method_name!($method),
                $path,
                env!("CARGO_PKG_NAME"),
                stringify!($handler),
                generators,
            )),+]
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __route_method {
    (GET, $handler:expr) => {
        $crate::http::routes::__get($handler)
    };
    (POST, $handler:expr) => {
        $crate::http::routes::__post($handler)
    };
    (PUT, $handler:expr) => {
        $crate::http::routes::__put($handler)
    };
    (PATCH, $handler:expr) => {
        $crate::http::routes::__patch($handler)
    };
    (DELETE, $handler:expr) => {
        $crate::http::routes::__delete($handler)
    };
    (OPTIONS, $handler:expr) => {
        $crate::http::routes::__options($handler)
    };
}

/// The method's name, checked: only the methods [`__route_method!`] routes.
#[doc(hidden)]
#[macro_export]
macro_rules! __route_method_name {
    (GET) => {
        "GET"
    };
    (POST) => {
        "POST"
    };
    (PUT) => {
        "PUT"
    };
    (PATCH) => {
        "PATCH"
    };
    (DELETE) => {
        "DELETE"
    };
    (OPTIONS) => {
        "OPTIONS"
    };
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    mod function {
        async fn first() -> &'static str {
            "first"
        }
        async fn second() -> &'static str {
            "second"
        }

        crate::routes! {
            GET "/a/{id}" => first,
            POST "/a/{id}" => second,
            DELETE "/b" => first,
        }
    }

    async fn call(method: Method, path: &str) -> (StatusCode, String) {
        let settings = crate::config::Settings::default();
        let app = std::sync::Arc::new(crate::App::new(
            crate::Ports {
                store: std::sync::Arc::new(
                    crate::store::embedded::EmbeddedStore::in_memory().unwrap(),
                ),
                clock: std::sync::Arc::new(crate::clock::SystemClock),
                notifier: std::sync::Arc::new(crate::webhook::WebhookNotifier::for_settings(
                    &settings,
                )),
            },
            settings,
        ));
        let response = function::router(app)
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The list and the router come from one table: every listed route is served by its
    /// handler, and nothing else is.
    #[tokio::test]
    async fn the_router_serves_exactly_the_listed_routes() {
        assert_eq!(
            function::ROUTES,
            &[("GET", "/a/{id}"), ("POST", "/a/{id}"), ("DELETE", "/b")]
        );
        assert_eq!(
            call(Method::GET, "/a/1").await,
            (StatusCode::OK, "first".into())
        );
        assert_eq!(
            call(Method::POST, "/a/1").await,
            (StatusCode::OK, "second".into())
        );
        assert_eq!(
            call(Method::DELETE, "/b").await,
            (StatusCode::OK, "first".into())
        );
        // As `get(h)` always did: HEAD on a GET route.
        assert_eq!(call(Method::HEAD, "/a/1").await.0, StatusCode::OK);
        // Not in the table: not served.
        assert_eq!(
            call(Method::PATCH, "/a/1").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            call(Method::GET, "/b").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(call(Method::GET, "/c").await.0, StatusCode::NOT_FOUND);
    }

    /// The OpenAPI operations are the table's lines too, each named by its handler.
    #[test]
    fn the_openapi_operations_are_the_listed_routes() {
        let operations = function::openapi_operations(&mut Default::default());
        let lines: Vec<_> = operations
            .iter()
            .map(|o| (o.method, o.path, o.handler))
            .collect();
        assert_eq!(
            lines,
            [
                ("GET", "/a/{id}", "first"),
                ("POST", "/a/{id}", "second"),
                ("DELETE", "/b", "first"),
            ]
        );
    }
}
