//! File contents → `render`'s YAML/JSON input reading (and expansion).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|contents: &[u8]| {
    ephemeral_fuzz::render_file(contents);
});
