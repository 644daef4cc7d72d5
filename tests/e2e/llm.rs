//! `fermyon:spin/llm@2.0.0`: ledge runs no model, so a guest's call gets Spin's
//! `model-not-supported` as a value it can handle (here: its own 500 naming the error), and the
//! host serves on; `ai_models` in a manifest is refused at start-up.

use crate::harness::{AppDir, HEADER, get};

#[test]
fn an_llm_call_gets_model_not_supported_and_ai_models_are_refused() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/data/...\"\ncomponent = \"data\"\n\
         [component.data]\nsource = \"{{data2}}\"\n"
    ));
    let ledge = app.up(&[]);
    let (status, body) = get(&ledge.at("/data/llm/llama2-chat"));
    assert_eq!(status, 500);
    assert!(body.contains("ModelNotSupported"), "{body}");
    assert!(
        ledge.stderr().contains("llama2-chat"),
        "the call is logged with its model"
    );

    let refused = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"data\"\n\
         [component.data]\nsource = \"{{data2}}\"\nai_models = [\"llama2-chat\"]\n"
    ));
    let stderr = refused.up_fails();
    assert!(
        stderr.contains("ai_models") && stderr.contains("fix:"),
        "{stderr}"
    );
}
