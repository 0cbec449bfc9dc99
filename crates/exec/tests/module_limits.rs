//! A module that would take too long or too much memory to compile is refused before the
//! compiler sees it, by static bounds on its bytes (`exo_exec::ModuleLimit`): the same verdict,
//! digest and zero fuel on every run and every machine, and no compile at all.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use exo_exec::{
    ExecError, ModuleLimit, ModuleRefusal, Outcome, Sandbox, SandboxConfig, UnitSpec, check_module,
};
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, CustomSection, DataSection, ElementSection, Elements,
    EntityType, ExportKind, ExportSection, Function, FunctionSection, GlobalSection, GlobalType,
    ImportSection, Instruction, Module, TypeSection, ValType,
};

/// Straight-line code: `i32.const 1; drop`, three bytes, repeated.
fn straight_line(bytes: usize) -> Function {
    let mut f = Function::new([]);
    for _ in 0..bytes / 3 {
        f.instruction(&Instruction::I32Const(1));
        f.instruction(&Instruction::Drop);
    }
    f.instruction(&Instruction::End);
    f
}

/// A module of `bodies` functions of type `() -> ()`, with the sections `before_code` adds
/// between the function and code sections (exports, elements).
fn with_functions(bodies: &[Function], before_code: impl FnOnce(&mut Module)) -> Vec<u8> {
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    module.section(&types);
    let mut funcs = FunctionSection::new();
    for _ in bodies {
        funcs.function(0);
    }
    module.section(&funcs);
    before_code(&mut module);
    let mut code = CodeSection::new();
    for body in bodies {
        code.function(body);
    }
    module.section(&code);
    module.finish()
}

fn empty_body() -> Function {
    let mut f = Function::new([]);
    f.instruction(&Instruction::End);
    f
}

/// A module just over `limit` (by one item, or one byte).
fn over(limit: ModuleLimit) -> Vec<u8> {
    let n = usize::try_from(limit.max()).unwrap() + 1;
    let one = [empty_body()];
    match limit {
        ModuleLimit::ModuleBytes => {
            let mut module = Module::new();
            module.section(&CustomSection {
                name: "padding".into(),
                data: vec![0; n].into(),
            });
            module.finish()
        }
        ModuleLimit::CodeBytes => {
            // Bodies at the per-function bound, one more than the total allows.
            let per = usize::try_from(ModuleLimit::FunctionBodyBytes.max()).unwrap() - 8;
            let body = straight_line(per);
            let count = n / per + 1;
            with_functions(&vec![body; count], |_| {})
        }
        ModuleLimit::Functions => with_functions(&vec![empty_body(); n], |_| {}),
        ModuleLimit::FunctionBodyBytes => with_functions(&[straight_line(n)], |_| {}),
        ModuleLimit::FunctionLocals => {
            let mut f = Function::new([(u32::try_from(n).unwrap(), ValType::I64)]);
            f.instruction(&Instruction::End);
            with_functions(&[f], |_| {})
        }
        ModuleLimit::NestingDepth => {
            let mut f = Function::new([]);
            for _ in 0..n {
                f.instruction(&Instruction::Block(BlockType::Empty));
            }
            for _ in 0..=n {
                f.instruction(&Instruction::End);
            }
            with_functions(&[f], |_| {})
        }
        ModuleLimit::Types => {
            let mut module = Module::new();
            let mut types = TypeSection::new();
            for _ in 0..n {
                types.ty().function([ValType::I32], []);
            }
            module.section(&types);
            module.finish()
        }
        ModuleLimit::Imports => {
            let mut module = Module::new();
            let mut types = TypeSection::new();
            types.ty().function([], []);
            module.section(&types);
            let mut imports = ImportSection::new();
            for i in 0..n {
                imports.import("env", &format!("f{i}"), EntityType::Function(0));
            }
            module.section(&imports);
            module.finish()
        }
        ModuleLimit::Exports => with_functions(&one, |m| {
            let mut exports = ExportSection::new();
            for i in 0..n {
                exports.export(&format!("e{i}"), ExportKind::Func, 0);
            }
            m.section(&exports);
        }),
        ModuleLimit::Globals => {
            let mut module = Module::new();
            let mut globals = GlobalSection::new();
            let ty = GlobalType {
                val_type: ValType::I64,
                mutable: true,
                shared: false,
            };
            for _ in 0..n {
                globals.global(ty, &ConstExpr::i64_const(7));
            }
            module.section(&globals);
            module.finish()
        }
        ModuleLimit::ElementSegments => with_functions(&one, |m| {
            let mut elements = ElementSection::new();
            for _ in 0..n {
                elements.passive(Elements::Functions(vec![0].into()));
            }
            m.section(&elements);
        }),
        ModuleLimit::DataSegments => {
            let mut module = Module::new();
            let mut data = DataSection::new();
            for _ in 0..n {
                data.passive([1u8]);
            }
            module.section(&data);
            module.finish()
        }
    }
}

fn sandbox(dir: &tempfile::TempDir) -> Sandbox {
    Sandbox::new(SandboxConfig::new(dir.path().join("cache"))).unwrap()
}

#[test]
fn a_module_over_each_static_limit_is_refused_with_the_same_outcome_on_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(&dir);
    for limit in ModuleLimit::ALL {
        let wasm = over(limit);
        assert_eq!(
            check_module(&wasm).map_err(|r| match r {
                ModuleRefusal::OverLimit { limit, .. } => Some(limit),
                ModuleRefusal::Malformed(_) => None,
            }),
            Err(Some(limit)),
            "{limit:?}"
        );
        let runs: Vec<_> = (0..3)
            .map(|_| sandbox.run(&UnitSpec::wasm(&wasm)).unwrap())
            .collect();
        for run in &runs {
            let Outcome::InvalidModule(message) = &run.outcome else {
                panic!("{limit:?}: {:?}", run.outcome);
            };
            let prefix = format!("over the module limit {}:", limit.name());
            assert!(message.starts_with(&prefix), "{message}");
            assert_eq!(run.outcome.code(), "invalid_module");
            assert_eq!((run.digest, run.fuel_used), (runs[0].digest, 0));
        }
        assert!(matches!(
            sandbox.prepare(&wasm),
            Err(ExecError::InvalidModule(_))
        ));
    }
    assert_eq!(sandbox.cache_stats().compiles, 0, "nothing was compiled");
}

/// The pathological case: one function body of straight-line code just over 1 MiB, which
/// Cranelift would compile on a single thread for seconds (tens of seconds in a debug build).
#[test]
fn a_huge_function_body_is_refused_before_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(&dir);
    let bytes = usize::try_from(ModuleLimit::FunctionBodyBytes.max()).unwrap() + 3;
    let wasm = with_functions(&[straight_line(bytes)], |m| {
        let mut exports = ExportSection::new();
        exports.export("_start", ExportKind::Func, 0);
        m.section(&exports);
    });
    let result = sandbox.run(&UnitSpec::wasm(&wasm)).unwrap();
    assert_eq!(result.outcome.code(), "invalid_module");
    assert!(
        result.outcome.to_string().contains("function_body_bytes"),
        "{}",
        result.outcome
    );
    assert_eq!(sandbox.cache_stats().compiles, 0);
}

/// Under every bound, a module still compiles and runs: the bounds refuse only what is over.
#[test]
fn a_module_with_a_body_under_the_bound_compiles_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(&dir);
    let wasm = with_functions(&[straight_line(30_000)], |m| {
        let mut exports = ExportSection::new();
        exports.export("_start", ExportKind::Func, 0);
        m.section(&exports);
    });
    let result = sandbox.run(&UnitSpec::wasm(&wasm)).unwrap();
    assert_eq!(result.outcome, Outcome::Ok);
    assert_eq!(sandbox.cache_stats().compiles, 1);
}
