//! `request_schema = "schemas/order.json"`: `POST`, `PUT` and `PATCH` bodies must match a
//! JSON Schema, compiled once at start-up; a mismatch is answered 400 with where it is.

use bytes::Bytes;
use futures::future::BoxFuture;
use http::request::Parts;
use http::{Method, StatusCode};

use super::access_log::Record;
use super::policy::{
    Admitted, Configure, Policy, RoutePolicyKind, Screening, Table, Verdict, decided,
};
use crate::manifest::ManifestError;
use crate::reply::text;

/// `request_schema = "<file>"`.
pub const POLICY: RoutePolicyKind = RoutePolicyKind {
    keys: &["request_schema"],
    configure,
};

/// The schema a route's bodies must match.
struct RequestSchema(jsonschema::Validator);

fn configure(config: &Configure<'_>, table: &Table) -> Result<Box<dyn Policy>, ManifestError> {
    let at = &table["request_schema"];
    let path: String = config.read(at)?;
    let file = config.root_dir.join(&path);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        config
            .error(at, format!("cannot read {}: {e}", file.display()))
            .fix("give the schema's path relative to the manifest")
    })?;
    let schema: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        config
            .error(at, format!("{} is not JSON: {e}", file.display()))
            .fix("the schema is a JSON document")
    })?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| {
        config
            .error(
                at,
                format!("{} is not a valid JSON Schema: {e}", file.display()),
            )
            .fix("check it against the JSON Schema specification")
    })?;
    Ok(Box::new(RequestSchema(validator)))
}

impl RequestSchema {
    /// Checks a body; `Err` says what is wrong, where.
    fn validate(&self, body: &[u8]) -> Result<(), String> {
        let document: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| format!("Bad Request: the body is not JSON: {e}"))?;
        match self.0.iter_errors(&document).next() {
            None => Ok(()),
            Some(error) => {
                let at = error.instance_path().to_string();
                let at = if at.is_empty() { "/".to_string() } else { at };
                Err(format!(
                    "Bad Request: the body does not match the schema at `{at}`: {error}"
                ))
            }
        }
    }
}

impl Policy for RequestSchema {
    fn summary(&self) -> String {
        "schema".into()
    }

    fn admit<'s>(&'s self, _screening: &'s mut Screening<'_, '_>) -> BoxFuture<'s, Verdict> {
        decided(Ok(()))
    }

    fn reads_body(&self, _admitted: &Admitted) -> bool {
        true
    }

    fn screen_body(
        &self,
        parts: &Parts,
        body: &Bytes,
        _admitted: &Admitted,
        record: &mut Record<'_>,
    ) -> Verdict {
        if !matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
            return Ok(());
        }
        self.validate(body).map_err(|reason| {
            record.outcome = Some("invalid");
            record.rule = Some(reason.clone());
            text(StatusCode::BAD_REQUEST, &reason)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatches_say_where() {
        let schema = serde_json::json!({
            "type": "object",
            "required": ["qty"],
            "properties": {"qty": {"type": "integer", "minimum": 1}}
        });
        let schema = RequestSchema(jsonschema::validator_for(&schema).unwrap());
        assert!(schema.validate(br#"{"qty": 2}"#).is_ok());
        assert!(schema.validate(b"{").unwrap_err().contains("not JSON"));
        let error = schema.validate(br#"{"qty": 0}"#).unwrap_err();
        assert!(error.contains("`/qty`"), "{error}");
        assert!(schema.validate(b"{}").unwrap_err().contains("`/`"));
    }
}
