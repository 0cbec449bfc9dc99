//! The render app's requester side: scene files and their bounds, job plans, frame assembly and
//! the animated preview.

use exo_app_render::{Material, canonical};
use exo_apps::CombineError;
use exo_apps::render::{self, scene_file};
use std::path::Path;

const CUBE_OBJ: &str = "mtllib cube.mtl\no cube\nusemtl red\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n\
                        v 0 0 1\nv 1 0 1\nv 1 1 1\nv 0 1 1\nf 1 2 3 4\nf 5 6 7 8\nf 1 2 6 5\n";
const CUBE_MTL: &str = "newmtl red\nKd 0.8 0.1 0.1\n";
const GREY: &str = "[[material]]\nname = \"m\"\ntype = \"diffuse\"\ncolor = [0.5, 0.5, 0.5]\n";

/// A scene file around `body`, with a valid image and camera.
fn scene(body: &str) -> String {
    format!(
        "[image]\nwidth = 64\nheight = 48\nsamples = 4\n\n[[camera]]\nframe = 0\n\
         from = [0.0, 1.0, 4.0]\nat = [0.0, 0.5, 0.0]\nfov = 40.0\n\n{body}"
    )
}

/// Files the scenes below may name.
fn files(path: &Path) -> Result<Vec<u8>, String> {
    match path.to_str() {
        Some("cube.obj") => Ok(CUBE_OBJ.into()),
        Some("cube.mtl") => Ok(CUBE_MTL.into()),
        Some("bare.obj") => Ok(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n".to_vec()),
        Some("nan.obj") => Ok(b"v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n".to_vec()),
        Some("far.obj") => Ok(b"v 0 0 1e300\nv 1 0 0\nv 0 1 0\nf 1 2 3\n".to_vec()),
        Some("big.obj") => {
            // One quad more than half the triangle bound: one triangle too many.
            let quads = canonical::MAX_TRIANGLES / 2 + 1;
            let mut obj = String::from("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n");
            obj.push_str(&"f 1 2 3 4\n".repeat(quads));
            Ok(obj.into_bytes())
        }
        _ => Err("no such file".into()),
    }
}

fn compile(body: &str) -> Result<scene_file::CompiledScene, scene_file::SceneError> {
    scene_file::compile(&scene(body), &files)
}

#[test]
fn the_studio_scene_has_two_meshes_their_mtl_materials_two_lights_and_a_camera_path() {
    let s = render::studio_scene().expect("the studio scene compiles");
    let d = &s.desc;
    // The bunny, then props.obj's torus and box.
    assert_eq!(d.meshes.len(), 3);
    assert_eq!(d.lights.len(), 2);
    assert_eq!(d.camera.len(), 9);
    assert!(
        d.materials
            .iter()
            .any(|m| matches!(m, Material::Metal { fuzz, .. } if *fuzz > 0.1 && *fuzz < 0.2)),
        "the MTL's gold (illum 3, Ns 850) is a slightly rough metal: {:?}",
        d.materials
    );
    assert_eq!((s.width, s.height, s.samples), (400, 300, 64));
    assert!(s.warnings.is_empty());
    let bunny = &d.meshes[0];
    let top = bunny.vertices.iter().map(|v| v.y).fold(f64::MIN, f64::max);
    let bottom = bunny.vertices.iter().map(|v| v.y).fold(f64::MAX, f64::min);
    assert!(
        (top - 1.0).abs() < 1e-9 && bottom.abs() < 1e-9,
        "fitted to height 1 on the floor"
    );
}

#[test]
fn an_obj_with_its_mtl_becomes_the_same_canonical_bytes_every_time() {
    let body = "[[mesh]]\nobj = \"cube.obj\"\nscale = 0.5\nposition = [1.0, 0.0, 0.0]\n\
                rotate_y = 30.0\n[[light]]\ncenter = [0.0, 3.0, 0.0]\nradius = 0.5\n\
                color = [10.0, 10.0, 10.0]\n";
    let a = compile(body).expect("compiles");
    let b = compile(body).expect("compiles");
    assert_eq!(a.canonical, b.canonical);
    assert_eq!(a.desc.meshes[0].triangles.len(), 6);
    assert_eq!(
        a.desc.materials,
        vec![Material::Diffuse {
            albedo: exo_app_render::Vec3::new(0.8, 0.1, 0.1)
        }]
    );
}

#[test]
fn a_scene_file_past_any_bound_or_with_a_mistake_is_refused_with_a_reason() {
    let light = "[[light]]\ncenter = [0.0, 3.0, 0.0]\nradius = 0.5\ncolor = [10.0, 10.0, 10.0]\n";
    let mesh = |obj: &str| format!("[[mesh]]\nobj = \"{obj}\"\nmaterial = \"m\"\n{GREY}");
    let cases: Vec<(String, &str)> = vec![
        (
            light.repeat(canonical::MAX_LIGHTS + 1),
            "17 lights, at most 16",
        ),
        (mesh("big.obj"), "triangles (all meshes), at most 500000"),
        (mesh("missing.obj"), "missing.obj: no such file"),
        (mesh("nan.obj"), "not finite"),
        (mesh("far.obj"), "beyond"),
        ("[[mesh]]\nobj = \"bare.obj\"\n".into(), "has no material"),
        (
            "[[sphere]]\ncenter = [0.0, 0.0, 0.0]\nradius = 1.0\nmaterial = \"nowhere\"\n".into(),
            "not defined",
        ),
        (
            "[[material]]\nname = \"m\"\ntype = \"plasma\"\n".into(),
            "not diffuse, metal, glass or emissive",
        ),
        (GREY.replace("0.5, 0.5, 0.5", "2.0, 0.5, 0.5"), "albedo"),
        (light.replace("radius = 0.5", "radius = -1.0"), "radius -1"),
        (
            "[[camera]]\nframe = 0\nfrom = [1.0, 1.0, 1.0]\nat = [0.0, 0.0, 0.0]\nfov = 40.0\n"
                .into(),
            "increasing frame order",
        ),
        ("surprise = 1\n".into(), "unknown field"),
    ];
    for (body, reason) in cases {
        let message = compile(&body).expect_err("refused").to_string();
        assert!(
            message.contains(reason),
            "{message:?} should say {reason:?}"
        );
    }
    let image = |settings: &str| {
        scene_file::compile(
            &scene("").replace("width = 64\nheight = 48\nsamples = 4", settings),
            &files,
        )
        .expect_err("refused")
        .to_string()
    };
    assert!(image("width = 100000\nheight = 48\nsamples = 4").contains("each side"));
    assert!(image("width = 16000\nheight = 16000\nsamples = 4").contains("pixels"));
    assert!(image("width = 64\nheight = 48\nsamples = 0").contains("samples 0"));
    let huge = scene(&"# padding\n".repeat(scene_file::MAX_SCENE_FILE_BYTES / 10 + 1));
    let message = scene_file::compile(&huge, &files)
        .expect_err("refused")
        .to_string();
    assert!(message.contains("bytes, at most"), "{message}");
}

#[test]
fn a_job_plan_covers_every_tile_of_every_frame_and_stays_within_the_unit_bound() {
    let lines = render::plan_job(100, 50, 8, 3, (40, 30), 1_000).expect("plans");
    // 3 x 2 tiles per frame, three frames.
    assert_eq!(lines.len(), 18);
    assert_eq!(lines[0], "100 50 0 0 40 30 8 0");
    assert_eq!(lines[5], "100 50 80 30 20 20 8 0");
    assert_eq!(lines[17], "100 50 80 30 20 20 8 2");
    assert!(matches!(
        render::plan_job(100, 50, 8, 200, (40, 30), 1_000),
        Err(CombineError::BadPlan(_))
    ));
    assert!(render::plan_job(100, 50, 8, 0, (40, 30), 1_000).is_err());
    assert!(render::plan_job(100, 50, 0, 1, (40, 30), 1_000).is_err());
}

/// The outputs a unit would give for `line`: its record and a tile of one grey level.
fn unit_outputs(line: &str, level: u8) -> (Vec<u8>, Vec<u8>) {
    let v: Vec<u32> = line.split(' ').map(|x| x.parse().unwrap_or(0)).collect();
    let (w, h) = (v[4], v[5]);
    let ppm = exo_app_render::ppm::encode(w, h, &vec![level; (w * h * 3) as usize]);
    (format!("{line}\n").into_bytes(), ppm)
}

#[test]
fn tiles_become_frames_and_a_frame_with_a_missing_tile_is_reported_not_written() {
    let lines = render::plan_job(4, 2, 1, 3, (2, 2), 100).expect("plans");
    let mut outputs: Vec<(Vec<u8>, Vec<u8>)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| unit_outputs(l, 10 * i as u8))
        .collect();
    // Frame 2 loses its second tile; the order units come back in does not matter.
    outputs.remove(5);
    outputs.reverse();
    let refs: Vec<(&[u8], &[u8])> = outputs
        .iter()
        .map(|(r, p)| (r.as_slice(), p.as_slice()))
        .collect();
    let frames = render::frames_from_outputs(&refs).expect("combines");
    assert_eq!((frames.width, frames.height, frames.samples), (4, 2, 1));
    assert_eq!(
        frames.complete.keys().copied().collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(
        &frames.complete[&1][..12],
        &[20, 20, 20, 20, 20, 20, 30, 30, 30, 30, 30, 30]
    );
    assert_eq!(
        frames.incomplete.get(&2),
        Some(&CombineError::Missing { missing: 4 })
    );

    let rgbs: Vec<&[u8]> = frames.complete.values().map(Vec::as_slice).collect();
    let apng = render::animation_png(4, 2, &rgbs).expect("encodes");
    let decoder = png::Decoder::new(std::io::Cursor::new(apng));
    let reader = decoder.read_info().expect("a PNG");
    let control = reader.info().animation_control.expect("animated");
    assert_eq!(control.num_frames, 2);
    assert_eq!(control.num_plays, 0, "loops forever");

    let mut other_size = refs.clone();
    let (record, ppm) = unit_outputs("8 2 0 0 2 2 1 0", 1);
    other_size.push((&record, &ppm));
    assert!(matches!(
        render::frames_from_outputs(&other_size),
        Err(CombineError::Inconsistent(_))
    ));
}
