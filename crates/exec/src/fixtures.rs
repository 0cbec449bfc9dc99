//! Modules for tests and measurements of the sandbox, shared with `exo-bench` so that they are
//! written once.

/// `(module (memory (export "memory") 1) (func (export "_start")))`, assembled by hand so that
/// the library needs no WAT parser (the sandbox accepts binary modules only).
pub const TINY_WASM: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: () -> ()
    0x03, 0x02, 0x01, 0x00, // functions: one of type 0
    0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1 page
    0x07, 0x13, 0x02, // exports: 2
    0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00, // "memory" memory 0
    0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00, // "_start" func 0
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: empty body
];
