//! End-to-end tests: a real `ledge` process, real HTTP on loopback, real guest components built
//! from `components/`.

mod harness;

mod connections;
mod data;
mod domains;
mod edge;
mod failures;
mod gateway;
mod languages;
mod lifecycle;
mod llm;
mod manifest_errors;
mod outbound_mqtt;
mod outbound_mysql;
mod outbound_postgres;
mod outbound_redis;
mod remote_sources;
mod request_shape;
mod routing;
mod sample_app;
mod sockets;
mod sql;
mod static_files;
mod templates;
mod traces;
mod trigger_redis;
