//! Linking a component whose imports ledge does not all provide. SDKs import every interface of
//! their platform (Spin's Python SDK imports Postgres, MySQL, Redis, MQTT, LLM, ...), so, like
//! Spin, ledge serves such a component and lets a call to an interface it lacks fail the
//! request (500, logged) instead of refusing the component at start-up. The interfaces stood in
//! for are named in a warning when the component is loaded.

use anyhow::{Result, anyhow, bail};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, InstancePre, Linker, ResourceType};

use super::{GuestState, Runtime};

/// The host type of the resources of an interface ledge stands in for.
struct Unprovided;

/// The most interfaces one component may lack.
const MAX_STAND_INS: usize = 64;

/// Links `component` (named `id`) with the runtime's linker, standing in a failing
/// implementation for each imported interface the linker has none for.
pub fn link(runtime: &Runtime, id: &str, component: &Component) -> Result<InstancePre<GuestState>> {
    let mut linker: Option<Linker<GuestState>> = None;
    let mut stood_in: Vec<String> = Vec::new();
    loop {
        let error = match linker
            .as_ref()
            .unwrap_or(&runtime.linker)
            .instantiate_pre(component)
        {
            Ok(pre) => {
                if !stood_in.is_empty() {
                    tracing::warn!(
                        component = id,
                        "imports interfaces ledge does not provide; a call to one fails its \
                         request: {}",
                        stood_in.join(", ")
                    );
                }
                return Ok(pre);
            }
            Err(error) => error,
        };
        let unprovided = missing_instance(&error)
            .filter(|name| !stood_in.contains(name) && stood_in.len() < MAX_STAND_INS);
        let Some(name) = unprovided else {
            return Err(anyhow!("{error:#}")
                .context("the component needs an import that ledge does not provide"));
        };
        let linker = linker.get_or_insert_with(|| runtime.linker.clone());
        stand_in(linker, runtime, id, component, &name)?;
        stood_in.push(name);
    }
}

/// The interface a link error says no implementation was found for.
fn missing_instance(error: &wasmtime::Error) -> Option<String> {
    let text = format!("{error:#}");
    let rest = text.split_once("component imports instance `")?.1;
    Some(rest.split_once('`')?.0.to_string())
}

/// Defines `name`, as `component` (named `id`) imports it, with functions that fail (naming
/// themselves in the log, since a p2 guest's failure may only surface as a missing response)
/// and resources of a type no value is ever made of.
fn stand_in(
    linker: &mut Linker<GuestState>,
    runtime: &Runtime,
    id: &str,
    component: &Component,
    name: &str,
) -> Result<()> {
    let engine = runtime.engine();
    let ty = component.component_type();
    let Some(ComponentItem::ComponentInstance(instance)) =
        ty.get_import(engine, name).map(|import| import.ty)
    else {
        bail!("`{name}` is not an interface the component imports");
    };
    let mut definitions = linker.instance(name).map_err(|e| anyhow!("{e:#}"))?;
    for (export, item) in instance.exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(func) => {
                let function = format!("{name}#{export}");
                let id = id.to_owned();
                let fail = move || {
                    let message =
                        format!("`{function}` has not been defined: ledge does not provide it");
                    tracing::warn!(component = %id, "the guest called {message}");
                    wasmtime::Error::msg(message)
                };
                // An `async func` import is only satisfied by a concurrent host function.
                let defined = if func.async_() {
                    definitions.func_new_concurrent(export, move |_, _, _, _| {
                        let error = fail();
                        Box::pin(async move { Err(error) })
                    })
                } else {
                    definitions.func_new(export, move |_, _, _, _| Err(fail()))
                };
                defined.map_err(|e| anyhow!("{e:#}"))?;
            }
            ComponentItem::Resource(_) => definitions
                .resource(export, ResourceType::host::<Unprovided>(), |_, _| Ok(()))
                .map_err(|e| anyhow!("{e:#}"))?,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_missing_interface_is_read_from_the_link_error() {
        let error = wasmtime::Error::msg(
            "component imports instance `spin:postgres/postgres@3.0.0`, but a matching \
             implementation was not found in the linker",
        );
        assert_eq!(
            missing_instance(&error).as_deref(),
            Some("spin:postgres/postgres@3.0.0")
        );
        assert_eq!(missing_instance(&wasmtime::Error::msg("other")), None);
    }
}
