//! The JSON patches (RFC 6902) that point each webhook's
//! `clientConfig.caBundle` at the CA (pure).
//!
//! A webhook configuration is patched by index, `/webhooks/<i>`, so each
//! changed entry is guarded by a `test` of `/webhooks/<i>/name`: if the list
//! was reordered or shortened between our read and the patch, the API server
//! rejects the whole patch instead of putting the CA into the wrong entry or
//! creating one, and the next round re-reads. Entries whose `caBundle` is
//! already right are left out, and a configuration where all are right gets
//! no patch at all, so steady state makes no writes.

use base64::Engine;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, TestOperation};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use serde_json::Value;

/// One webhook of a configuration: its name and current `caBundle`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookCa {
    /// `webhooks[i].name`.
    pub name: String,
    /// `webhooks[i].clientConfig.caBundle` (decoded), if set.
    pub ca_bundle: Option<Vec<u8>>,
}

/// The webhooks of a MutatingWebhookConfiguration, in order.
pub fn mutating(config: &MutatingWebhookConfiguration) -> Vec<WebhookCa> {
    config
        .webhooks
        .iter()
        .flatten()
        .map(|w| WebhookCa {
            name: w.name.clone(),
            ca_bundle: w.client_config.ca_bundle.as_ref().map(|b| b.0.clone()),
        })
        .collect()
}

/// The webhooks of a ValidatingWebhookConfiguration, in order.
pub fn validating(config: &ValidatingWebhookConfiguration) -> Vec<WebhookCa> {
    config
        .webhooks
        .iter()
        .flatten()
        .map(|w| WebhookCa {
            name: w.name.clone(),
            ca_bundle: w.client_config.ca_bundle.as_ref().map(|b| b.0.clone()),
        })
        .collect()
}

/// The patch that sets every webhook's `caBundle` to `ca_pem` (sent base64,
/// the JSON form of the API's `[]byte`), or `None` when all already have it.
pub fn ca_bundle_patch(webhooks: &[WebhookCa], ca_pem: &[u8]) -> Option<Patch> {
    let encoded = Value::String(base64::engine::general_purpose::STANDARD.encode(ca_pem));
    let ops: Vec<PatchOperation> = webhooks
        .iter()
        .enumerate()
        .filter(|(_, w)| w.ca_bundle.as_deref() != Some(ca_pem))
        .flat_map(|(i, w)| {
            let index = i.to_string();
            [
                PatchOperation::Test(TestOperation {
                    path: PointerBuf::from_tokens(["webhooks", index.as_str(), "name"]),
                    value: Value::String(w.name.clone()),
                }),
                // `add` on an existing member replaces it, so this works
                // whether or not the webhook has a caBundle yet.
                PatchOperation::Add(AddOperation {
                    path: PointerBuf::from_tokens([
                        "webhooks",
                        index.as_str(),
                        "clientConfig",
                        "caBundle",
                    ]),
                    value: encoded.clone(),
                }),
            ]
        })
        .collect();
    (!ops.is_empty()).then_some(Patch(ops))
}
