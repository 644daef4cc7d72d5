//! Outbound PostgreSQL: `fermyon:spin/postgres@2.0.0` (spin-sdk 5's `pg`),
//! `spin:postgres/postgres@3.0.0` and `@4.0.0` (spin-sdk 5's `pg3`, `pg4`) and `@4.2.0`
//! (spin-sdk 7's async `pg`, with `connection-builder` and the streamed `query-async`).
//!
//! A guest opens a connection string (`host=... user=...` or `postgres://user@host:port/db`)
//! whose every host its `allowed_outbound_hosts` names with a `postgres://host:port` entry;
//! anything else is `connection-failed("address ... is not permitted")` before a socket is
//! opened. TLS follows the string's `sslmode` (`prefer` by default) with the web's root
//! certificates, or the one a builder's `set-ca-root` gives.
//!
//! The capability in one place: the client ([`PgConnection`]), the value model
//! ([`values`]), the view an instance gives ([`HasOutboundView`](crate::allowed_hosts::HasOutboundView)), the interface versions
//! (`v2`, `v3`, `v4`) and [`add_to_linker`].

/// `From<RowSet>` for version module `$v`'s `RowSet` and `Column` (whose value and data-type
/// conversions each version writes).
macro_rules! row_set_conversion {
    ($v:ident) => {
        impl From<$crate::outbound_postgres::RowSet> for $v::RowSet {
            fn from(set: $crate::outbound_postgres::RowSet) -> Self {
                Self {
                    columns: set
                        .columns
                        .into_iter()
                        .map(|column| $v::Column {
                            name: column.name,
                            data_type: column.data_type.into(),
                        })
                        .collect(),
                    rows: set
                        .rows
                        .into_iter()
                        .map(|row| row.into_iter().map(Into::into).collect())
                        .collect(),
                }
            }
        }
    };
}

/// `From<PgError>` for the versions whose errors are text (2.0.0's `rdbms-types`, 3.0.0).
macro_rules! text_error_conversion {
    ($v:ident) => {
        impl From<$crate::outbound_postgres::PgError> for $v::Error {
            fn from(error: $crate::outbound_postgres::PgError) -> Self {
                use $crate::outbound_postgres::PgError;
                match error {
                    PgError::ConnectionFailed(message) => Self::ConnectionFailed(message),
                    PgError::BadParameter(message) => Self::BadParameter(message),
                    PgError::QueryFailed(text, _) => Self::QueryFailed(text),
                    PgError::ValueConversionFailed(message) => Self::ValueConversionFailed(message),
                    PgError::Other(message) => Self::Other(message),
                }
            }
        }
    };
}

/// The synchronous `connection` functions every version shares (`open`, `query`, `execute`),
/// for the version module `$v` whose `Error`, `RowSet` and `ParameterValue` convert from and
/// to the shared model.
macro_rules! sync_connection {
    ($v:ident) => {
        impl $v::HostConnection for $crate::allowed_hosts::OutboundView<'_> {
            async fn open(
                &mut self,
                address: String,
            ) -> wasmtime::Result<
                Result<
                    wasmtime::component::Resource<$crate::outbound_postgres::PgConnection>,
                    $v::Error,
                >,
            > {
                use $crate::outbound_postgres::{PgBuilder, PgConnection};
                match PgConnection::open(self.allowed, &PgBuilder::new(address)).await {
                    Ok(connection) => Ok(Ok(self.table.push(connection)?)),
                    Err(error) => Ok(Err(error.into())),
                }
            }

            async fn query(
                &mut self,
                connection: wasmtime::component::Resource<$crate::outbound_postgres::PgConnection>,
                statement: String,
                params: Vec<$v::ParameterValue>,
            ) -> wasmtime::Result<Result<$v::RowSet, $v::Error>> {
                let connection = self.table.get(&connection)?.clone();
                let params = params.into_iter().map(Into::into).collect();
                Ok(connection
                    .query(&statement, params)
                    .await
                    .map(Into::into)
                    .map_err(Into::into))
            }

            async fn execute(
                &mut self,
                connection: wasmtime::component::Resource<$crate::outbound_postgres::PgConnection>,
                statement: String,
                params: Vec<$v::ParameterValue>,
            ) -> wasmtime::Result<Result<u64, $v::Error>> {
                let connection = self.table.get(&connection)?.clone();
                let params = params.into_iter().map(Into::into).collect();
                Ok(connection
                    .execute(&statement, params)
                    .await
                    .map_err(Into::into))
            }

            async fn drop(
                &mut self,
                connection: wasmtime::component::Resource<$crate::outbound_postgres::PgConnection>,
            ) -> wasmtime::Result<()> {
                self.table.delete(connection)?;
                Ok(())
            }
        }
    };
}

mod bindings;
mod v2;
mod v3;
mod v4;
pub mod values;

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::ToSql;
use wasmtime::component::{HasData, Linker};

use crate::allowed_hosts::{AllowedHosts, HasOutboundView, OutboundView};
use values::{DataType, Value};

/// The `HasData` marker for the Postgres interfaces.
pub struct Postgres;

impl HasData for Postgres {
    type Data<'a> = OutboundView<'a>;
}

/// Adds every Postgres interface version to `linker`.
pub fn add_to_linker<T: HasOutboundView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use bindings::{fermyon, spin};
    fermyon::spin::postgres::add_to_linker::<T, Postgres>(linker, T::outbound_view)?;
    fermyon::spin::rdbms_types::add_to_linker::<T, Postgres>(linker, T::outbound_view)?;
    spin::postgres3_0_0::postgres::add_to_linker::<T, Postgres>(linker, T::outbound_view)?;
    spin::postgres4_0_0::postgres::add_to_linker::<T, Postgres>(linker, T::outbound_view)?;
    spin::postgres4_2_0::postgres::add_to_linker::<T, Postgres>(linker, T::outbound_view)?;
    Ok(())
}

/// A server's account of a failed statement (4.x's `db-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    /// The whole error as one line.
    pub as_text: String,
    /// `ERROR`, `FATAL`, ...
    pub severity: String,
    /// The SQLSTATE code.
    pub code: String,
    /// The primary message.
    pub message: String,
    /// The detail, if any.
    pub detail: Option<String>,
    /// The other fields the server sent (hint, schema, table, column, constraint, ...).
    pub extras: Vec<(String, String)>,
}

/// Why a Postgres call failed, in the terms every interface version shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgError {
    /// The address is malformed, not allowed or unreachable.
    ConnectionFailed(String),
    /// A parameter cannot be bound.
    BadParameter(String),
    /// The server refused the statement (with its account when it gave one).
    QueryFailed(String, Option<Box<DbError>>),
    /// A value cannot be read.
    ValueConversionFailed(String),
    /// Anything else.
    Other(String),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(error: tokio_postgres::Error) -> Self {
        let Some(db) = error.as_db_error() else {
            let text = error.to_string();
            let source = std::error::Error::source(&error).map(ToString::to_string);
            let detailed = source.map_or(text.clone(), |source| format!("{text}: {source}"));
            return if error.is_closed() {
                Self::ConnectionFailed(detailed)
            } else if text.starts_with("error serializing parameter") {
                Self::BadParameter(detailed)
            } else if text.starts_with("error deserializing column") {
                Self::ValueConversionFailed(detailed)
            } else {
                Self::QueryFailed(detailed, None)
            };
        };
        let mut extras = Vec::new();
        let mut extra = |name: &str, value: Option<&str>| {
            if let Some(value) = value {
                extras.push((name.to_string(), value.to_string()));
            }
        };
        extra("hint", db.hint());
        extra("schema", db.schema());
        extra("table", db.table());
        extra("column", db.column());
        extra("datatype", db.datatype());
        extra("constraint", db.constraint());
        extra("where", db.where_());
        let as_text = db.to_string();
        Self::QueryFailed(
            as_text.clone(),
            Some(Box::new(DbError {
                as_text,
                severity: db.severity().to_string(),
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                extras,
            })),
        )
    }
}

/// A column of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
}

/// A query's columns and rows.
#[derive(Debug, Clone, PartialEq)]
pub struct RowSet {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows, each a value per column.
    pub rows: Vec<Vec<Value>>,
}

/// How long connecting may take before it is `connection-failed`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a `connection-builder` has been told so far.
#[derive(Clone)]
pub struct PgBuilder {
    address: String,
    ca_root: Option<String>,
}

impl PgBuilder {
    /// A builder for `address`.
    pub fn new(address: String) -> Self {
        Self {
            address,
            ca_root: None,
        }
    }

    /// Trusts `certificate` (PEM) as the root of the server's chain.
    pub fn set_ca_root(&mut self, certificate: String) -> Result<(), PgError> {
        parse_certificates(&certificate)?;
        self.ca_root = Some(certificate);
        Ok(())
    }
}

fn parse_certificates(
    pem: &str,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, PgError> {
    use rustls_pki_types::pem::PemObject;
    let certificates = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PgError::Other(format!("the CA root is not PEM: {e}")))?;
    if certificates.is_empty() {
        return Err(PgError::Other("the CA root holds no certificate".into()));
    }
    Ok(certificates)
}

/// An open connection, as a guest resource.
#[derive(Clone)]
pub struct PgConnection(Arc<tokio_postgres::Client>);

impl PgConnection {
    /// Connects as `builder` says, if `allowed` permits every host of its address.
    pub async fn open(allowed: &AllowedHosts, builder: &PgBuilder) -> Result<Self, PgError> {
        let address = &builder.address;
        let mut config: tokio_postgres::Config = address
            .parse()
            .map_err(|e| PgError::ConnectionFailed(format!("invalid address: {e}")))?;
        let not_permitted =
            || PgError::ConnectionFailed(format!("address {address} is not permitted"));
        let hosts = config.get_hosts();
        let hostaddrs = config.get_hostaddrs();
        if hosts.is_empty() {
            return Err(PgError::ConnectionFailed(format!(
                "address {address} names no host"
            )));
        }
        // tokio-postgres connects to `hostaddr` when one is given (the host then only names
        // the server for TLS), so that is the address the allow-list must grant.
        let ports = config.get_ports();
        for index in 0..hosts.len().max(hostaddrs.len()) {
            let port = ports.get(index).or(ports.first()).copied().unwrap_or(5432);
            let target = match (hostaddrs.get(index), hosts.get(index)) {
                (Some(ip), _) => ip.to_string(),
                (None, Some(Host::Tcp(host))) => host.clone(),
                (None, _) => return Err(not_permitted()),
            };
            if !allowed.permits_network("postgres", &target, port) {
                tracing::info!(
                    "outbound Postgres to {target}:{port} denied: not in allowed_outbound_hosts"
                );
                return Err(not_permitted());
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let failed = |e: tokio_postgres::Error| {
            let source = std::error::Error::source(&e).map(|s| format!(": {s}"));
            PgError::ConnectionFailed(format!("{e}{}", source.unwrap_or_default()))
        };
        let client = if config.get_ssl_mode() == SslMode::Disable {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(failed)?;
            tokio::spawn(connection);
            client
        } else {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(
                builder.ca_root.as_deref(),
            )?);
            let (client, connection) = config.connect(tls).await.map_err(failed)?;
            tokio::spawn(connection);
            client
        };
        Ok(Self(Arc::new(client)))
    }

    /// Runs `statement` and returns its columns and rows.
    pub async fn query(&self, statement: &str, params: Vec<Value>) -> Result<RowSet, PgError> {
        let prepared = self.0.prepare(statement).await?;
        let columns = prepared
            .columns()
            .iter()
            .map(|column| Column {
                name: column.name().to_string(),
                data_type: DataType::of(column.type_()),
            })
            .collect();
        let rows = self
            .0
            .query(&prepared, &references(&params))
            .await?
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|index| row.try_get::<_, Value>(index))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RowSet { columns, rows })
    }

    /// Runs `statement` and returns how many rows it changed.
    pub async fn execute(&self, statement: &str, params: Vec<Value>) -> Result<u64, PgError> {
        Ok(self.0.execute(statement, &references(&params)).await?)
    }
}

/// The parameters as tokio-postgres takes them.
fn references(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// TLS with the web's roots, or only `ca_root` when given.
fn tls_config(ca_root: Option<&str>) -> Result<rustls::ClientConfig, PgError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_root {
        Some(pem) => {
            for certificate in parse_certificates(pem)? {
                roots
                    .add(certificate)
                    .map_err(|e| PgError::Other(format!("the CA root is unusable: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
