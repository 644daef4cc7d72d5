//! `fermyon:spin/llm@2.0.0` without models: ledge runs no LLM, so every call answers Spin's
//! `model-not-supported` (the guest gets an error value it can handle, never a trap), and a
//! manifest's `ai_models` stays refused at start-up. Logged once per call with the model name.

#[allow(missing_docs)] // generated code; the WIT file documents the interface
mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "ledge:host/llm",
        imports: { default: async | trappable },
    });
}

use bindings::fermyon::spin::llm;
use wasmtime::component::{HasData, Linker};

/// The `HasData` marker for the LLM interface: it needs no instance state.
pub struct Llm;

impl HasData for Llm {
    type Data<'a> = NoModels;
}

/// The host side of the interface: no models.
pub struct NoModels;

impl llm::Host for NoModels {
    async fn infer(
        &mut self,
        model: String,
        _prompt: String,
        _params: Option<llm::InferencingParams>,
    ) -> wasmtime::Result<Result<llm::InferencingResult, llm::Error>> {
        tracing::info!("llm infer with model `{model}`: ledge serves no models");
        Ok(Err(llm::Error::ModelNotSupported))
    }

    async fn generate_embeddings(
        &mut self,
        model: String,
        _text: Vec<String>,
    ) -> wasmtime::Result<Result<llm::EmbeddingsResult, llm::Error>> {
        tracing::info!("llm generate-embeddings with model `{model}`: ledge serves no models");
        Ok(Err(llm::Error::ModelNotSupported))
    }
}

/// Adds the interface to `linker`.
pub fn add_to_linker<T: Send + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    llm::add_to_linker::<T, Llm>(linker, |_| NoModels)
}
