//! The local web UI and JSON API for installers and carers.
//!
//! Layout:
//! - [`WebConfig`]: the `[web]` section;
//! - [`backend`]: the [`Backend`] trait (everything the UI needs from the
//!   rest of the gateway) and its implementation over the store and hub;
//! - [`memory`]: an in-memory backend for the API tests only;
//! - [`accounts`]: setup, login, logout and user management endpoints;
//! - [`auth`]: accounts (PBKDF2), sessions, setup code, login throttling;
//! - [`audit`]: the audit log of configuration changes;
//! - [`alerts`]: the bounded recent-alerts list fed from the live stream;
//! - [`tls`]: the per-device self-signed certificate and the TLS acceptor;
//! - [`http`]: the request pipeline (headers, session, CSRF, routing);
//! - [`api`]: the JSON handlers; [`pages`]: HTML shells and assets;
//! - [`rules_page`]: view, edit, roll back and "try" the alert rules;
//! - [`system`]: backup/restore, factory reset, logs, MQTT test, OTA upload.
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
pub mod http;
pub mod memory;
pub mod pages;
pub mod rules_page;
pub mod server;
pub mod system;
pub mod tls;
pub mod validate;

pub use backend::{Backend, BackendError, StoreBackend};
pub use server::serve;

pub use crate::config::WebConfig;
