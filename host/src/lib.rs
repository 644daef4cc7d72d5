//! ledge: an edge-native WebAssembly function platform that serves Spin apps.
//!
//! The crate follows the path of a request: [`manifest`] reads the app, [`router`] picks the
//! route, [`server`] accepts connections and walks each request through route -> [`gateway`]
//! policies -> invoke -> respond, and [`engine`] compiles, instantiates and invokes the components, which reach the
//! [`data`] tier (key-value, SQLite, variables) and outbound services ([`outbound_http`], [`outbound_redis`], [`outbound_mqtt`], [`outbound_postgres`], [`outbound_mysql`], raw [`sockets`]; [`llm`] answers
//! that no model is served), each gated by [`allowed_hosts`],
//! through WIT interfaces. [`up`] and
//! [`builder`] are the `ledge up` and `ledge build` commands, sharing [`serving`] with
//! `ledge node`; [`edge`] is the cluster (`ledge node`, `ledge deploy`, `ledge status`);
//! [`cli`] parses their flags. [`sources`] fetches the components a manifest names by URL.

#![deny(missing_docs)]

pub mod allowed_hosts;
pub mod builder;
pub mod capabilities;
pub mod cli;
pub mod data;
pub mod edge;
pub mod engine;
pub mod files;
pub mod gateway;
pub mod llm;
pub mod manifest;
pub mod outbound_http;
pub mod outbound_mqtt;
pub mod outbound_mysql;
pub mod outbound_postgres;
pub mod outbound_redis;
pub mod reply;
pub mod router;
pub mod server;
pub mod serving;
pub mod sockets;
pub mod sources;
pub mod templates;
pub mod trigger_redis;
pub mod up;
