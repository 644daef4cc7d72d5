//! `{{ name }}` templates: in component variable values, `allowed_outbound_hosts` and the Redis
//! trigger's address.

use std::collections::BTreeMap;

/// Renders `template`, replacing each `{{ name }}` with its value; `Err(name)` names the first
/// variable without one.
pub fn render(template: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut output = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        output.push_str(&rest[..start]);
        let name = rest[start + 2..start + end].trim();
        output.push_str(values.get(name).ok_or_else(|| name.to_string())?);
        rest = &rest[start + end + 2..];
    }
    output.push_str(rest);
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_names_what_is_missing() {
        let values = BTreeMap::from([("host".to_string(), "db.local".to_string())]);
        assert_eq!(
            render("https://{{ host }}:{{host}}/x", &values).unwrap(),
            "https://db.local:db.local/x"
        );
        assert_eq!(render("plain", &values).unwrap(), "plain");
        assert_eq!(render("{{ nope }}", &values).unwrap_err(), "nope");
    }
}
