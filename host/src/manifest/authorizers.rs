//! `[application.tool.ledge.authorizers.<name>]`: who may call a route. Three kinds:
//!
//! - `type = "jwt"`: bearer tokens checked against a JWKS (file or URL);
//! - `type = "api_key"`: keys in a header, stored hashed in a keys file, each on a usage plan
//!   (rate, burst, daily or monthly quota);
//! - `type = "hmac"`: requests signed with a shared secret over method, path, query, chosen
//!   headers, body hash and a timestamp, with a replay window;
//! - `type = "component"`: a component of the app decides, and its decision is cached per
//!   caller.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ManifestError;
use super::error::Reader;

/// One configured authorizer.
#[derive(Debug, Clone)]
pub enum AuthorizerSettings {
    /// JWT bearer tokens.
    Jwt(JwtSettings),
    /// API keys with usage plans.
    ApiKey(ApiKeySettings),
    /// HMAC request signatures.
    Hmac(HmacSettings),
    /// A component of the app decides.
    Component(ComponentAuthorizerSettings),
}

/// `type = "component"`.
#[derive(Debug, Clone)]
pub struct ComponentAuthorizerSettings {
    /// The deciding component's id (it needs a trigger; a private one will do).
    pub component: String,
    /// Request headers that identify the caller: a decision is cached per their values.
    pub identity_headers: Vec<String>,
    /// How long a decision is cached (zero: ask every time).
    pub ttl: Duration,
}

/// `type = "jwt"`.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Where the signing keys are.
    pub jwks: JwksSource,
    /// The required `iss`.
    pub issuer: Option<String>,
    /// Accepted `aud` values (one must match).
    pub audience: Vec<String>,
    /// Accepted signature algorithms (asymmetric only).
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// How often a JWKS URL is fetched again.
    pub refresh: Duration,
    /// The shortest time between two fetches of a JWKS URL that an unknown `kid` triggers.
    pub min_refetch: Duration,
}

/// A JWKS file or URL.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A file, resolved against the app's directory.
    File(PathBuf),
    /// An `http(s)://` URL, fetched at start-up and refreshed.
    Url(String),
}

/// `type = "api_key"`.
#[derive(Debug, Clone)]
pub struct ApiKeySettings {
    /// The request header carrying the key (lower case).
    pub header: String,
    /// The keys, by the SHA-256 of the key (hex, lower case).
    pub keys: BTreeMap<String, ApiKey>,
    /// Usage plans by name.
    pub plans: BTreeMap<String, UsagePlan>,
}

/// One API key (its secret is never stored, only its hash).
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The key's name: the identity the guest sees.
    pub id: String,
    /// Its usage plan.
    pub plan: Option<String>,
    /// Scopes granted to the key.
    pub scopes: Vec<String>,
}

/// A usage plan: throttling and a quota per key.
#[derive(Debug, Clone)]
pub struct UsagePlan {
    /// Sustained requests per second per key.
    pub per_second: Option<u32>,
    /// Burst above the rate.
    pub burst: Option<u32>,
    /// Requests per key per period.
    pub quota: Option<(u64, QuotaPeriod)>,
}

/// The period a quota counts over (UTC calendar days or months).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    /// A UTC day.
    Day,
    /// A UTC calendar month.
    Month,
}

/// `type = "hmac"`.
#[derive(Debug, Clone)]
pub struct HmacSettings {
    /// Shared secrets by key id.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// Headers every signature must cover (lower case), besides the date and body hash.
    pub signed_headers: Vec<String>,
    /// How far a signature's timestamp may be from now; a signature is also accepted only
    /// once within this window.
    pub window: Duration,
}

/// The asymmetric algorithms a JWT authorizer may accept.
const JWT_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The keys each type reads (besides `type`), for errors about keys of another type.
const KEYS_BY_TYPE: [(&str, &[&str]); 4] = [
    (
        "jwt",
        &[
            "jwks",
            "issuer",
            "audience",
            "algorithms",
            "leeway_seconds",
            "refresh_seconds",
            "min_refetch_seconds",
        ],
    ),
    ("api_key", &["header", "keys_file", "plans"]),
    (
        "hmac",
        &["keys_file", "signed_headers", "replay_window_seconds"],
    ),
    (
        "component",
        &["component", "identity_headers", "ttl_seconds"],
    ),
];

/// The raw table: the union of every type's keys, checked per type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthorizer {
    r#type: Spanned<String>,
    jwks: Option<Spanned<String>>,
    issuer: Option<String>,
    audience: Option<Vec<String>>,
    algorithms: Option<Spanned<Vec<String>>>,
    leeway_seconds: Option<u64>,
    refresh_seconds: Option<u64>,
    min_refetch_seconds: Option<u64>,
    header: Option<String>,
    keys_file: Option<Spanned<String>>,
    plans: Option<BTreeMap<String, RawPlan>>,
    signed_headers: Option<Vec<String>>,
    replay_window_seconds: Option<u64>,
    component: Option<Spanned<String>>,
    identity_headers: Option<Vec<String>>,
    ttl_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    per_second: Option<u32>,
    burst: Option<u32>,
    quota: Option<u64>,
    quota_period: Option<String>,
}

/// An API keys file: `[[key]]` entries.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeysFile {
    #[serde(default)]
    key: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: String,
    sha256: String,
    plan: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Reads and checks authorizer `name`; files are resolved against `root_dir`, and a deciding
/// component must be one of `components` (those with a trigger).
pub(super) fn read(
    reader: &Reader<'_>,
    root_dir: &Path,
    components: &[&str],
    name: &Spanned<String>,
    raw: RawAuthorizer,
) -> Result<AuthorizerSettings, ManifestError> {
    let key = format!("application.tool.ledge.authorizers.{}", name.get_ref());
    let kind = raw.r#type.get_ref().as_str();
    let Some((_, allowed)) = KEYS_BY_TYPE.iter().find(|(t, _)| *t == kind) else {
        return Err(reader
            .error(
                &raw.r#type,
                format!("{key}.type"),
                format!("unknown authorizer type `{kind}`"),
            )
            .fix("use \"jwt\", \"api_key\", \"hmac\" or \"component\""));
    };
    let present = [
        ("jwks", raw.jwks.is_some()),
        ("issuer", raw.issuer.is_some()),
        ("audience", raw.audience.is_some()),
        ("algorithms", raw.algorithms.is_some()),
        ("leeway_seconds", raw.leeway_seconds.is_some()),
        ("refresh_seconds", raw.refresh_seconds.is_some()),
        ("min_refetch_seconds", raw.min_refetch_seconds.is_some()),
        ("header", raw.header.is_some()),
        ("keys_file", raw.keys_file.is_some()),
        ("plans", raw.plans.is_some()),
        ("signed_headers", raw.signed_headers.is_some()),
        ("replay_window_seconds", raw.replay_window_seconds.is_some()),
        ("component", raw.component.is_some()),
        ("identity_headers", raw.identity_headers.is_some()),
        ("ttl_seconds", raw.ttl_seconds.is_some()),
    ];
    if let Some((stray, _)) = present.iter().find(|(k, set)| *set && !allowed.contains(k)) {
        return Err(reader
            .error(
                &raw.r#type,
                format!("{key}.{stray}"),
                format!("`{stray}` is not a setting of a `{kind}` authorizer"),
            )
            .fix(format!("a `{kind}` authorizer reads {allowed:?}")));
    }
    match kind {
        "jwt" => jwt(reader, root_dir, &key, &raw).map(AuthorizerSettings::Jwt),
        "api_key" => api_key(reader, root_dir, &key, raw).map(AuthorizerSettings::ApiKey),
        "hmac" => hmac(reader, root_dir, &key, raw).map(AuthorizerSettings::Hmac),
        _ => component(reader, components, &key, raw).map(AuthorizerSettings::Component),
    }
}

fn component(
    reader: &Reader<'_>,
    components: &[&str],
    key: &str,
    raw: RawAuthorizer,
) -> Result<ComponentAuthorizerSettings, ManifestError> {
    let Some(id) = raw.component else {
        return Err(reader
            .error(
                &raw.r#type,
                format!("{key}.component"),
                "a `component` authorizer names its component",
            )
            .fix("add component = \"<id>\""));
    };
    if !components.contains(&id.get_ref().as_str()) {
        return Err(reader
            .error(
                &id,
                format!("{key}.component"),
                format!("no component `{}` has a trigger in this app", id.get_ref()),
            )
            .fix(format!(
                "give it a trigger (`route = {{ private = true }}` keeps it off the public routes); components with one: {components:?}"
            )));
    }
    Ok(ComponentAuthorizerSettings {
        component: id.into_inner(),
        identity_headers: raw
            .identity_headers
            .unwrap_or_else(|| vec!["authorization".into()])
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        ttl: Duration::from_secs(raw.ttl_seconds.unwrap_or(60)),
    })
}

fn jwt(
    reader: &Reader<'_>,
    root_dir: &Path,
    key: &str,
    raw: &RawAuthorizer,
) -> Result<JwtSettings, ManifestError> {
    let (Some(jwks), Some(listed)) = (&raw.jwks, &raw.algorithms) else {
        return Err(reader
            .error(
                &raw.r#type,
                key,
                "a `jwt` authorizer needs `jwks` and `algorithms`",
            )
            .fix("e.g. jwks = \"keys/jwks.json\" and algorithms = [\"RS256\"]"));
    };
    let mut algorithms = Vec::new();
    for algorithm in listed.get_ref() {
        if !JWT_ALGORITHMS.contains(&algorithm.as_str()) {
            return Err(reader
                .error(
                    listed,
                    format!("{key}.algorithms"),
                    format!("`{algorithm}` is not accepted: tokens must be signed with a public-key algorithm (never `none`, never an HMAC secret)"),
                )
                .fix(format!("use some of {JWT_ALGORITHMS:?}")));
        }
        algorithms.push(algorithm.parse().expect("the listed algorithms parse"));
    }
    if algorithms.is_empty() {
        return Err(reader
            .error(listed, format!("{key}.algorithms"), "the list is empty")
            .fix("e.g. algorithms = [\"RS256\"]"));
    }
    let source = if jwks.get_ref().starts_with("https://") || jwks.get_ref().starts_with("http://")
    {
        JwksSource::Url(jwks.get_ref().clone())
    } else {
        JwksSource::File(existing_file(
            reader,
            root_dir,
            jwks,
            &format!("{key}.jwks"),
        )?)
    };
    Ok(JwtSettings {
        jwks: source,
        issuer: raw.issuer.clone(),
        audience: raw.audience.clone().unwrap_or_default(),
        algorithms,
        leeway: Duration::from_secs(raw.leeway_seconds.unwrap_or(30)),
        refresh: Duration::from_secs(raw.refresh_seconds.unwrap_or(600)),
        min_refetch: Duration::from_secs(raw.min_refetch_seconds.unwrap_or(10)),
    })
}

fn api_key(
    reader: &Reader<'_>,
    root_dir: &Path,
    key: &str,
    raw: RawAuthorizer,
) -> Result<ApiKeySettings, ManifestError> {
    let mut plans = BTreeMap::new();
    for (name, plan) in raw.plans.unwrap_or_default() {
        let quota_period = match plan.quota_period.as_deref() {
            None | Some("day") => QuotaPeriod::Day,
            Some("month") => QuotaPeriod::Month,
            Some(other) => {
                return Err(reader
                    .error(
                        &raw.r#type,
                        format!("{key}.plans.{name}.quota_period"),
                        format!("unknown period `{other}`"),
                    )
                    .fix("use \"day\" or \"month\""));
            }
        };
        if plan.per_second == Some(0) || plan.burst == Some(0) || plan.quota == Some(0) {
            return Err(reader
                .error(
                    &raw.r#type,
                    format!("{key}.plans.{name}"),
                    "`per_second`, `burst` and `quota` must be at least 1",
                )
                .fix("leave a limit out to not limit that way"));
        }
        plans.insert(
            name,
            UsagePlan {
                per_second: plan.per_second,
                burst: plan.burst,
                quota: plan.quota.map(|quota| (quota, quota_period)),
            },
        );
    }
    let (path, text) = keys_file(reader, root_dir, key, raw.keys_file.as_ref(), &raw.r#type)?;
    let file: RawKeysFile = toml::from_str(&text).map_err(|e| {
        let mut error = ManifestError::file(&path, e.message().to_string()).fix(
            "each key is a [[key]] table with `id`, `sha256` and optional `plan` and `scopes`",
        );
        if let Some(span) = e.span() {
            error = error.at(&text, span.start);
        }
        error
    })?;
    let mut keys = BTreeMap::new();
    for entry in file.key {
        let hash = entry.sha256.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ManifestError::file(
                &path,
                format!("key `{}`: `sha256` is not 64 hex digits", entry.id),
            )
            .fix("store the SHA-256 of the key, e.g. `printf %s \"$KEY\" | sha256sum`"));
        }
        if let Some(plan) = &entry.plan
            && !plans.contains_key(plan)
        {
            return Err(ManifestError::file(
                &path,
                format!(
                    "key `{}` is on plan `{plan}`, which `{key}.plans` does not define",
                    entry.id
                ),
            )
            .fix(format!("use one of {:?}", plans.keys().collect::<Vec<_>>())));
        }
        keys.insert(
            hash,
            ApiKey {
                id: entry.id,
                plan: entry.plan,
                scopes: entry.scopes,
            },
        );
    }
    Ok(ApiKeySettings {
        header: raw
            .header
            .unwrap_or_else(|| "x-api-key".into())
            .to_ascii_lowercase(),
        keys,
        plans,
    })
}

fn hmac(
    reader: &Reader<'_>,
    root_dir: &Path,
    key: &str,
    raw: RawAuthorizer,
) -> Result<HmacSettings, ManifestError> {
    let (path, text) = keys_file(reader, root_dir, key, raw.keys_file.as_ref(), &raw.r#type)?;
    let secrets: BTreeMap<String, String> = toml::from_str(&text).map_err(|e| {
        ManifestError::file(&path, e.message().to_string())
            .fix("the file holds `key-id = \"secret\"` lines")
    })?;
    if secrets.values().any(|secret| secret.len() < 16) {
        return Err(
            ManifestError::file(&path, "a secret is shorter than 16 bytes")
                .fix("use long random secrets, e.g. `openssl rand -hex 32`"),
        );
    }
    Ok(HmacSettings {
        secrets: secrets
            .into_iter()
            .map(|(id, secret)| (id, secret.into_bytes()))
            .collect(),
        signed_headers: raw
            .signed_headers
            .unwrap_or_default()
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        window: Duration::from_secs(raw.replay_window_seconds.unwrap_or(300)),
    })
}

/// Reads the `keys_file` an authorizer requires.
fn keys_file(
    reader: &Reader<'_>,
    root_dir: &Path,
    key: &str,
    keys_file: Option<&Spanned<String>>,
    kind: &Spanned<String>,
) -> Result<(PathBuf, String), ManifestError> {
    let Some(keys_file) = keys_file else {
        return Err(reader
            .error(
                kind,
                format!("{key}.keys_file"),
                "this authorizer needs a `keys_file`",
            )
            .fix("give the path of its keys file, relative to the manifest"));
    };
    let path = existing_file(reader, root_dir, keys_file, &format!("{key}.keys_file"))?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ManifestError::file(&path, format!("cannot read the keys file: {e}")))?;
    Ok((path, text))
}

fn existing_file(
    reader: &Reader<'_>,
    root_dir: &Path,
    relative: &Spanned<String>,
    key: &str,
) -> Result<PathBuf, ManifestError> {
    let path = root_dir.join(relative.get_ref());
    if path.is_file() {
        return Ok(path);
    }
    Err(reader
        .error(
            relative,
            key,
            format!("the file {} does not exist", path.display()),
        )
        .fix("give a path relative to the manifest"))
}
