//! Pictures: the overlay of `sempart segment --overlay` and the contact sheet.

use crate::inputs::{collect_inputs, segment_file};
use crate::model_args::{open_model, ModelArgs};
use anyhow::{anyhow, bail, Context, Result};
use sempart::Segmentation;
use std::path::{Path, PathBuf};

pub(crate) fn draw_rect(img: &mut image::RgbImage, c: &sempart::Component, colour: [u8; 3], thickness: u32) {
    let (w, h) = img.dimensions();
    for t in 0..thickness {
        let (x0, y0) = (c.x0.saturating_sub(t), c.y0.saturating_sub(t));
        let (x1, y1) = ((c.x1 + t).min(w) - 1, (c.y1 + t).min(h) - 1);
        for x in x0..=x1 {
            img.put_pixel(x, y0, image::Rgb(colour));
            img.put_pixel(x, y1, image::Rgb(colour));
        }
        for y in y0..=y1 {
            img.put_pixel(x0, y, image::Rgb(colour));
            img.put_pixel(x1, y, image::Rgb(colour));
        }
    }
}

/// The image with the background dimmed, the foreground tinted, the components' boxes in
/// yellow and the object box in red.
pub(crate) fn overlay(rgb: &image::RgbImage, seg: &Segmentation) -> image::RgbImage {
    let mut out = rgb.clone();
    for (px, &m) in out.pixels_mut().zip(&seg.fine_mask) {
        for (c, tint) in px.0.iter_mut().zip([255u16, 40, 40]) {
            *c = if m == 255 { ((*c as u16 * 3 + tint * 2) / 5) as u8 } else { (*c as u16 * 2 / 5) as u8 };
        }
    }
    let thick = (rgb.width().max(rgb.height()) / 300).max(1);
    for (i, c) in seg.components.iter().enumerate() {
        if Some(i) != seg.object && c.pixel_count >= 16 {
            draw_rect(&mut out, c, [255, 220, 0], thick);
        }
    }
    if let Some(o) = seg.object {
        draw_rect(&mut out, &seg.components[o], [255, 0, 0], thick * 2);
    }
    out
}

pub(crate) fn cmd_contact_sheet(args: &ModelArgs, out: &Path, tile_height: u32, inputs: &[PathBuf]) -> Result<()> {
    use image::imageops::{self, FilterType};
    let mut files = collect_inputs(inputs)?;
    files.truncate(12);
    if files.is_empty() || tile_height < 16 {
        bail!("need at least one image and a tile height of at least 16");
    }
    let model = open_model(args)?;
    let mut rows = Vec::new();
    for path in &files {
        let (rgb, seg) = segment_file(&model, path)?;
        let tile_w = (rgb.width() as u64 * tile_height as u64 / rgb.height() as u64).max(1) as u32;
        let gray = |data: Vec<u8>, w: u32, h: u32| -> Result<image::RgbImage> {
            let g = image::GrayImage::from_raw(w, h, data).ok_or_else(|| anyhow!("mask size mismatch"))?;
            Ok(image::DynamicImage::ImageLuma8(g).to_rgb8())
        };
        let coarse = gray(seg.coarse_mask.clone(), seg.grid_width, seg.grid_height)?;
        let fine = gray(seg.fine_mask.clone(), seg.width_px, seg.height_px)?;
        let tiles = [
            imageops::resize(&rgb, tile_w, tile_height, FilterType::Triangle),
            imageops::resize(&coarse, tile_w, tile_height, FilterType::Nearest),
            imageops::resize(&fine, tile_w, tile_height, FilterType::Triangle),
            imageops::resize(&overlay(&rgb, &seg), tile_w, tile_height, FilterType::Triangle),
        ];
        rows.push(tiles);
    }
    let gap = 4u32;
    let width = rows.iter().map(|r| r.iter().map(|t| t.width() + gap).sum::<u32>()).max().unwrap_or(0) + gap;
    let height = rows.len() as u32 * (tile_height + gap) + gap;
    let mut sheet = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (i, row) in rows.iter().enumerate() {
        let mut x = gap;
        for tile in row {
            imageops::replace(&mut sheet, tile, x as i64, (gap + i as u32 * (tile_height + gap)) as i64);
            x += tile.width() + gap;
        }
    }
    sheet.save(out).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} ({} images: image | coarse | fine | boxes)", out.display(), rows.len());
    Ok(())
}
