//! From a `.wasm` file to a compiled [`Component`]: core modules are componentized first, and
//! the compiled code is kept in an on-disk cache so a second start does not compile again.
//!
//! The cache key is the SHA-256 of the original bytes plus the optimizing engine's
//! compatibility hash (wasmtime version, compiler and every setting that changes the generated
//! code), so a cached artifact is only ever loaded by an engine that would have produced the
//! same one.
//!
//! A big component missing from the cache (a JavaScript or Python guest is 13-25 MB, seconds
//! of Cranelift) is compiled by the baseline compiler instead and served at once; its
//! [`Optimization`] then compiles it with Cranelift off the request path, stores that in the
//! cache and is swapped in by the caller. Only Cranelift's code is ever cached.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::Runtime;

/// How a component was obtained, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileOutcome {
    /// Loaded from the compile cache.
    CacheHit,
    /// Compiled now by the optimizing compiler (and stored, when the cache is on).
    Compiled,
    /// Compiled now by the baseline compiler, to be replaced by its optimized code.
    Baseline,
}

/// A compiled component, and how it came to be.
pub struct LoadedComponent {
    /// What serves from now on.
    pub component: Component,
    /// Where it came from.
    pub outcome: CompileOutcome,
    /// For a baseline-compiled component: the optimized compile still to do.
    pub optimization: Option<Optimization>,
}

/// A component's optimized compile, still to do.
pub struct Optimization {
    bytes: Vec<u8>,
    cache_entry: Option<PathBuf>,
}

impl Optimization {
    /// Compiles the component with the optimizing `engine` (the runtime's) and stores it in
    /// the compile cache, unless the cache has it by now (the same `.wasm` serves another
    /// component, or a Redis trigger compiled it meanwhile). Takes seconds for a big
    /// component: run it off the request path.
    pub fn compile(self, engine: &Engine) -> Result<Component> {
        let entry = self.cache_entry.as_deref();
        match entry.and_then(|entry| from_cache(engine, entry)) {
            Some(component) => Ok(component),
            None => optimize(engine, &self.bytes, entry),
        }
    }
}

/// The component cached as `entry`, if it is there and loads.
fn from_cache(engine: &Engine, entry: &Path) -> Option<Component> {
    if !entry.is_file() {
        return None;
    }
    // SAFETY: the file was written by `Component::serialize` of an engine with the same
    // compatibility hash (it is part of the file name) into ledge's own state directory.
    match unsafe { Component::deserialize_file(engine, entry) } {
        Ok(component) => Some(component),
        Err(error) => {
            tracing::warn!(
                "ignoring unusable cache entry {}: {error:#}",
                entry.display()
            );
            None
        }
    }
}

/// Compiles `bytes` with the optimizing `engine`, storing the code as `cache_entry`.
fn optimize(engine: &Engine, bytes: &[u8], cache_entry: Option<&Path>) -> Result<Component> {
    let component = Component::new(engine, bytes)
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .context("the component failed to compile")?;
    if let Some(entry) = cache_entry {
        store_in_cache(&component, entry);
    }
    Ok(component)
}

/// Reads, componentizes if needed, and compiles `path`, using `cache_dir` when given. With
/// `baseline`, a component the runtime's settings call big is compiled by the baseline
/// compiler first.
pub fn load_component(
    runtime: &Runtime,
    path: &Path,
    cache_dir: Option<&Path>,
    baseline: bool,
) -> Result<LoadedComponent> {
    let engine = runtime.engine();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let cache_entry = cache_dir.map(|dir| dir.join(format!("{}.cwasm", cache_key(engine, &bytes))));
    if let Some(component) = cache_entry
        .as_deref()
        .and_then(|entry| from_cache(engine, entry))
    {
        return Ok(LoadedComponent {
            component,
            outcome: CompileOutcome::CacheHit,
            optimization: None,
        });
    }
    let component_bytes = componentize(&bytes)?;
    let baseline = baseline
        .then(|| runtime.baseline_engine(component_bytes.len() as u64))
        .flatten();
    if let Some(baseline) = baseline {
        let started = Instant::now();
        match Component::new(baseline, &component_bytes) {
            Ok(component) => {
                tracing::debug!(
                    "{}: baseline-compiled in {} ms",
                    path.display(),
                    started.elapsed().as_millis()
                );
                return Ok(LoadedComponent {
                    component,
                    outcome: CompileOutcome::Baseline,
                    optimization: Some(Optimization {
                        bytes: component_bytes.into_owned(),
                        cache_entry,
                    }),
                });
            }
            // A proposal the baseline compiler lacks (GC, tail calls, exceptions, ...).
            Err(error) => tracing::debug!(
                "{}: the baseline compiler cannot compile it, optimizing now: {error:#}",
                path.display()
            ),
        }
    }
    Ok(LoadedComponent {
        component: optimize(engine, &component_bytes, cache_entry.as_deref())?,
        outcome: CompileOutcome::Compiled,
        optimization: None,
    })
}

const NOT_COMPONENTIZABLE: &str = "the core module cannot be componentized (a library module needs a \
     component-type section naming its imports and exports, as wit-bindgen guests have; a \
     command needs a `_start` export)";

/// Turns a core module into a component; returns components unchanged.
///
/// A module that imports WASI preview 1 gets the preview 1 adapter from the same wasmtime
/// release: the command adapter when it exports `_start` (a `main` program, which then exports
/// `wasi:cli/run`), otherwise the reactor adapter. Any other module must carry a
/// `component-type` section (as `wit-bindgen` guests do).
pub fn componentize(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>> {
    use wasi_preview1_component_adapter_provider as adapters;
    if !bytes.starts_with(b"\0asm") {
        bail!("the file is not WebAssembly (it does not start with `\\0asm`)");
    }
    if wasmparser::Parser::is_component(bytes) {
        return Ok(bytes.into());
    }
    let (mut imports_preview1, mut exports_start) = (false, false);
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::ImportSection(reader)) => {
                imports_preview1 |= reader.into_iter().any(|import| {
                    matches!(import, Ok(import) if import.module == adapters::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME)
                });
            }
            Ok(wasmparser::Payload::ExportSection(reader)) => {
                exports_start |= reader
                    .into_iter()
                    .any(|export| matches!(export, Ok(export) if export.name == "_start"));
            }
            _ => {}
        }
    }
    let mut encoder = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(bytes)
        .context(NOT_COMPONENTIZABLE)?;
    if imports_preview1 {
        let adapter = if exports_start {
            adapters::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER
        } else {
            adapters::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER
        };
        encoder = encoder
            .adapter(adapters::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter)
            .context("cannot link the WASI preview 1 adapter")?;
    }
    Ok(encoder.encode().context(NOT_COMPONENTIZABLE)?.into())
}

fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut engine_hash = std::hash::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut digest = Sha256::new();
    digest.update(env!("CARGO_PKG_VERSION").as_bytes());
    digest.update(engine_hash.finish().to_le_bytes());
    digest.update(bytes);
    format!("{:x}", digest.finalize())
}

/// Writes the artifact through a temporary file and a rename, so a concurrent start never
/// reads half a file. A failure only costs the next start a compile.
fn store_in_cache(component: &Component, path: &Path) {
    let result = (|| -> Result<()> {
        let bytes = component
            .serialize()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let dir = path.parent().context("cache path has a parent")?;
        std::fs::create_dir_all(dir)?;
        // Unique per entry and process: two components compiled at once, or two ledge
        // processes sharing a cache, never write into each other's file.
        let name = path.file_name().context("cache path has a file name")?;
        let temporary = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, path)?;
        Ok(())
    })();
    if let Err(error) = result {
        tracing::warn!(
            "cannot write the compile cache entry {}: {error:#}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_wasm() {
        let error = componentize(b"not wasm").unwrap_err();
        assert!(error.to_string().contains("not WebAssembly"));
    }

    #[test]
    fn a_core_module_without_component_type_is_explained() {
        let module = wat::parse_str(r#"(module (import "env" "f" (func)))"#).unwrap();
        let error = componentize(&module).unwrap_err();
        assert!(format!("{error:#}").contains("component-type"), "{error:#}");
    }

    /// A component from the baseline compiler comes with its optimization, which caches
    /// Cranelift's code, so the next load is a cache hit; small components and callers that
    /// do not ask for it get the optimized code at once.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_big_component_is_baseline_compiled_and_its_optimized_code_cached() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("c.wasm");
        let cache = dir.path().join("cache");
        std::fs::write(&wasm, wat::parse_str("(component (core module))").unwrap()).unwrap();
        let size = std::fs::metadata(&wasm).unwrap().len();

        let runtime = Runtime::bare_with(None, size);
        let small = Runtime::bare_with(None, size + 1);
        let loaded = load_component(&small, &wasm, Some(&cache), true).unwrap();
        assert_eq!(loaded.outcome, CompileOutcome::Compiled);
        std::fs::remove_dir_all(&cache).unwrap();
        let loaded = load_component(&runtime, &wasm, Some(&cache), false).unwrap();
        assert_eq!(loaded.outcome, CompileOutcome::Compiled, "not asked for");
        std::fs::remove_dir_all(&cache).unwrap();

        let loaded = load_component(&runtime, &wasm, Some(&cache), true).unwrap();
        let twin = load_component(&runtime, &wasm, Some(&cache), true).unwrap();
        assert_eq!(loaded.outcome, CompileOutcome::Baseline);
        assert!(!Engine::same(loaded.component.engine(), runtime.engine()));
        assert!(!cache.exists(), "baseline code is never cached");
        let optimized = loaded
            .optimization
            .unwrap()
            .compile(runtime.engine())
            .unwrap();
        assert!(Engine::same(optimized.engine(), runtime.engine()));
        // The same `.wasm` optimized again comes from the cache, not a second compile.
        let entry = std::fs::read_dir(&cache)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let written = std::fs::metadata(&entry).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        twin.optimization
            .unwrap()
            .compile(runtime.engine())
            .unwrap();
        assert_eq!(
            std::fs::metadata(&entry).unwrap().modified().unwrap(),
            written
        );
        let loaded = load_component(&runtime, &wasm, Some(&cache), true).unwrap();
        assert_eq!(loaded.outcome, CompileOutcome::CacheHit);
        assert!(loaded.optimization.is_none());
    }
}
