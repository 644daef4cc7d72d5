//! The `spin.toml` v2 schema as users write it, field for field.
//!
//! These types only describe the file's shape; `super::validate` turns them into the checked
//! [`App`](super::App) model. Every table rejects unknown keys, so a typo is an error that names
//! the key instead of a silently ignored setting. Values that a later check must point at keep
//! their position in the file ([`Spanned`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole manifest file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    pub spin_manifest_version: Spanned<toml::Value>,
    pub application: RawApplication,
    #[serde(default)]
    pub variables: BTreeMap<Spanned<String>, RawVariable>,
    #[serde(default)]
    pub trigger: RawTriggers,
    #[serde(default)]
    pub component: BTreeMap<Spanned<String>, RawComponent>,
}

/// `[application]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApplication {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    /// Deployment targets (Spin's `targets`): accepted, not used when serving.
    #[serde(default, rename = "targets")]
    pub _targets: Vec<String>,
    #[serde(default)]
    pub trigger: RawApplicationTriggers,
    /// Tools' own tables; ledge's (`tool.ledge`) is read on its own by `super::gateway`.
    #[serde(default, rename = "tool")]
    pub _tool: BTreeMap<String, BTreeMap<String, serde::de::IgnoredAny>>,
}

/// `[application.trigger]`: app-wide settings per trigger type.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApplicationTriggers {
    pub http: Option<RawApplicationHttp>,
    pub redis: Option<RawApplicationRedis>,
}

/// `[application.trigger.redis]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApplicationRedis {
    pub address: String,
}

/// `[application.trigger.http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApplicationHttp {
    pub base: Option<Spanned<String>>,
}

/// An entry of the top-level `[variables]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariable {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

/// `[[trigger.<type>]]` arrays.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTriggers {
    #[serde(default)]
    pub http: Vec<RawHttpTrigger>,
    #[serde(default)]
    pub redis: Vec<Spanned<RawRedisTrigger>>,
}

/// One `[[trigger.redis]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedisTrigger {
    /// Accepted as Spin does; nothing refers to a Redis trigger by id.
    #[serde(rename = "id")]
    pub _id: Option<String>,
    pub channel: String,
    pub component: Spanned<String>,
    /// Overrides `[application.trigger.redis] address` for this trigger.
    pub address: Option<String>,
}

/// One `[[trigger.http]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpTrigger {
    pub id: Option<String>,
    pub route: Spanned<RawRoute>,
    pub component: Option<Spanned<RawComponentRef>>,
    pub static_response: Option<Spanned<RawStaticResponse>>,
    pub executor: Option<Spanned<toml::Table>>,
}

/// `route = "/path"` or `route = { private = true }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRoute {
    Path(String),
    Private { private: bool },
}

/// `component = "id"` or an inline component table.
#[derive(Debug)]
pub enum RawComponentRef {
    Id(String),
    Inline(Box<RawComponent>),
}

/// Written by hand rather than `#[serde(untagged)]`: untagged enums buffer their input, which
/// loses the positions (`Spanned`) inside an inline component and the precise error messages.
impl<'de> Deserialize<'de> for RawComponentRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawComponentRef;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a component id or an inline component table")
            }

            fn visit_str<E: serde::de::Error>(self, id: &str) -> Result<Self::Value, E> {
                Ok(RawComponentRef::Id(id.to_string()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let component =
                    RawComponent::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawComponentRef::Inline(Box::new(component)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `static_response = { status_code, headers, body }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStaticResponse {
    pub status_code: Option<u16>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
}

/// `[component.<id>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    pub source: Spanned<RawSource>,
    pub description: Option<String>,
    #[serde(default)]
    pub files: Vec<RawFileMount>,
    #[serde(default)]
    pub exclude_files: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub ai_models: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    pub build: Option<RawBuild>,
    #[serde(default, rename = "dependencies_inherit_configuration")]
    pub _dependencies_inherit_configuration: bool,
    #[serde(default)]
    pub dependencies: toml::Table,
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
}

/// `source = "path.wasm"` or `source = { url, digest }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSource {
    Path(String),
    Remote { url: String, digest: String },
}

/// One entry of `files`: a glob, or `{ source, destination }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawFileMount {
    Pattern(String),
    Placement { source: String, destination: String },
}

/// `build = { command, workdir, watch }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuild {
    pub command: RawCommand,
    pub workdir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

/// A build command: one shell line, or several run in order.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawCommand {
    One(String),
    Many(Vec<String>),
}

/// `[component.<id>.tool.ledge]`: ledge's own per-component settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponentLedge {
    pub max_instance_reuse_count: Option<usize>,
    pub max_instance_concurrent_reuse_count: Option<usize>,
    pub max_concurrent_requests: Option<usize>,
    pub static_files: Option<RawStaticFiles>,
}

/// `static_files = { fallback, not_found, cache_control }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStaticFiles {
    pub fallback: Option<String>,
    pub not_found: Option<String>,
    pub cache_control: Option<String>,
}
