//! The entry-point macros of [`ledge-sdk`](https://docs.rs/ledge-sdk): use them through that
//! crate (`#[ledge_sdk::http_service]`), never on their own.
//!
//! Why this crate exists: spin-sdk 7's macros expand to `::spin_sdk::...` paths, so re-exporting
//! them would compile only where the guest also depends on `spin-sdk` under that name. These
//! expand to exactly the same code with `::ledge_sdk::...` paths instead, which resolve through
//! ledge-sdk's re-exports of spin-sdk. A proc macro cannot see under which name its caller
//! depends on a crate, so the guest must depend on ledge-sdk as `ledge-sdk` (not renamed).

#![deny(missing_docs)]

use proc_macro::TokenStream;
use quote::quote;

/// Marks an `async fn` as the component's HTTP handler (`wasi:http/handler@0.3.0`).
///
/// The same as spin-sdk 7's `#[http_service]`: the function takes one argument that implements
/// `ledge_sdk::http::FromRequest` (usually `ledge_sdk::http::Request`) and returns a type that
/// implements `ledge_sdk::http::IntoResponse`.
///
/// ```ignore
/// use ledge_sdk::http::{IntoResponse, Request};
///
/// #[ledge_sdk::http_service]
/// async fn handle(_req: Request) -> impl IntoResponse {
///     "hello"
/// }
/// ```
#[proc_macro_attribute]
pub fn http_service(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = syn::parse_macro_input!(item as syn::ItemFn);
    if func.sig.asyncness.is_none() {
        return syn::Error::new_spanned(
            func.sig.fn_token,
            "the `#[http_service]` function must be `async`",
        )
        .to_compile_error()
        .into();
    }
    let func_name = &func.sig.ident;
    // Kept token for token with spin-macro 7.0.0, so a ported guest exports the same handler.
    quote!(
        #func
        mod __spin_wasip3_http {
            use ::ledge_sdk::http::IntoResponse;

            struct Spin;
            ::ledge_sdk::wasip3::http::service::export!(Spin);

            impl ::ledge_sdk::wasip3::exports::http::handler::Guest for self::Spin {
                async fn handle(
                    request: ::ledge_sdk::wasip3::http::types::Request,
                ) -> Result<
                    ::ledge_sdk::wasip3::http::types::Response,
                    ::ledge_sdk::wasip3::http::types::ErrorCode,
                > {
                    let request = <::ledge_sdk::http::Request as ::ledge_sdk::http::FromRequest>::from_request(request)?;
                    ::ledge_sdk::http::IntoResponse::into_response(super::#func_name(request).await)
                }
            }
        }
    )
    .into()
}

/// Generates bindings for the component's dependencies, as spin-sdk 7's `dependencies!` does:
/// from `spin-dependencies.wit` in the package's directory when it exists, else nothing.
///
/// ```ignore
/// ledge_sdk::dependencies!();
/// ```
#[proc_macro]
pub fn dependencies(item: TokenStream) -> TokenStream {
    if !item.is_empty() {
        return syn::Error::new(
            proc_macro2::Span::call_site(),
            "the `dependencies!` macro does not take any arguments",
        )
        .to_compile_error()
        .into();
    }
    let Ok(manifest_dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        return syn::Error::new(
            proc_macro2::Span::call_site(),
            "`dependencies!` needs CARGO_MANIFEST_DIR: build with cargo",
        )
        .to_compile_error()
        .into();
    };
    let wit_path = std::path::Path::new(&manifest_dir).join("spin-dependencies.wit");
    if !wit_path.exists() {
        return TokenStream::new();
    }
    let Some(wit_path) = wit_path.to_str() else {
        return syn::Error::new(
            proc_macro2::Span::call_site(),
            "the path of spin-dependencies.wit is not valid UTF-8",
        )
        .to_compile_error()
        .into();
    };
    quote!(
        ::ledge_sdk::wit_bindgen::generate!({
            path: #wit_path,
            world: "root",
            runtime_path: "::ledge_sdk::wit_bindgen::rt",
            generate_all,
        });
    )
    .into()
}

/// Refuses to compile: ledge runs HTTP components only, so spin-sdk's Redis trigger
/// (`#[redis_subscriber]`) has nothing to call it.
///
/// It exists so that a port gets this message instead of an unresolved `::spin_sdk` path.
/// Redis as a client (`ledge_sdk::redis`, feature `redis`) still compiles; on ledge a call to it
/// fails its request.
#[proc_macro_attribute]
pub fn redis_subscriber(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = syn::parse_macro_input!(item as syn::ItemFn);
    syn::Error::new_spanned(
        func.sig.fn_token,
        "ledge has no Redis trigger: serve this function over HTTP with `#[ledge_sdk::http_service]`, \
         or keep it on Spin with spin-sdk",
    )
    .to_compile_error()
    .into()
}
