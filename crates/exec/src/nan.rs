//! NaN canonicalisation where a NaN's bits can be observed, as a rewrite of the module before
//! it is compiled.
//!
//! WebAssembly leaves the bit pattern of a NaN produced by arithmetic to the hardware (x86 and
//! ARM differ in its sign and in which payload propagates); everything else about a float
//! operation is fixed bit for bit. Cranelift's own option canonicalises after *every* float
//! operation, which lengthens the dependency chains of float loops about twofold. This pass
//! instead canonicalises a value only where its bits can leave the float domain, and only when
//! the value may carry an arithmetic NaN. docs/exec-determinism.md gives the argument for why
//! that is sound; in short:
//!
//! - **Sinks** are the only ways a float's sign or payload reaches anything else: `f32.store` and
//!   `f64.store` (memory), `i32.reinterpret_f32` and `i64.reinterpret_f64` (integers), both
//!   operands of `copysign` (whose result copies one's sign and the other's payload), and a
//!   scalar entering a vector (`splat`, `replace_lane`). Comparisons, `trunc_sat` and the
//!   trapping truncations give the same answer for every NaN. Imports that take floats are
//!   refused (the sandbox links only WASI, which takes none), and the host reads no exported
//!   function's result or global.
//! - **Taint.** A value may carry a non-deterministic NaN unless it is proven *exact*: a
//!   constant, a load, a reinterpretation of an integer, a conversion from an integer, a lane of
//!   a vector, an immutable global, the result of a `copysign` (whose operands this pass made
//!   exact), or `neg`/`abs`/`local.tee` of an exact value, or a local only ever set to exact
//!   values. The producer of a sink's operand is found by looking at the instruction right
//!   before it; anything else (arithmetic, calls, parameters, block results, `select`, mutable
//!   globals) counts as tainted. Over-approximating costs a few instructions, never soundness.
//! - **Vectors** are kept exact throughout: every vector float operation that can make a NaN is
//!   followed by a lane-wise canonicalisation (as Cranelift would), so no vector is ever tainted.
//!
//! - **Comparisons turned round.** `a b gt` feeding a `select` becomes `b a lt` when `a` and `b`
//!   are plain reads: the same predicate, the same operators and fuel, and Cranelift compiles
//!   the result to `maxsd`/`minsd` instead of a branch ([`flipped_comparisons`]).
//!
//! Canonicalising picks the positive quiet NaN with a zero payload, one of the results the
//! specification allows for any arithmetic NaN, so the rewritten module still behaves as some
//! conforming execution of the original, except that two sinks reached by `neg`/`abs` chains
//! from one arithmetic NaN may both read the positive NaN. Exact values (a NaN loaded and stored
//! again, NaN-boxing) keep their bits.
//!
//! The rewrite adds instructions, so it changes fuel. It is a pure function of the module's
//! bytes and of [`REWRITE_VERSION`], which is part of the compile cache's directory name: every
//! host running the same version charges the same fuel.

use wasm_encoder::{Encode, Ieee32, Ieee64, Instruction, RawSection};
use wasmparser::{FunctionBody, Operator, Parser, Payload, TypeRef, ValType};

/// Changes whenever the rewrite's output for some module changes (and with it, usually, fuel).
/// Version 2 turns comparisons round for the code generator (fuel unchanged).
pub const REWRITE_VERSION: u32 = 2;

/// How the sandbox makes NaN bit patterns the same on every machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NanMode {
    /// Cranelift canonicalises the result of every float operation.
    Always,
    /// This module's rewrite canonicalises only where a NaN's bits become observable.
    AtObservation,
    /// No canonicalisation: NaN bits follow the hardware. Only for benchmarks, never for units
    /// whose results are compared across machines.
    Off,
}

impl NanMode {
    /// A short tag for the compile cache's directory name. The rewrite's version is part of it,
    /// so that a node never loads code compiled by another version of the pass.
    pub fn cache_tag(self) -> String {
        match self {
            NanMode::Always => "nan-always".into(),
            NanMode::AtObservation => format!("nan-observed-v{REWRITE_VERSION}"),
            NanMode::Off => "nan-off".into(),
        }
    }
}

/// wasmtime's (and wasmparser's) bound on a function's locals: a module over it is invalid
/// anyway, and the taint analysis sizes its tables by it.
const MAX_LOCALS: u32 = 50_000;

const CANONICAL_F32: u32 = 0x7fc0_0000;
const CANONICAL_F64: u64 = 0x7ff8_0000_0000_0000;

/// Rewrites `wasm` to canonicalise NaNs at every sink. A module this pass cannot read comes
/// back as `Err(reason)`; it would not have compiled either.
pub fn canonicalize_at_sinks(wasm: &[u8]) -> Result<Vec<u8>, String> {
    let mut module = ModuleInfo::default();
    let mut out = wasm_encoder::Module::new();
    let mut code: Option<wasm_encoder::CodeSection> = None;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| e.to_string())?;
        module.note(&payload)?;
        match &payload {
            Payload::Version { encoding, .. } if *encoding != wasmparser::Encoding::Module => {
                return Err("not a core WebAssembly module".into());
            }
            Payload::CodeSectionStart { .. } => code = Some(wasm_encoder::CodeSection::new()),
            Payload::CodeSectionEntry(body) => {
                let section = code
                    .as_mut()
                    .ok_or("function body outside the code section")?;
                let index = module.imported_funcs + section.len();
                section.raw(&rewrite_body(wasm, body, &module, index)?);
                if section.len() == module.defined_funcs() {
                    out.section(section);
                }
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    let data = wasm.get(range).ok_or("section out of bounds")?;
                    out.section(&RawSection { id, data });
                }
            }
        }
    }
    Ok(out.finish())
}

/// What the rewrite needs to know about the module before its code section.
#[derive(Default)]
struct ModuleInfo {
    /// Each function type's signature (`None` for types that are not functions).
    types: Vec<Option<Signature>>,
    /// Type index of every function, imported ones first.
    func_types: Vec<u32>,
    imported_funcs: u32,
    /// Whether each global (imported ones first) holds an exact value: defined and immutable.
    exact_globals: Vec<bool>,
}

impl ModuleInfo {
    fn note(&mut self, payload: &Payload<'_>) -> Result<(), String> {
        match payload {
            Payload::TypeSection(types) => {
                for ty in types.clone().into_iter_err_on_gc_types() {
                    let ty = ty.map_err(|e| e.to_string())?;
                    self.types.push(Some(Signature {
                        params: len_u32(ty.params().len()),
                        float_params: ty
                            .params()
                            .iter()
                            .any(|t| matches!(t, ValType::F32 | ValType::F64)),
                    }));
                }
            }
            Payload::ImportSection(imports) => self.note_imports(imports)?,
            Payload::FunctionSection(funcs) => {
                for ty in funcs.clone() {
                    self.func_types.push(ty.map_err(|e| e.to_string())?);
                }
            }
            Payload::GlobalSection(globals) => {
                for g in globals.clone() {
                    self.exact_globals
                        .push(!g.map_err(|e| e.to_string())?.ty.mutable);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn note_imports(
        &mut self,
        imports: &wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), String> {
        for import in imports.clone().into_imports() {
            let import = import.map_err(|e| e.to_string())?;
            match import.ty {
                TypeRef::Func(ty) => {
                    if self.signature(ty)?.float_params {
                        return Err(format!(
                            "import {}::{} takes a float, which the sandbox cannot canonicalise",
                            import.module, import.name
                        ));
                    }
                    self.func_types.push(ty);
                    self.imported_funcs += 1;
                }
                // A host value is not known to be exact.
                TypeRef::Global(_) => self.exact_globals.push(false),
                _ => {}
            }
        }
        Ok(())
    }

    fn signature(&self, ty: u32) -> Result<Signature, String> {
        self.types
            .get(ty as usize)
            .copied()
            .flatten()
            .ok_or_else(|| format!("type {ty} is not a function type"))
    }

    fn defined_funcs(&self) -> u32 {
        len_u32(self.func_types.len()).saturating_sub(self.imported_funcs)
    }

    fn params_of(&self, func: u32) -> Result<u32, String> {
        let ty = self
            .func_types
            .get(func as usize)
            .ok_or_else(|| format!("function {func} has no type"))?;
        Ok(self.signature(*ty)?.params)
    }
}

#[derive(Clone, Copy)]
struct Signature {
    params: u32,
    float_params: bool,
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A float type: a scalar's, or a vector's lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Float {
    F32,
    F64,
}

/// What the rewrite adds around one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fix {
    /// Canonicalise the scalar on top of the stack before the instruction.
    Top(Float),
    /// `copysign`: canonicalise whichever operand may be tainted before it.
    Copysign {
        ty: Float,
        magnitude: bool,
        sign: bool,
    },
    /// Canonicalise the vector the instruction leaves, lane by lane.
    AfterVector(Float),
}

/// Scratch locals appended to a function for the canonicalisation sequences.
#[derive(Default)]
struct Scratch {
    /// Per float type: the value being canonicalised, and a `copysign` sign operand set aside.
    value: [Option<u32>; 2],
    spill: [Option<u32>; 2],
    vector: Option<u32>,
    /// Declarations to append, as `(count, type)` groups in binary form.
    declared: Vec<u8>,
    groups: u32,
}

impl Scratch {
    fn allocate(fixes: &[Option<Fix>], first_free: u32) -> Self {
        let mut s = Scratch::default();
        let mut next = first_free;
        let mut take = |slot: &mut Option<u32>, declared: &mut Vec<u8>, ty: u8| {
            if slot.is_none() {
                *slot = Some(next);
                next = next.saturating_add(1);
                declared.extend([1, ty]);
            }
        };
        for fix in fixes.iter().flatten() {
            match *fix {
                Fix::Top(ty) => take(&mut s.value[ty as usize], &mut s.declared, val_byte(ty)),
                Fix::Copysign { ty, magnitude, .. } => {
                    take(&mut s.value[ty as usize], &mut s.declared, val_byte(ty));
                    if magnitude {
                        take(&mut s.spill[ty as usize], &mut s.declared, val_byte(ty));
                    }
                }
                Fix::AfterVector(_) => take(&mut s.vector, &mut s.declared, 0x7b),
            }
        }
        s.groups = len_u32(s.declared.len() / 2);
        s
    }

    fn value(&self, ty: Float) -> u32 {
        self.value[ty as usize].unwrap_or(0)
    }
}

/// The binary encoding of a scalar float type.
fn val_byte(ty: Float) -> u8 {
    match ty {
        Float::F32 => 0x7d,
        Float::F64 => 0x7c,
    }
}

/// Rewrites one function body (the bytes after its size).
fn rewrite_body(
    wasm: &[u8],
    body: &FunctionBody<'_>,
    module: &ModuleInfo,
    func: u32,
) -> Result<Vec<u8>, String> {
    let err = |e: wasmparser::BinaryReaderError| e.to_string();
    let mut locals = body.get_locals_reader().map_err(err)?;
    let groups = locals.get_count();
    let mut count = u64::from(module.params_of(func)?);
    let groups_start = body.range().start + leb_len(groups);
    for _ in 0..groups {
        count += u64::from(locals.read().map_err(err)?.0);
    }
    let ops_start = locals.original_position();
    let mut ops = Vec::new();
    let mut reader = body.get_operators_reader().map_err(err)?;
    while !reader.eof() {
        ops.push(reader.read_with_offset().map_err(err)?);
    }
    let ends: Vec<usize> = ops
        .iter()
        .skip(1)
        .map(|(_, at)| *at)
        .chain([body.range().end])
        .collect();

    let params = module.params_of(func)?;
    let count = u32::try_from(count)
        .ok()
        .filter(|c| *c <= MAX_LOCALS)
        .ok_or_else(|| format!("function {func} has more than {MAX_LOCALS} locals"))?;
    let taint = Taint::new(&ops, params, count, module);
    let fixes: Vec<Option<Fix>> = (0..ops.len()).map(|i| taint.fix(i)).collect();
    let scratch = Scratch::allocate(&fixes, count);

    let flips = flipped_comparisons(&ops, &fixes);

    let mut out = Vec::with_capacity(body.range().len() + 16 * fixes.iter().flatten().count());
    groups
        .checked_add(scratch.groups)
        .ok_or("too many local declarations")?
        .encode(&mut out);
    out.extend_from_slice(&wasm[groups_start..ops_start]);
    out.extend_from_slice(&scratch.declared);
    let raw = |i: usize| &wasm[ops[i].1..ends[i]];
    for (i, fix) in fixes.iter().enumerate() {
        // A flipped comparison at `c` pushes its operands (instructions `c - 2` and `c - 1`)
        // in the other order.
        if flips.get(i + 2) == Some(&true) {
            out.extend_from_slice(raw(i + 1));
            continue;
        }
        if flips.get(i + 1) == Some(&true) {
            out.extend_from_slice(raw(i - 1));
            continue;
        }
        if flips[i] {
            match ops[i].0 {
                Operator::F32Gt => Instruction::F32Lt.encode(&mut out),
                _ => Instruction::F64Lt.encode(&mut out),
            }
            continue;
        }
        let raw = raw(i);
        match *fix {
            None => out.extend_from_slice(raw),
            Some(Fix::Top(ty)) => {
                canonicalize_scalar(&mut out, ty, scratch.value(ty));
                out.extend_from_slice(raw);
            }
            Some(Fix::Copysign {
                ty,
                magnitude,
                sign,
            }) => {
                let value = scratch.value(ty);
                if sign {
                    canonicalize_scalar(&mut out, ty, value);
                }
                if magnitude {
                    let spill = scratch.spill[ty as usize].unwrap_or(0);
                    Instruction::LocalSet(spill).encode(&mut out);
                    canonicalize_scalar(&mut out, ty, value);
                    Instruction::LocalGet(spill).encode(&mut out);
                }
                out.extend_from_slice(raw);
            }
            Some(Fix::AfterVector(ty)) => {
                out.extend_from_slice(raw);
                canonicalize_vector(&mut out, ty, scratch.vector.unwrap_or(0));
            }
        }
    }
    Ok(out)
}

/// Which instructions are a `gt` to rewrite as `lt` with its operands pushed the other way
/// round: `a b gt` feeding a `select` straight away, where `a` and `b` are each pushed by one
/// instruction that reads a local, a global or a constant.
///
/// `a > b` and `b < a` are the same predicate for every pair of floats, NaNs included (both
/// false), and reading locals, globals and constants in either order gives the same values, so
/// the rewritten function computes the same results with the same operators, hence the same
/// fuel. What changes is the machine code: Cranelift turns `select(b < a, a, b)` into one
/// `maxsd` (and `select(a < b, a, b)` into `minsd`) but every other float `select` into a
/// conditional branch around a move. Compilers emit `x > y ? x : y` for `max`-like code (LLVM
/// puts a constant operand on the right of a comparison), and in a float kernel such a branch
/// can go either way at random: a path tracer's ray-box test has three of them.
fn flipped_comparisons(ops: &[(Operator<'_>, usize)], fixes: &[Option<Fix>]) -> Vec<bool> {
    let pushes_one = |op: &Operator<'_>| {
        matches!(
            op,
            Operator::LocalGet { .. }
                | Operator::GlobalGet { .. }
                | Operator::F32Const { .. }
                | Operator::F64Const { .. }
        )
    };
    let mut flips = vec![false; ops.len()];
    for c in 2..ops.len().saturating_sub(1) {
        flips[c] = matches!(ops[c].0, Operator::F32Gt | Operator::F64Gt)
            && matches!(
                ops[c + 1].0,
                Operator::Select | Operator::TypedSelect { .. }
            )
            && pushes_one(&ops[c - 2].0)
            && pushes_one(&ops[c - 1].0)
            && fixes[c - 2..=c].iter().all(Option::is_none);
    }
    flips
}

/// `x` on the stack becomes `x == x ? x : canonical NaN` (6 instructions).
fn canonicalize_scalar(out: &mut Vec<u8>, ty: Float, local: u32) {
    Instruction::LocalTee(local).encode(out);
    match ty {
        Float::F32 => Instruction::F32Const(Ieee32::new(CANONICAL_F32)),
        Float::F64 => Instruction::F64Const(Ieee64::new(CANONICAL_F64)),
    }
    .encode(out);
    Instruction::LocalGet(local).encode(out);
    Instruction::LocalGet(local).encode(out);
    match ty {
        Float::F32 => Instruction::F32Eq,
        Float::F64 => Instruction::F64Eq,
    }
    .encode(out);
    Instruction::Select.encode(out);
}

/// Lane-wise: `bitselect(v, canonical, v == v)` (6 instructions).
fn canonicalize_vector(out: &mut Vec<u8>, ty: Float, local: u32) {
    Instruction::LocalTee(local).encode(out);
    let (canonical, eq) = match ty {
        Float::F32 => (
            i128::from(CANONICAL_F32) * 0x0000_0001_0000_0001_0000_0001_0000_0001,
            Instruction::F32x4Eq,
        ),
        Float::F64 => (
            i128::from(CANONICAL_F64) * 0x0000_0000_0000_0001_0000_0000_0000_0001,
            Instruction::F64x2Eq,
        ),
    };
    Instruction::V128Const(canonical).encode(out);
    Instruction::LocalGet(local).encode(out);
    Instruction::LocalGet(local).encode(out);
    eq.encode(out);
    Instruction::V128Bitselect.encode(out);
}

fn leb_len(mut n: u32) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// Where the value on top of the stack came from, as far as one look back can tell.
#[derive(Clone, Copy)]
enum Source {
    Exact,
    Tainted,
    /// Whatever the local held: exact unless the local may hold a tainted value.
    Local(u32),
}

/// Which values may carry a NaN whose bits depend on the hardware.
struct Taint<'a, 'm> {
    ops: &'a [(Operator<'m>, usize)],
    /// Per local: whether any value it may hold is tainted (parameters always are).
    locals: Vec<bool>,
    module: &'a ModuleInfo,
}

impl<'a, 'm> Taint<'a, 'm> {
    /// Finds the tainted locals: parameters, locals set from a tainted value, and (transitively)
    /// locals set from a tainted local. One pass builds the flow between locals, a worklist
    /// closes it: linear in the body and the locals, whatever order they come in.
    fn new(
        ops: &'a [(Operator<'m>, usize)],
        params: u32,
        locals: u32,
        module: &'a ModuleInfo,
    ) -> Self {
        let mut t = Taint {
            ops,
            locals: vec![false; locals as usize],
            module,
        };
        let mut flows: Vec<Vec<u32>> = vec![Vec::new(); locals as usize];
        let mut work: Vec<u32> = (0..params.min(locals)).collect();
        for (i, (op, _)) in ops.iter().enumerate() {
            if let Operator::LocalSet { local_index } | Operator::LocalTee { local_index } = op {
                match t.source(i) {
                    Source::Exact => {}
                    Source::Tainted => work.push(*local_index),
                    Source::Local(from) => {
                        if let Some(f) = flows.get_mut(from as usize) {
                            f.push(*local_index);
                        }
                    }
                }
            }
        }
        while let Some(l) = work.pop() {
            match t.locals.get_mut(l as usize) {
                Some(seen) if !*seen => {
                    *seen = true;
                    work.extend(flows.get(l as usize).into_iter().flatten());
                }
                _ => {}
            }
        }
        t
    }

    /// Where the value on top of the stack when instruction `i` runs came from: it was pushed
    /// by instruction `i - 1`, unless that one is control flow or a call (then: tainted).
    fn source(&self, i: usize) -> Source {
        let mut at = i;
        loop {
            let Some(prev) = at.checked_sub(1) else {
                return Source::Tainted;
            };
            match &self.ops[prev].0 {
                Operator::LocalGet { local_index } => return Source::Local(*local_index),
                Operator::GlobalGet { global_index } => {
                    let exact = self.module.exact_globals.get(*global_index as usize);
                    return if exact.copied().unwrap_or(false) {
                        Source::Exact
                    } else {
                        Source::Tainted
                    };
                }
                // These pass their operand through, bit for bit or with its sign changed.
                Operator::LocalTee { .. }
                | Operator::F32Neg
                | Operator::F32Abs
                | Operator::F64Neg
                | Operator::F64Abs => at = prev,
                op if is_exact_source(op) => return Source::Exact,
                _ => return Source::Tainted,
            }
        }
    }

    fn operand_tainted(&self, i: usize) -> bool {
        match self.source(i) {
            Source::Exact => false,
            Source::Tainted => true,
            Source::Local(l) => self.locals.get(l as usize).copied().unwrap_or(true),
        }
    }

    /// What to add around instruction `i`, if anything.
    fn fix(&self, i: usize) -> Option<Fix> {
        use Operator as O;
        let top = |ty| self.operand_tainted(i).then_some(Fix::Top(ty));
        match &self.ops[i].0 {
            O::F32Store { .. }
            | O::I32ReinterpretF32
            | O::F32x4Splat
            | O::F32x4ReplaceLane { .. } => top(Float::F32),
            O::F64Store { .. }
            | O::I64ReinterpretF64
            | O::F64x2Splat
            | O::F64x2ReplaceLane { .. } => top(Float::F64),
            O::F32Copysign => self.copysign(i, Float::F32),
            O::F64Copysign => self.copysign(i, Float::F64),
            op => vector_nan_source(op).map(Fix::AfterVector),
        }
    }

    fn copysign(&self, i: usize, ty: Float) -> Option<Fix> {
        let sign = self.operand_tainted(i);
        // The magnitude sits below the sign; its producer is known only when the sign was
        // pushed by an instruction that pops nothing.
        let magnitude = match i.checked_sub(1).map(|p| &self.ops[p].0) {
            Some(Operator::LocalGet { .. } | Operator::GlobalGet { .. })
            | Some(Operator::F32Const { .. } | Operator::F64Const { .. }) => {
                self.operand_tainted(i - 1)
            }
            _ => true,
        };
        (sign || magnitude).then_some(Fix::Copysign {
            ty,
            magnitude,
            sign,
        })
    }
}

/// Instructions whose float result has bits fixed by the specification.
fn is_exact_source(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::F32Const { .. }
            | O::F64Const { .. }
            | O::F32Load { .. }
            | O::F64Load { .. }
            | O::F32ReinterpretI32
            | O::F64ReinterpretI64
            | O::F32ConvertI32S
            | O::F32ConvertI32U
            | O::F32ConvertI64S
            | O::F32ConvertI64U
            | O::F64ConvertI32S
            | O::F64ConvertI32U
            | O::F64ConvertI64S
            | O::F64ConvertI64U
            | O::F32Copysign
            | O::F64Copysign
            | O::F32x4ExtractLane { .. }
            | O::F64x2ExtractLane { .. }
    )
}

/// Vector instructions that can make a NaN, by lane type. The others either move bits
/// (`neg`, `abs`, `pmin`, `pmax`, shuffles, bitwise operations) or cannot make a NaN.
fn vector_nan_source(op: &Operator<'_>) -> Option<Float> {
    use Operator as O;
    match op {
        O::F32x4Add
        | O::F32x4Sub
        | O::F32x4Mul
        | O::F32x4Div
        | O::F32x4Min
        | O::F32x4Max
        | O::F32x4Sqrt
        | O::F32x4Ceil
        | O::F32x4Floor
        | O::F32x4Trunc
        | O::F32x4Nearest
        | O::F32x4DemoteF64x2Zero => Some(Float::F32),
        O::F64x2Add
        | O::F64x2Sub
        | O::F64x2Mul
        | O::F64x2Div
        | O::F64x2Min
        | O::F64x2Max
        | O::F64x2Sqrt
        | O::F64x2Ceil
        | O::F64x2Floor
        | O::F64x2Trunc
        | O::F64x2Nearest
        | O::F64x2PromoteLowF32x4 => Some(Float::F64),
        _ => None,
    }
}
