//! The local web UI and JSON API for installers and carers.
//!
//! Layout:
//! - [`WebConfig`]: the `[web]` section;
//! - [`roles`]: what the UI needs from the rest of the gateway, as small
//!   role traits, and [`Roles`], one handle per role;
//! - [`backend`]: the roles over the store, hub and rule engine ([`StoreBackend`]);
//! - [`memory`]: the roles in memory, for the API tests only;
//! - [`routes`]: the routes as warp filters (guards, body limits, errors);
//! - [`accounts`]: setup, login, logout and user management endpoints;
//! - [`auth`]: accounts (PBKDF2), sessions, setup code;
//! - [`throttle`]: login throttling (growing delays) and remembered devices;
//! - [`audit`]: the audit log of configuration changes;
//! - [`alerts`]: the bounded recent-alerts list fed from the live stream;
//! - [`slots`]: connection slots per address (flood protection);
//! - [`tls`]: the per-device self-signed certificate and the TLS acceptor;
//! - [`http`]: shared state, the error shape, Host/session/Origin/CSRF checks;
//! - [`api`]: the JSON handlers; [`pages`]: HTML shells and assets;
//! - [`rules_page`]: view, edit, roll back and "try" the alert rules;
//! - [`credentials`]: Wi-Fi device credentials for the local broker;
//! - [`commissioning`]: per-device tests, sign-off reports sent upstream;
//! - [`system`]: backup/restore, factory reset, logs, MQTT test, OTA upload;
//! - [`uplinks`]: the installer's uplink editor (versioned, test connection).
//!
//! Invariants: every route except `/login`, `/setup`, `/healthz`, the static
//! assets and the login/setup API needs a session; every state-changing
//! request passes the Origin check and carries the session's CSRF token;
//! plain HTTP is served only on loopback or when `allow_plain_http` is set.
//! Nothing here runs a shell.

pub mod accounts;
pub mod alerts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod commissioning;
pub mod credentials;
pub mod http;
pub mod memory;
pub mod pages;
pub mod passwords;
pub mod roles;
pub mod routes;
pub mod rules_page;
pub mod server;
pub mod slots;
pub mod system;
pub mod throttle;
pub mod tls;
pub mod uplinks;
pub mod validate;

pub use backend::StoreBackend;
pub use roles::{BackendError, Roles};
pub use server::serve;

pub use crate::config::WebConfig;
