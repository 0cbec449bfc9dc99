//! Requester side of `render`: scene files compiled to the canonical scene
//! ([`scene_file`]), jobs planned as frames × tiles ([`plan_job`]), and the units' tiles put
//! back together into frames and an animated preview ([`frames_from_outputs`],
//! [`animation_png`]).

use crate::CombineError;
use exo_app_render::{TileParams, ppm};
use std::collections::BTreeMap;

pub mod scene_file;

/// The input every render unit reads.
pub const SCENE_INPUT: &str = "scene.bin";
/// The unit's image and the record of which tile of which frame it is.
pub const TILE_OUTPUT: &str = "tile.ppm";
pub const TILE_RECORD: &str = "tile.txt";
/// Frame rate of the animated preview.
pub const PREVIEW_FPS: u16 = 24;

/// A tile of a frame, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Largest frame this helper assembles (pixels), bounding the requester's memory.
pub const MAX_PIXELS: u64 = 64 << 20;

/// The shipped studio scene ([`crate::STUDIO_SCENE`]), compiled from its embedded files.
pub fn studio_scene() -> Result<scene_file::CompiledScene, scene_file::SceneError> {
    scene_file::compile(crate::STUDIO_SCENE, &|path| {
        match path.to_str() {
            Some("bunny.obj") => Ok(crate::BUNNY_OBJ),
            Some("props.obj") => Ok(crate::PROPS_OBJ),
            Some("props.mtl") => Ok(crate::PROPS_MTL),
            _ => Err(format!("{} is not shipped", path.display())),
        }
        .map(|text| text.as_bytes().to_vec())
    })
}

/// Splits a `width x height` frame into tiles of at most `tile_w x tile_h`, row by row.
pub fn plan_tiles(
    width: u32,
    height: u32,
    tile_w: u32,
    tile_h: u32,
) -> Result<Vec<Tile>, CombineError> {
    if width == 0 || height == 0 || tile_w == 0 || tile_h == 0 {
        return Err(CombineError::BadPlan(
            "frame and tile sizes must be positive".into(),
        ));
    }
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(CombineError::BadPlan(format!(
            "{width}x{height} is too large"
        )));
    }
    let mut tiles = Vec::new();
    for y in (0..height).step_by(tile_h as usize) {
        for x in (0..width).step_by(tile_w as usize) {
            tiles.push(Tile {
                x,
                y,
                w: tile_w.min(width - x),
                h: tile_h.min(height - y),
            });
        }
    }
    Ok(tiles)
}

/// The `render` arguments of one tile.
pub fn tile_args(width: u32, height: u32, tile: &Tile, samples: u32, frame: u32) -> Vec<String> {
    tile_params(width, height, tile, samples, frame)
        .to_string()
        .split(' ')
        .map(String::from)
        .collect()
}

fn tile_params(width: u32, height: u32, tile: &Tile, samples: u32, frame: u32) -> TileParams {
    TileParams {
        width,
        height,
        tile_x: tile.x,
        tile_y: tile.y,
        tile_w: tile.w,
        tile_h: tile.h,
        samples,
        frame,
    }
}

/// The argument lines of an animation job: `frames` frames of `width x height` at `samples`
/// per pixel, each split into tiles of at most `tile_w x tile_h`, frame by frame. At most
/// `max_units` units.
pub fn plan_job(
    width: u32,
    height: u32,
    samples: u32,
    frames: u32,
    tile: (u32, u32),
    max_units: u32,
) -> Result<Vec<String>, CombineError> {
    let tiles = plan_tiles(width, height, tile.0, tile.1)?;
    let units = tiles.len() as u64 * frames as u64;
    if frames == 0 || units > max_units as u64 {
        return Err(CombineError::BadPlan(format!(
            "{frames} frames of {} tiles make {units} units; a job has 1 to {max_units} \
             (use fewer frames or larger tiles)",
            tiles.len()
        )));
    }
    let lines = (0..frames)
        .flat_map(|frame| {
            tiles
                .iter()
                .map(move |t| tile_params(width, height, t, samples, frame))
        })
        .map(|p| {
            p.validate().map_err(CombineError::BadPlan)?;
            Ok(p.to_string())
        })
        .collect::<Result<Vec<_>, CombineError>>()?;
    Ok(lines)
}

/// Whether a unit's outputs are a render tile's.
pub fn recognises(record: &[u8]) -> bool {
    parse_record(record).is_ok()
}

fn parse_record(record: &[u8]) -> Result<TileParams, String> {
    let text = std::str::from_utf8(record).map_err(|_| "tile.txt is not UTF-8".to_string())?;
    let args: Vec<String> = text.split_whitespace().map(String::from).collect();
    TileParams::from_args(&args)
}

/// The frames a job's tiles make up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Frames {
    pub width: u32,
    pub height: u32,
    pub samples: u32,
    /// Complete frames, by number, as row-major RGB8.
    pub complete: BTreeMap<u32, Vec<u8>>,
    /// Frames that some tiles are missing from (or that do not fit together), with why.
    pub incomplete: BTreeMap<u32, CombineError>,
}

/// Groups the units' (`tile.txt`, `tile.ppm`) outputs by frame and assembles each frame. Every
/// tile must belong to one image size and sample count; a frame whose tiles do not cover it
/// exactly once is reported in [`Frames::incomplete`], not lost among the others.
pub fn frames_from_outputs(outputs: &[(&[u8], &[u8])]) -> Result<Frames, CombineError> {
    let mut by_frame: BTreeMap<u32, Vec<(Tile, &[u8])>> = BTreeMap::new();
    let mut image: Option<(u32, u32, u32)> = None;
    for (unit, (record, ppm)) in outputs.iter().enumerate() {
        let p = parse_record(record).map_err(|reason| CombineError::BadOutput { unit, reason })?;
        let this = (p.width, p.height, p.samples);
        if *image.get_or_insert(this) != this {
            return Err(CombineError::Inconsistent(format!(
                "unit {unit} renders {}x{} at {} samples, another unit {:?}",
                p.width, p.height, p.samples, image
            )));
        }
        let tile = Tile {
            x: p.tile_x,
            y: p.tile_y,
            w: p.tile_w,
            h: p.tile_h,
        };
        by_frame.entry(p.frame).or_default().push((tile, ppm));
    }
    let Some((width, height, samples)) = image else {
        return Err(CombineError::BadPlan("no tiles".into()));
    };
    let mut frames = Frames {
        width,
        height,
        samples,
        ..Frames::default()
    };
    for (frame, tiles) in by_frame {
        match assemble_rgb(width, height, &tiles) {
            Ok(rgb) => {
                frames.complete.insert(frame, rgb);
            }
            Err(e) => {
                frames.incomplete.insert(frame, e);
            }
        }
    }
    Ok(frames)
}

/// An animated PNG (APNG) of `frames`, each row-major RGB8 of `width x height`, at
/// [`PREVIEW_FPS`], looping forever. Viewers without APNG support show the first frame.
pub fn animation_png(width: u32, height: u32, frames: &[&[u8]]) -> Result<Vec<u8>, CombineError> {
    let png_error = |e: png::EncodingError| CombineError::Png(e.to_string());
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_animated(frames.len() as u32, 0)
            .map_err(png_error)?;
        enc.set_frame_delay(1, PREVIEW_FPS).map_err(png_error)?;
        let mut w = enc.write_header().map_err(png_error)?;
        for rgb in frames {
            w.write_image_data(rgb).map_err(png_error)?;
        }
        w.finish().map_err(png_error)?;
    }
    Ok(out)
}

/// Places the tiles' `tile.ppm` outputs into one row-major RGB8 frame. Every pixel must be
/// covered exactly once, and each PPM must have its tile's size.
pub fn assemble_rgb(
    width: u32,
    height: u32,
    tiles: &[(Tile, &[u8])],
) -> Result<Vec<u8>, CombineError> {
    if width == 0 || height == 0 || width as u64 * height as u64 > MAX_PIXELS {
        return Err(CombineError::BadPlan(format!(
            "bad frame size {width}x{height}"
        )));
    }
    let (wu, hu) = (width as usize, height as usize);
    let mut rgb = vec![0u8; wu * hu * 3];
    let mut covered = vec![false; wu * hu];
    for (unit, (tile, bytes)) in tiles.iter().enumerate() {
        let fits = tile.w > 0
            && tile.h > 0
            && tile.x.checked_add(tile.w).is_some_and(|e| e <= width)
            && tile.y.checked_add(tile.h).is_some_and(|e| e <= height);
        if !fits {
            return Err(CombineError::TileOutOfFrame {
                unit,
                x: tile.x,
                y: tile.y,
                w: tile.w,
                h: tile.h,
                width,
                height,
            });
        }
        let (w, h, px) =
            ppm::decode(bytes).map_err(|reason| CombineError::BadOutput { unit, reason })?;
        if (w, h) != (tile.w, tile.h) {
            return Err(CombineError::BadOutput {
                unit,
                reason: format!("PPM is {w}x{h}, tile is {}x{}", tile.w, tile.h),
            });
        }
        for row in 0..tile.h as usize {
            let y = tile.y as usize + row;
            for col in 0..tile.w as usize {
                let x = tile.x as usize + col;
                let cell = &mut covered[y * wu + x];
                if *cell {
                    return Err(CombineError::Overlap {
                        x: x as u32,
                        y: y as u32,
                    });
                }
                *cell = true;
            }
            let src = &px[row * tile.w as usize * 3..(row + 1) * tile.w as usize * 3];
            let dst = (y * wu + tile.x as usize) * 3;
            rgb[dst..dst + src.len()].copy_from_slice(src);
        }
    }
    let missing = covered.iter().filter(|c| !**c).count() as u64;
    if missing > 0 {
        return Err(CombineError::Missing { missing });
    }
    Ok(rgb)
}

/// [`assemble_rgb`], encoded as an 8-bit RGB PNG.
pub fn assemble_png(
    width: u32,
    height: u32,
    tiles: &[(Tile, &[u8])],
) -> Result<Vec<u8>, CombineError> {
    let rgb = assemble_rgb(width, height, tiles)?;
    encode_png(width, height, &rgb)
}

/// Encodes row-major RGB8 pixels as PNG.
pub fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, CombineError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| CombineError::Png(e.to_string()))?;
        w.write_image_data(rgb)
            .map_err(|e| CombineError::Png(e.to_string()))?;
        w.finish().map_err(|e| CombineError::Png(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plan_and_assemble() {
        let tiles = plan_tiles(5, 3, 2, 2).unwrap();
        assert_eq!(tiles.len(), 6);
        assert_eq!(
            tiles[2],
            Tile {
                x: 4,
                y: 0,
                w: 1,
                h: 2
            }
        );
        let ppms: Vec<Vec<u8>> = tiles
            .iter()
            .map(|t| ppm::encode(t.w, t.h, &vec![t.x as u8; (t.w * t.h * 3) as usize]))
            .collect();
        let parts: Vec<(Tile, &[u8])> = tiles
            .iter()
            .copied()
            .zip(ppms.iter().map(Vec::as_slice))
            .collect();
        let rgb = assemble_rgb(5, 3, &parts).unwrap();
        assert_eq!(&rgb[..15], &[0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 4, 4, 4]);
        assert!(assemble_png(5, 3, &parts).unwrap().starts_with(b"\x89PNG"));
        assert_eq!(
            assemble_rgb(5, 3, &parts[..5]),
            Err(CombineError::Missing { missing: 1 })
        );
        let mut twice = parts.clone();
        twice.push(parts[0]);
        assert_eq!(
            assemble_rgb(5, 3, &twice),
            Err(CombineError::Overlap { x: 0, y: 0 })
        );
        let bad = [(
            Tile {
                x: 4,
                y: 0,
                w: 2,
                h: 1,
            },
            parts[0].1,
        )];
        assert!(matches!(
            assemble_rgb(5, 3, &bad),
            Err(CombineError::TileOutOfFrame { .. })
        ));
        assert!(matches!(
            assemble_rgb(5, 3, &[(tiles[0], &b"junk"[..])]),
            Err(CombineError::BadOutput { .. })
        ));
    }
}
