//! What the manifest says once the app's variables have values: `allowed_outbound_hosts` and
//! the Redis trigger's address may hold `{{ name }}` templates, rendered here, and an error
//! still names the line it comes from.

use std::collections::BTreeMap;

use super::template;
use super::{App, Component, ManifestError, RedisTrigger};
use crate::allowed_hosts::AllowedHosts;

impl App {
    /// `component`'s `allowed_outbound_hosts`, rendered with the app variables' `values` and
    /// parsed.
    pub fn allowed_hosts(
        &self,
        component: &Component,
        values: &BTreeMap<String, String>,
    ) -> Result<AllowedHosts, ManifestError> {
        let key = format!("component.{}.allowed_outbound_hosts", component.id);
        let rendered = component
            .allowed_outbound_hosts
            .iter()
            .map(|entry| self.render(&entry.value, entry.line, &key, values))
            .collect::<Result<Vec<_>, _>>()?;
        AllowedHosts::parse(&rendered).map_err(|(index, message)| {
            self.error_at(Some(component.allowed_outbound_hosts[index].line), key)
                .with_message(message)
        })
    }

    /// The address `trigger` subscribes at, rendered with the app variables' `values`.
    pub fn redis_address(
        &self,
        trigger: &RedisTrigger,
        values: &BTreeMap<String, String>,
    ) -> Result<String, ManifestError> {
        self.render(
            &trigger.address,
            trigger.line,
            "trigger.redis.address",
            values,
        )
    }

    /// `text` (of `key`, on `line`) with its templates rendered.
    fn render(
        &self,
        text: &str,
        line: usize,
        key: &str,
        values: &BTreeMap<String, String>,
    ) -> Result<String, ManifestError> {
        template::render(text, values).map_err(|missing| {
            self.error_at(Some(line), key)
                .with_message(format!(
                    "`{text}` uses `{{{{ {missing} }}}}`, which has no value"
                ))
                .fix("declare it under [variables] with a default, or give it a value")
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn app() -> App {
        super::super::validate::parse(
            Path::new("/app/spin.toml"),
            "spin_manifest_version = 2\n[application]\nname = \"t\"\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"api\"\n\
             [component.api]\nsource = \"api.wasm\"\n\
             allowed_outbound_hosts = [\"https://{{ host }}\", \"redis://{{ host }}:{{port}}\"]\n",
        )
        .unwrap()
    }

    #[test]
    fn allowed_hosts_are_rendered_then_parsed() {
        let app = app();
        let values = BTreeMap::from([
            ("host".to_string(), "db.example".to_string()),
            ("port".to_string(), "7000".to_string()),
        ]);
        let allowed = app.allowed_hosts(&app.components["api"], &values).unwrap();
        assert!(allowed.permits_network("https", "db.example", 443));
        assert!(allowed.permits_network("redis", "db.example", 7000));
        assert!(!allowed.permits_network("redis", "db.example", 6379));
    }

    #[test]
    fn a_missing_value_or_a_bad_rendering_names_the_line() {
        let app = app();
        let values = BTreeMap::from([("host".to_string(), "db.example".to_string())]);
        let missing = app
            .allowed_hosts(&app.components["api"], &values)
            .unwrap_err();
        assert_eq!(missing.line, Some(9));
        assert!(missing.to_string().contains("{{ port }}"), "{missing}");
        let values = BTreeMap::from([
            ("host".to_string(), "db.example".to_string()),
            ("port".to_string(), "not-a-port".to_string()),
        ]);
        let bad = app
            .allowed_hosts(&app.components["api"], &values)
            .unwrap_err();
        assert_eq!(bad.line, Some(9));
    }
}
