//! `methods = ["GET", "POST"]`: only these methods reach the route; others get 405 with
//! `Allow`.

use futures::future::BoxFuture;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

use super::policy::{Configure, Policy, RoutePolicyKind, Screening, Table, Verdict, decided};
use crate::manifest::ManifestError;
use crate::reply::text;

/// `methods = [...]`.
pub const POLICY: RoutePolicyKind = RoutePolicyKind {
    keys: &["methods"],
    configure,
};

/// The methods a route serves.
struct Methods {
    allowed: Vec<Method>,
    /// The `Allow` header of a refusal.
    allow: HeaderValue,
}

fn configure(config: &Configure<'_>, table: &Table) -> Result<Box<dyn Policy>, ManifestError> {
    let at = &table["methods"];
    let names: Vec<String> = config.read(at)?;
    if names.is_empty() {
        return Err(config
            .error(at, "the list is empty, so nothing could reach the route")
            .fix("list the methods the route serves, e.g. [\"GET\", \"POST\"]"));
    }
    let allowed = names
        .iter()
        .map(|name| {
            Method::from_bytes(name.as_bytes())
                .ok()
                .filter(|_| name.to_ascii_uppercase() == *name)
                .ok_or_else(|| {
                    config
                        .error(at, format!("`{name}` is not a method name"))
                        .fix("write methods in upper case, e.g. \"GET\"")
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let allow = HeaderValue::from_str(&names.join(", ")).expect("method names are header text");
    Ok(Box::new(Methods { allowed, allow }))
}

impl Policy for Methods {
    fn summary(&self) -> String {
        let names: Vec<&str> = self.allowed.iter().map(Method::as_str).collect();
        names.join(",")
    }

    fn admit<'s>(&'s self, screening: &'s mut Screening<'_, '_>) -> BoxFuture<'s, Verdict> {
        if self.allowed.contains(&screening.parts.method) {
            return decided(Ok(()));
        }
        screening.record.outcome = Some("method-not-allowed");
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        response
            .headers_mut()
            .insert(header::ALLOW, self.allow.clone());
        decided(Err(response))
    }
}
