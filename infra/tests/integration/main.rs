//! The CLI's and the local server's integration tests as one test binary, one module per area.
//! Each drives the real `trusted-device` binary (or the template), so none needs a process of
//! its own: the crash test SIGKILLs the server it started, never this process.

mod cli;
mod crash;
mod device_conformance;
mod events;
mod keys;
mod metrics;
mod openapi;
mod template;
mod template_websocket;

/// A free loopback port (the OS picks it; the listener is closed again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
