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
    let (pre, stood_in) = link_with_stand_ins(runtime.linker(component.engine()), id, component)?;
    if !stood_in.is_empty() {
        tracing::warn!(
            component = id,
            "imports interfaces ledge does not provide; a call to one fails its request: {}",
            stood_in.join(", ")
        );
    }
    Ok(pre)
}

/// Links `component` with `linker`, or with a copy of it that stands in for the interfaces it
/// lacks; also says which those are.
///
/// wasmtime has no query for what a linker provides, and its semver matching (an import of
/// `@0.2.3` served by `@0.2.6`) must be left to it, so linking is tried and, while it fails,
/// the component's interface import the failure names is stood in for. The candidates are
/// the component's own imports, read from its type.
fn link_with_stand_ins(
    linker: &Linker<GuestState>,
    id: &str,
    component: &Component,
) -> Result<(InstancePre<GuestState>, Vec<String>)> {
    let engine = linker.engine();
    let interfaces: Vec<String> = component
        .component_type()
        .imports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(name, _)| name.to_string())
        .collect();
    let mut extended: Option<Linker<GuestState>> = None;
    let mut stood_in: Vec<String> = Vec::new();
    loop {
        let error = match extended
            .as_ref()
            .unwrap_or(linker)
            .instantiate_pre(component)
        {
            Ok(pre) => return Ok((pre, stood_in)),
            Err(error) => error,
        };
        let text = format!("{error:#}");
        let unprovided = interfaces
            .iter()
            .filter(|name| !stood_in.contains(name))
            .find(|name| text.contains(&format!("`{name}`")));
        let Some(name) = unprovided.filter(|_| stood_in.len() < MAX_STAND_INS) else {
            return Err(anyhow!("{text}")
                .context("the component needs an import that ledge does not provide"));
        };
        let extended = extended.get_or_insert_with(|| linker.clone());
        stand_in(extended, id, component, name)?;
        stood_in.push(name.clone());
    }
}

/// Defines `name`, as `component` (named `id`) imports it, with functions that fail (naming
/// themselves in the log, since a p2 guest's failure may only surface as a missing response)
/// and resources of a type no value is ever made of.
fn stand_in(
    linker: &mut Linker<GuestState>,
    id: &str,
    component: &Component,
    name: &str,
) -> Result<()> {
    let engine = linker.engine().clone();
    let engine = &engine;
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

    /// A component importing an interface wasmtime-wasi provides (at an older minor version
    /// than the linker's), and two that nobody provides.
    const COMPONENT: &str = r#"
        (component
          (import "wasi:random/insecure-seed@0.2.0" (instance
            (export "insecure-seed" (func (result (tuple u64 u64))))))
          (import "ledge:test/unprovided@1.0.0" (instance
            (export "thing" (type (sub resource)))
            (export "call" (func (param "x" u32) (result u32)))))
          (import "ledge:test/also-unprovided" (instance
            (export "ping" (func))))
        )"#;

    #[test]
    fn only_what_the_linker_lacks_is_stood_in() {
        let runtime = Runtime::bare();
        let bytes = wat::parse_str(COMPONENT).unwrap();
        let component = Component::new(runtime.engine(), &bytes).unwrap();
        let (_, mut stood_in) =
            link_with_stand_ins(runtime.linker(component.engine()), "test", &component).unwrap();
        stood_in.sort();
        assert_eq!(
            stood_in,
            ["ledge:test/also-unprovided", "ledge:test/unprovided@1.0.0"]
        );
    }
}
