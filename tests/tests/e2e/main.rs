//! The end-to-end suite as one test binary (one module per area), so the AWS SDK stack and the
//! server are linked once rather than once per file. The helpers they share are the crate's
//! (`e2e_tests`: the harness, devices, the route tables, the API Gateway fixtures).
//!
//! `cargo test -p e2e-tests --test e2e <module>::` runs one area, e.g. `approvals::`.

mod approvals;
mod connections;
mod cors;
mod dynamodb;
mod expiry;
mod flows;
mod fuzz;
mod input;
mod keys;
mod lambda_conformance;
mod lambda_events;
mod lambda_tls;
mod limits;
mod load_tool;
mod metrics_lambda;
mod openapi;
mod passkeys;
mod qr_socket_lambda;
mod qr_websocket;
mod rules;
mod security;
mod sessions;
mod store_faults;
mod ui;
mod ui_settings;
