//! `[[trigger.http]]` and `[[trigger.redis]]`: routes (each used once), what each trigger runs
//! (a component by id or inline, or a static response), the executor a component's triggers
//! agree on, and the Redis channel subscriptions.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use toml::Spanned;

use super::error::Reader;
use super::schema::{
    RawComponentRef, RawHttpTrigger, RawRedisTrigger, RawRoute, RawStaticResponse,
};
use super::{
    Component, HttpTrigger, ManifestError, RedisTrigger, StaticResponse, TriggerHandler, Wagi,
};
use crate::router::RoutePattern;

impl Reader<'_> {
    /// The `[[trigger.http]]` entries, with routes under `http_base`; inline components are
    /// added to `components`, and each component learns its executor.
    pub(super) fn http_triggers(
        &self,
        raw: Vec<RawHttpTrigger>,
        http_base: &str,
        root_dir: &Path,
        components: &mut BTreeMap<String, Component>,
    ) -> Result<Vec<HttpTrigger>, ManifestError> {
        let mut triggers = Vec::new();
        let mut executors = BTreeMap::new();
        let mut seen_routes: HashMap<String, usize> = HashMap::new();
        let mut inline_count = 0;
        for (index, trigger) in raw.into_iter().enumerate() {
            let key = format!("trigger.http[{index}]");
            let route = match trigger.route.get_ref() {
                RawRoute::Private { private: true } => None,
                RawRoute::Private { private: false } => {
                    return Err(self
                        .error(
                            &trigger.route,
                            format!("{key}.route"),
                            "`{ private = false }` is not a route",
                        )
                        .fix("give a path such as `route = \"/hello\"`, or `{ private = true }`"));
                }
                RawRoute::Path(path) => {
                    let pattern = RoutePattern::parse(http_base, path).map_err(|message| {
                        self.error(&trigger.route, format!("{key}.route"), message)
                            .fix("routes look like `/exact`, `/items/:id` or `/prefix/...`")
                    })?;
                    let line = self.line(&trigger.route);
                    if let Some(first) = seen_routes.insert(pattern.based().to_string(), line) {
                        return Err(self
                        .error(&trigger.route, format!("{key}.route"), format!("the route `{path}` is already used by the trigger on line {first}"))
                        .fix("give each trigger its own route"));
                    }
                    Some(pattern)
                }
            };
            let wagi = match &trigger.executor {
                Some(executor) => self.executor(&key, executor)?,
                None => None,
            };
            let executor_offset = trigger
                .executor
                .as_ref()
                .map_or(trigger.route.span().start, |e| e.span().start);
            let handler = match (trigger.component, trigger.static_response) {
                (Some(_), Some(response)) => {
                    return Err(self
                        .error(
                            &response,
                            format!("{key}.static_response"),
                            "a trigger has either `component` or `static_response`, not both",
                        )
                        .fix("remove one of them"));
                }
                (None, Some(response)) => {
                    if route.is_none() {
                        return Err(self
                            .error(
                                &response,
                                format!("{key}.static_response"),
                                "a private route needs a component",
                            )
                            .fix("give the trigger a public route or a component"));
                    }
                    TriggerHandler::Static(self.static_response(&key, response)?)
                }
                (None, None) => {
                    return Err(self
                        .error(
                            &trigger.route,
                            key,
                            "the trigger has neither `component` nor `static_response`",
                        )
                        .fix("add `component = \"<component id>\"`"));
                }
                (Some(reference), None) => {
                    let line = self.line(&reference);
                    let span = reference.span();
                    match reference.into_inner() {
                        RawComponentRef::Id(id) => {
                            if !components.contains_key(&id) {
                                let known: Vec<&String> = components.keys().collect();
                                return Err(ManifestError::file(
                                    self.file,
                                    format!(
                                        "the trigger names component `{id}`, which is not defined"
                                    ),
                                )
                                .key(format!("{key}.component"))
                                .at(self.source, span.start)
                                .fix(format!(
                                    "add a `[component.{id}]` table, or use one of {known:?}"
                                )));
                            }
                            TriggerHandler::Component(id)
                        }
                        RawComponentRef::Inline(inline) => {
                            let id = match &trigger.id {
                                Some(trigger_id) => format!("{trigger_id}-component"),
                                None => {
                                    inline_count += 1;
                                    format!("inline-component{inline_count}")
                                }
                            };
                            let component = self.component(root_dir, &id, line, *inline)?;
                            components.insert(id.clone(), component);
                            TriggerHandler::Component(id)
                        }
                    }
                }
            };
            if let TriggerHandler::Component(id) = &handler {
                // One component, one way to run it: its triggers agree on the executor.
                let line = super::error::line_of(self.source, executor_offset);
                match executors.insert(id.clone(), (wagi.clone(), line)) {
                    Some((earlier, earlier_line)) if earlier != wagi => {
                        return Err(ManifestError::file(
                        self.file,
                        format!("component `{id}` has triggers with different executors (lines {earlier_line} and {line})"),
                    )
                    .key(format!("{key}.executor"))
                    .at(self.source, executor_offset)
                    .fix("give every trigger of the component the same `executor`"));
                    }
                    _ => {}
                }
                components
                    .get_mut(id)
                    .expect("the trigger's component exists")
                    .wagi = wagi;
            }
            triggers.push(HttpTrigger {
                id: trigger.id,
                route,
                handler,
            });
        }
        Ok(triggers)
    }

    /// One `[[trigger.redis]]`, with the app's `address` unless it has its own.
    pub(super) fn redis_trigger(
        &self,
        trigger: &Spanned<RawRedisTrigger>,
        app_address: Option<&str>,
        components: &BTreeMap<String, Component>,
    ) -> Result<RedisTrigger, ManifestError> {
        let raw = trigger.get_ref();
        let id = raw.component.get_ref();
        if !components.contains_key(id) {
            let known: Vec<&String> = components.keys().collect();
            return Err(self
                .error(
                    &raw.component,
                    "trigger.redis.component",
                    format!("the trigger names component `{id}`, which is not defined"),
                )
                .fix(format!(
                    "add a `[component.{id}]` table, or use one of {known:?}"
                )));
        }
        let Some(address) = raw.address.as_deref().or(app_address) else {
            return Err(self
                .error(trigger, "trigger.redis", "no Redis server to subscribe to")
                .fix("set `address = \"redis://host:6379\"` under [application.trigger.redis] or on the trigger"));
        };
        Ok(RedisTrigger {
            address: address.to_string(),
            channel: raw.channel.clone(),
            component: id.clone(),
            line: self.line(trigger),
        })
    }

    /// `executor`: `spin`/`wasi` (the default, a `wasi:http` handler) or `wagi`.
    fn executor(
        &self,
        key: &str,
        executor: &Spanned<toml::Table>,
    ) -> Result<Option<Wagi>, ManifestError> {
        let table = executor.get_ref();
        let text = |name: &str| match table.get(name) {
            None => Ok(None),
            Some(toml::Value::String(value)) => Ok(Some(value.as_str())),
            Some(_) => Err(self
                .error(
                    executor,
                    format!("{key}.executor.{name}"),
                    format!("`{name}` must be a string"),
                )
                .fix(format!("write `{name} = \"...\"`"))),
        };
        match text("type")? {
            None | Some("spin") | Some("wasi") => Ok(None),
            Some("wagi") => {
                if let Some(entrypoint) = text("entrypoint")?
                    && entrypoint != "_start"
                {
                    return Err(self
                        .error(executor, format!("{key}.executor.entrypoint"), format!("ledge runs WAGI commands from `_start`, not `{entrypoint}`"))
                        .fix("remove `entrypoint`, and export the handler as the module's `main`"));
                }
                let argv = text("argv")?.unwrap_or("${SCRIPT_NAME} ${ARGS}").to_owned();
                Ok(Some(Wagi { argv }))
            }
            Some(other) => Err(self
                .error(executor, format!("{key}.executor"), format!("the executor `{other}` is not supported"))
                .fix("use `{ type = \"spin\" }` (a wasi:http component, the default) or `{ type = \"wagi\" }` (a WASI command run CGI-style)")),
        }
    }

    fn static_response(
        &self,
        key: &str,
        response: Spanned<RawStaticResponse>,
    ) -> Result<StaticResponse, ManifestError> {
        let status = response.get_ref().status_code.unwrap_or(200);
        if !(100..=999).contains(&status) {
            return Err(self
                .error(
                    &response,
                    format!("{key}.static_response.status_code"),
                    format!("{status} is not an HTTP status"),
                )
                .fix("use a status between 100 and 999"));
        }
        for (name, value) in &response.get_ref().headers {
            if http::HeaderName::try_from(name.as_str()).is_err()
                || http::HeaderValue::try_from(value.as_str()).is_err()
            {
                return Err(self
                    .error(
                        &response,
                        format!("{key}.static_response.headers"),
                        format!("`{name}: {value}` is not a valid header"),
                    )
                    .fix(
                        "header names are tokens such as `content-type`; values are visible ASCII",
                    ));
            }
        }
        let response = response.into_inner();
        Ok(StaticResponse {
            status,
            headers: response.headers,
            body: response.body.unwrap_or_default(),
        })
    }
}
