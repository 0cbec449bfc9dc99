//! Static bounds on a module, checked on its bytes before anything compiles it, so that a
//! module that would take too long or too much memory to compile is refused the same way on
//! every machine: the verdict is a function of the bytes alone (`invalid_module`, with the
//! bound named in the message), never of how fast this host compiles.
//!
//! Cranelift's time and memory grow with the code it is given: about linearly with the bytes
//! of each function body, and a single body is compiled by one thread, so the largest body
//! bounds the longest step. Counts of functions, types, imports, globals, exports, element and
//! data segments cost wasmtime time and memory per item before and after code generation. The
//! figures these bounds were picked from are in docs/exec-determinism.md ("Bounded compiles");
//! real apps sit far below every one of them.

use wasmparser::{FunctionBody, Imports, Operator, Parser, Payload};

/// A static bound of a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleLimit {
    /// The whole module, in bytes.
    ModuleBytes,
    /// The bytes of all function bodies together.
    CodeBytes,
    /// Functions defined by the module.
    Functions,
    /// The bytes of one function body.
    FunctionBodyBytes,
    /// Locals declared by one function (parameters not counted).
    FunctionLocals,
    /// Blocks, loops and `if`s open at once in one function: Cranelift's time grows faster
    /// than the code's size with it.
    NestingDepth,
    /// Recursion groups of the type section.
    Types,
    Imports,
    Exports,
    Globals,
    ElementSegments,
    DataSegments,
}

impl ModuleLimit {
    /// Every bound, in the order the module is checked.
    pub const ALL: [ModuleLimit; 12] = [
        ModuleLimit::ModuleBytes,
        ModuleLimit::CodeBytes,
        ModuleLimit::Functions,
        ModuleLimit::FunctionBodyBytes,
        ModuleLimit::FunctionLocals,
        ModuleLimit::NestingDepth,
        ModuleLimit::Types,
        ModuleLimit::Imports,
        ModuleLimit::Exports,
        ModuleLimit::Globals,
        ModuleLimit::ElementSegments,
        ModuleLimit::DataSegments,
    ];

    /// The most a module may have.
    pub const fn max(self) -> u64 {
        match self {
            ModuleLimit::ModuleBytes => 64 << 20,
            ModuleLimit::CodeBytes => 16 << 20,
            ModuleLimit::Functions => 50_000,
            ModuleLimit::FunctionBodyBytes => 1 << 20,
            ModuleLimit::FunctionLocals => 10_000,
            ModuleLimit::NestingDepth => 2_000,
            ModuleLimit::Types => 100_000,
            ModuleLimit::Imports => 10_000,
            ModuleLimit::Exports => 100_000,
            ModuleLimit::Globals => 100_000,
            ModuleLimit::ElementSegments => 100_000,
            ModuleLimit::DataSegments => 100_000,
        }
    }

    /// A stable name, the first word of the refusal's message.
    pub const fn name(self) -> &'static str {
        match self {
            ModuleLimit::ModuleBytes => "module_bytes",
            ModuleLimit::CodeBytes => "code_bytes",
            ModuleLimit::Functions => "functions",
            ModuleLimit::FunctionBodyBytes => "function_body_bytes",
            ModuleLimit::FunctionLocals => "function_locals",
            ModuleLimit::NestingDepth => "nesting_depth",
            ModuleLimit::Types => "types",
            ModuleLimit::Imports => "imports",
            ModuleLimit::Exports => "exports",
            ModuleLimit::Globals => "globals",
            ModuleLimit::ElementSegments => "element_segments",
            ModuleLimit::DataSegments => "data_segments",
        }
    }
}

/// Why a module was refused before compiling.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModuleRefusal {
    /// Over a static bound.
    #[error("over the module limit {}: {found} > {}", limit.name(), limit.max())]
    OverLimit { limit: ModuleLimit, found: u64 },
    /// Not a module the parser can read (the compiler would refuse it too).
    #[error("malformed module: {0}")]
    Malformed(String),
}

/// Checks `wasm` against every [`ModuleLimit`], reading section headers and function body
/// headers only: linear in the module's size and far cheaper than compiling it.
pub fn check_module(wasm: &[u8]) -> Result<(), ModuleRefusal> {
    over(ModuleLimit::ModuleBytes, wasm.len() as u64)?;
    let mut code_bytes = 0u64;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(malformed)?;
        match payload {
            Payload::TypeSection(r) => over(ModuleLimit::Types, r.count().into())?,
            Payload::ImportSection(r) => {
                let mut imports = 0u64;
                for group in r {
                    imports = imports.saturating_add(match group.map_err(malformed)? {
                        Imports::Single(..) => 1,
                        Imports::Compact1 { items, .. } => items.count().into(),
                        Imports::Compact2 { names, .. } => names.count().into(),
                    });
                    over(ModuleLimit::Imports, imports)?;
                }
            }
            Payload::FunctionSection(r) => over(ModuleLimit::Functions, r.count().into())?,
            Payload::ExportSection(r) => over(ModuleLimit::Exports, r.count().into())?,
            Payload::GlobalSection(r) => over(ModuleLimit::Globals, r.count().into())?,
            Payload::ElementSection(r) => over(ModuleLimit::ElementSegments, r.count().into())?,
            Payload::DataSection(r) => over(ModuleLimit::DataSegments, r.count().into())?,
            Payload::CodeSectionStart { count, size, .. } => {
                over(ModuleLimit::Functions, count.into())?;
                over(ModuleLimit::CodeBytes, size.into())?;
            }
            Payload::CodeSectionEntry(body) => {
                let bytes = body.range().len() as u64;
                over(ModuleLimit::FunctionBodyBytes, bytes)?;
                code_bytes = code_bytes.saturating_add(bytes);
                over(ModuleLimit::CodeBytes, code_bytes)?;
                check_body(&body)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The bounds inside one function body: its locals, then how deep its blocks nest.
fn check_body(body: &FunctionBody<'_>) -> Result<(), ModuleRefusal> {
    let mut locals = 0u64;
    let mut reader = body.get_locals_reader().map_err(malformed)?;
    for _ in 0..reader.get_count() {
        let (count, _) = reader.read().map_err(malformed)?;
        locals = locals.saturating_add(count.into());
        over(ModuleLimit::FunctionLocals, locals)?;
    }
    let mut operators = body.get_operators_reader().map_err(malformed)?;
    let mut depth = 0u64;
    while !operators.eof() {
        match operators.read().map_err(malformed)? {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Try { .. }
            | Operator::TryTable { .. } => {
                depth += 1;
                over(ModuleLimit::NestingDepth, depth)?;
            }
            Operator::End => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn over(limit: ModuleLimit, found: u64) -> Result<(), ModuleRefusal> {
    if found > limit.max() {
        return Err(ModuleRefusal::OverLimit { limit, found });
    }
    Ok(())
}

fn malformed(e: wasmparser::BinaryReaderError) -> ModuleRefusal {
    ModuleRefusal::Malformed(e.message().to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_example_apps_are_far_below_every_limit() {
        for wasm in [
            exo_apps::HELLO_WASM,
            exo_apps::PROBE_WASM,
            exo_apps::RENDER_WASM,
            exo_apps::BACKTEST_WASM,
            exo_apps::MONTECARLO_WASM,
        ] {
            assert_eq!(check_module(wasm), Ok(()));
        }
    }

    #[test]
    fn bytes_that_are_not_a_module_are_malformed() {
        assert!(matches!(
            check_module(b"\0asm\x01\0\0\0\x01\xff"),
            Err(ModuleRefusal::Malformed(_))
        ));
    }
}
