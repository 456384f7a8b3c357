//! HTTP body bytes → the server's AdmissionReview decoding → `validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    ephemeral_fuzz::admit(ephemeral_fuzz::Endpoint::Validate, body);
});
