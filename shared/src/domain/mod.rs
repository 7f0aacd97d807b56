//! The domain: validated identifiers, the records the service keeps, and the use cases.
//!
//! Use cases take the store, a clock and a notifier through [`crate::App`]'s ports
//! ([`crate::Ports`]); they know nothing of HTTP.

pub mod approval;
pub mod ids;
pub mod model;
pub mod origin;
pub mod passkey;
pub mod policy;
pub mod session;
pub mod signals;
pub mod ui;

pub use approval::*;
pub use ids::*;
pub use model::*;
pub use origin::AllowedOrigin;
pub use passkey::*;
pub use session::*;
pub use ui::{RedirectUrl, UiBranding};
