//! The custom authorizer: a component of the app decides. It is handed the request's method,
//! path, query and headers (never the body) and answers 2xx to allow, 401 or 403 to deny (its
//! body is the reason). On allow, its `ledge-auth-*` response headers become the identity:
//! `ledge-auth-subject`, `ledge-auth-scopes` (space-separated), any other as context. A
//! decision is cached per caller (the values of the identity headers) for the configured TTL;
//! a failing authorizer denies with 500 and is asked again next time.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Empty, Limited};

use super::auth::Denial;
use super::identity::{IDENTITY_PREFIX, Identity};
use crate::engine::ComponentPool;
use crate::manifest::ComponentAuthorizerSettings;

/// The longest deny reason read from the authorizer's body.
const MAX_REASON_BYTES: usize = 1024;

/// Decisions cached at most.
const MAX_DECISIONS: u64 = 100_000;

/// One configured component authorizer.
pub struct ComponentAuthorizer {
    name: String,
    settings: ComponentAuthorizerSettings,
    pool: Arc<ComponentPool>,
    decisions: moka::sync::Cache<String, Result<Identity, Denial>>,
}

impl ComponentAuthorizer {
    /// Authorizer `name`, deciding with `pool`.
    pub fn new(
        name: &str,
        settings: ComponentAuthorizerSettings,
        pool: Arc<ComponentPool>,
    ) -> Self {
        Self {
            name: name.to_string(),
            decisions: moka::sync::Cache::builder()
                .max_capacity(MAX_DECISIONS)
                .time_to_live(settings.ttl)
                .build(),
            settings,
            pool,
        }
    }

    /// The decision for this request: cached, or asked of the component.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Identity, Denial> {
        let caller = self
            .settings
            .identity_headers
            .iter()
            .map(|name| {
                parts
                    .headers
                    .get(name.as_str())
                    .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n");
        let cached = !self.settings.ttl.is_zero();
        if cached && let Some(decision) = self.decisions.get(&caller) {
            return decision;
        }
        let decision = self.ask(parts).await;
        let failed = decision
            .as_ref()
            .is_err_and(|denial| denial.status.is_server_error());
        if cached && !failed {
            self.decisions.insert(caller, decision.clone());
        }
        decision
    }

    async fn ask(&self, parts: &Parts) -> Result<Identity, Denial> {
        let mut request = Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone());
        for (name, value) in &parts.headers {
            if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
                request = request.header(name, value);
            }
        }
        let request = request
            .body(
                Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .expect("a copy of a valid request is valid");
        let response = self
            .pool
            .invoke(request, Default::default())
            .await
            .map_err(|error| {
                tracing::error!(authorizer = self.name, "the authorizer failed: {error}");
                Denial {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    ..Denial::unauthorized("the authorizer failed".into())
                }
            })?;
        let status = response.status();
        if status.is_success() {
            let mut identity = Identity {
                authorizer: self.name.clone(),
                subject: String::new(),
                scopes: Vec::new(),
                details: Vec::new(),
            };
            for (name, value) in response.headers() {
                let Some(fact) = name.as_str().strip_prefix(IDENTITY_PREFIX) else {
                    continue;
                };
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                match fact {
                    "subject" => identity.subject = value,
                    "scopes" => {
                        identity.scopes = value.split_whitespace().map(str::to_string).collect()
                    }
                    "authorizer" => {}
                    other => identity.details.push((other.to_string(), value)),
                }
            }
            return Ok(identity);
        }
        let reason = match Limited::new(response.into_body(), MAX_REASON_BYTES)
            .collect()
            .await
        {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).trim().to_string(),
            Err(_) => String::new(),
        };
        let reason = if reason.is_empty() {
            "denied by the authorizer".to_string()
        } else {
            reason
        };
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Denial {
                status,
                ..Denial::unauthorized(reason)
            },
            other => {
                tracing::error!(
                    authorizer = self.name,
                    status = other.as_u16(),
                    "the authorizer answered neither allow nor deny"
                );
                Denial {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    ..Denial::unauthorized("the authorizer failed".into())
                }
            }
        })
    }
}
