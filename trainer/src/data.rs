//! Image folders: listing, decoding to RGB8 (any size, colour type and bit depth the `image`
//! crate reads), content hashing, and the SDK's own preprocessing.
//!
//! Unreadable files are reported with one `eprintln!` line and skipped; they never stop a run.
//! Every listing is sorted by path, so the order is deterministic.

use anyhow::{Context, Result};
use sempart::preprocess::{frame_to_input, InputSpec};
use sempart::{Frame, GuidedFilter, PixelFormat};
use std::path::{Path, PathBuf};

/// File extensions (lowercase) taken as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"];

/// Whether `path` has one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The image files directly inside `dir` (not recursive), sorted by path.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        if path.is_file() && is_image_path(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The image files of several folders, each folder's files sorted, folders in the given order.
pub fn list_images_in(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for d in dirs {
        out.extend(list_images(d)?);
    }
    Ok(out)
}

/// A decoded image: interleaved RGB8, rows packed (`stride = 3 * width`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `3 * width * height` bytes.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// The image as an SDK frame.
    pub fn frame(&self) -> Result<Frame<'_>> {
        Frame::new(&self.data, self.width, self.height, 3 * self.width as usize, PixelFormat::Rgb8)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The grayscale copy: ITU-R BT.601 luma `(19595 R + 38470 G + 7471 B + 2^15) >> 16` in
    /// all three channels (the weights sum to `2^16`, so a gray pixel keeps its value).
    pub fn gray(&self) -> RgbImage {
        let mut data = Vec::with_capacity(self.data.len());
        for px in self.data.chunks_exact(3) {
            let (r, g, b) = (px[0] as u32, px[1] as u32, px[2] as u32);
            let y = ((19595 * r + 38470 * g + 7471 * b + (1 << 15)) >> 16) as u8;
            data.extend_from_slice(&[y, y, y]);
        }
        RgbImage { width: self.width, height: self.height, data }
    }

    /// The mirror image (left-right).
    pub fn hflip(&self) -> RgbImage {
        let w = self.width as usize;
        let mut data = Vec::with_capacity(self.data.len());
        for row in self.data.chunks_exact(3 * w) {
            for px in row.chunks_exact(3).rev() {
                data.extend_from_slice(px);
            }
        }
        RgbImage { width: self.width, height: self.height, data }
    }
}

/// Decodes image bytes with the SDK's decoder ([`sempart::files::decode::decode_rgb`]: format
/// guessed from the content, grayscale replicated, alpha dropped, 16-bit and float samples scaled
/// to 8 bits, an empty image refused).
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage> {
    let rgb = sempart::files::decode::decode_rgb(bytes)?;
    Ok(RgbImage { width: rgb.width(), height: rgb.height(), data: rgb.into_raw() })
}

/// Reads and decodes an image file with the SDK's decoder ([`sempart::files::decode::load_rgb`]).
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let rgb = sempart::files::decode::load_rgb(path)?;
    Ok(RgbImage { width: rgb.width(), height: rgb.height(), data: rgb.into_raw() })
}

/// Lowercase hex SHA-256 of bytes: the SDK's ([`sempart::model_format::sha256_hex`]).
pub fn sha256_hex(bytes: &[u8]) -> String {
    sempart::model_format::sha256_hex(&[bytes])
}

/// An image file, or its grayscale copy, and the SHA-256 that names its content (the feature
/// cache's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The file.
    pub path: PathBuf,
    /// Lowercase hex SHA-256 of the file's bytes; for a grayscale copy, of
    /// `"gray-bt601:" + that hash`.
    pub content_hash: String,
    /// The grayscale copy of the file's image ([`RgbImage::gray`]).
    pub gray: bool,
}

impl ImageRecord {
    /// Hashes a file. Errors when it cannot be read.
    pub fn from_path(path: &Path) -> Result<ImageRecord> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(ImageRecord { path: path.to_path_buf(), content_hash: sha256_hex(&bytes), gray: false })
    }

    /// The record of this file's grayscale copy.
    pub fn gray_copy(&self) -> ImageRecord {
        let hash = if self.gray {
            self.content_hash.clone()
        } else {
            sha256_hex(format!("gray-bt601:{}", self.content_hash).as_bytes())
        };
        ImageRecord { path: self.path.clone(), content_hash: hash, gray: true }
    }

    /// Reads and decodes the image (the grayscale copy for a gray record).
    pub fn load(&self) -> Result<RgbImage> {
        load_rgb(&self.path).map(|img| if self.gray { img.gray() } else { img })
    }

    /// [`ImageRecord::load`] for training, stricter: also refuses a JPEG cut short (no
    /// end-of-image marker: the decoder would fill the missing rows with gray, and the run would
    /// learn from them) and an image with a side under [`MIN_TRAINING_SIDE_PX`] (a thumbnail or
    /// an icon, blown up to the model input, teaches nothing but its blur).
    pub fn load_for_training(&self) -> Result<RgbImage> {
        let bytes = std::fs::read(&self.path).with_context(|| format!("reading {}", self.path.display()))?;
        anyhow::ensure!(
            !is_truncated_jpeg(&bytes),
            "{} is a JPEG cut short (no end-of-image marker)",
            self.path.display()
        );
        let img = decode_rgb(&bytes).with_context(|| format!("cannot decode {}", self.path.display()))?;
        let img = if self.gray { img.gray() } else { img };
        anyhow::ensure!(
            img.width.min(img.height) >= MIN_TRAINING_SIDE_PX,
            "{} is {}x{} pixels; training photos need at least {MIN_TRAINING_SIDE_PX} on each side",
            self.path.display(),
            img.width,
            img.height
        );
        Ok(img)
    }
}

/// Whether `bytes` start like a JPEG (SOI marker) but hold no end-of-image marker (`FF D9`)
/// anywhere. The coded data never holds `FF D9` (a coded `FF` is followed by `00`), so the
/// marker is found wherever it sits: before trailing data such as a phone's embedded video, too.
/// A file cut short that kept an embedded thumbnail's marker is not caught.
pub fn is_truncated_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8]) && !bytes[2..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// The shortest side a training photo may have.
pub const MIN_TRAINING_SIDE_PX: u32 = 32;

/// Reports every record whose content repeats an earlier one's (one line each on stderr) and,
/// with `drop`, leaves it out (the first file of each content is kept): a photo copied twice into
/// the training folders would otherwise count twice.
pub fn check_duplicates(records: Vec<ImageRecord>, drop: bool) -> Vec<ImageRecord> {
    use std::collections::hash_map::{Entry, HashMap};
    let mut first: HashMap<(String, bool), PathBuf> = HashMap::new();
    let what = if drop {
        "skipping it (data.drop_duplicates)"
    } else {
        "both are used (data.drop_duplicates = true uses it once)"
    };
    records
        .into_iter()
        .filter(|r| match first.entry((r.content_hash.clone(), r.gray)) {
            Entry::Occupied(p) => {
                eprintln!("{} has the same content as {}: {what}", r.path.display(), p.get().display());
                !drop
            }
            Entry::Vacant(v) => {
                v.insert(r.path.clone());
                true
            }
        })
        .collect()
}

/// Hashes every file, reporting (one line on stderr) and skipping those that cannot be read.
/// Order is kept.
pub fn records_for(paths: &[PathBuf]) -> Vec<ImageRecord> {
    paths
        .iter()
        .filter_map(|p| match ImageRecord::from_path(p) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("skipping unreadable image: {e:#}");
                None
            }
        })
        .collect()
}

/// The model input for an image, exactly as the SDK prepares it
/// ([`sempart::preprocess::frame_to_input`]): planar normalised RGB, `3 * H * W` floats.
/// With `hflip` the image is mirrored first.
pub fn preprocess(img: &RgbImage, spec: &InputSpec, hflip: bool) -> Result<Vec<f32>> {
    let flipped;
    let img = if hflip {
        flipped = img.hflip();
        &flipped
    } else {
        img
    };
    let mut out = vec![0f32; 3 * spec.width_px * spec.height_px];
    frame_to_input(&img.frame()?, spec, &mut out);
    Ok(out)
}

/// An evaluation image with its ground-truth mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledImage {
    /// The image.
    pub image: ImageRecord,
    /// The mask file (0..255, foreground > 127, 128 ignored).
    pub mask: PathBuf,
}

/// The guide of the refinement `refine` ([`sempart::refine`]) for a labelled example: its image
/// at `w x h` (its mask's size), resized with the SDK's antialiased resize when the sizes
/// differ; `None` when the refinement is off (nothing is read).
pub fn refinement_guide(l: &LabelledImage, w: usize, h: usize, refine: &GuidedFilter) -> Result<Option<RgbImage>> {
    if refine.is_off() {
        return Ok(None);
    }
    let img = l.image.load()?;
    if (img.width as usize, img.height as usize) == (w, h) {
        return Ok(Some(img));
    }
    let frame = img.frame().with_context(|| l.image.path.display().to_string())?;
    let data =
        sempart::preprocess::resize_rgb(&frame, w, h).iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect();
    Ok(Some(RgbImage { width: w as u32, height: h as u32, data }))
}

/// A mask image: pixels (row-major), width, height.
pub type Mask = (Vec<u8>, usize, usize);

/// A labelled example's mask and the refinement guide at the mask's size
/// ([`refinement_guide`]), as both evaluations read them; `None`, reported on stderr, when
/// either cannot be read (the example is then skipped).
pub fn mask_and_guide(l: &LabelledImage, refine: &GuidedFilter) -> Option<(Mask, Option<RgbImage>)> {
    let (gt, w, h) = match sempart::metrics::load_mask_image(&l.mask) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipping {}: {e}", l.mask.display());
            return None;
        }
    };
    match refinement_guide(l, w, h, refine) {
        Ok(g) => Some(((gt, w, h), g)),
        Err(e) => {
            eprintln!("skipping {}: {e:#}", l.image.path.display());
            None
        }
    }
}

/// A labelled folder: `dir/images/<stem>.<ext>` paired with `dir/masks/<stem>.png` (or any
/// image extension). Images without a mask are reported and skipped; so are unreadable files.
/// Sorted by image path; at most `limit` pairs (the first ones) when given.
pub fn list_labelled(dir: &Path, limit: Option<usize>) -> Result<Vec<LabelledImage>> {
    let images = list_images(&dir.join("images"))?;
    let masks = list_images(&dir.join("masks"))?;
    let mut by_stem = std::collections::BTreeMap::new();
    for m in masks {
        if let Some(stem) = m.file_stem().and_then(|s| s.to_str()) {
            let png = m.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
            // Prefer a PNG mask when several share a stem.
            if png || !by_stem.contains_key(stem) {
                by_stem.insert(stem.to_string(), m.clone());
            }
        }
    }
    let mut out = Vec::new();
    for img in images {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let stem = img.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let Some(mask) = by_stem.get(&stem) else {
            eprintln!("skipping {}: no mask {stem}.* in {}", img.display(), dir.join("masks").display());
            continue;
        };
        match ImageRecord::from_path(&img) {
            Ok(image) => out.push(LabelledImage { image, mask: mask.clone() }),
            Err(e) => eprintln!("skipping unreadable image: {e:#}"),
        }
    }
    Ok(out)
}

pub use sempart::files::atomic::{tmp_path_for, write_atomic};
