//! The render app is bit-identical wherever it runs: the same unit in two separate sandboxes
//! (two engines, as on two providers) gives the same output digest and fuel.

use exo_exec::{Outcome, Sandbox, SandboxConfig, UnitSpec};

/// A new sandbox. They share the compiled-module cache of the sandbox tests: compiling
/// `render.wasm` is deterministic and slow in a debug build, and what is compared here is
/// execution.
fn sandbox() -> Sandbox {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("exo-exec-tests");
    Sandbox::new(SandboxConfig::new(dir.join("cache"))).expect("sandbox")
}

#[test]
fn a_render_unit_gives_the_same_tile_digest_and_fuel_in_two_sandboxes() {
    let scene = exo_apps::render::studio_scene().expect("the studio scene compiles");
    // Frame 7 lies between two camera keys: the spline, light sampling, glass, metal and the
    // bunny's BVH are all on this tile's paths.
    let unit = UnitSpec::wasm(exo_apps::RENDER_WASM)
        .args(["40", "30", "10", "8", "16", "12", "4", "7"])
        .input(exo_apps::render::SCENE_INPUT, &scene.canonical);
    let runs: Vec<_> = (0..2)
        .map(|_| sandbox().run(&unit).expect("the unit runs"))
        .collect();
    for r in &runs {
        assert_eq!(
            r.outcome,
            Outcome::Ok,
            "{}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    assert_eq!(
        (runs[0].digest, runs[0].fuel_used),
        (runs[1].digest, runs[1].fuel_used)
    );
    let tile = runs[0].output("tile.ppm").expect("a tile");
    assert!(tile.starts_with(b"P6\n16 12\n255\n"));
    assert!(tile[13..].iter().any(|&b| b > 0), "the tile is not black");
    assert_eq!(
        runs[0].output("tile.txt"),
        Some(&b"40 30 10 8 16 12 4 7\n"[..])
    );
}

#[test]
fn a_render_unit_refuses_a_damaged_scene_with_a_reason() {
    let scene = exo_apps::render::studio_scene().expect("the studio scene compiles");
    let cut = &scene.canonical[..scene.canonical.len() / 2];
    let unit = UnitSpec::wasm(exo_apps::RENDER_WASM)
        .args(["8", "6", "0", "0", "8", "6", "1"])
        .input(exo_apps::render::SCENE_INPUT, cut);
    let r = sandbox().run(&unit).expect("the unit runs");
    assert_ne!(r.outcome, Outcome::Ok);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("scene.bin: the scene ends early"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}
