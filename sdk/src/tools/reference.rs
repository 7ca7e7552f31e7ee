//! A model's reference outputs: one RGB frame at the model's input size and the raw `fine`
//! and `coarse` outputs ONNX Runtime gave for it where the model was made. After a model is
//! composed, running it on the frame and comparing tells a numeric problem (another ONNX
//! Runtime build, a kernel that misbehaves on this processor) from a byte problem (which the
//! content digest catches).
//!
//! On disk a reference is a folder of three ONNX `TensorProto` files, the layout of ONNX's own
//! test data: `frame.pb` (uint8 `[H, W, 3]`), `fine.pb` (float `[1, 1, H, W]`) and
//! `coarse.pb` (float `[1, 1, H / patch, W / patch]`).

use crate::error::{Error, Result, Status};
use crate::model::onnx::builder::f32_tensor;
use crate::model::onnx::proto::tensor_bytes;
use crate::model::onnx::proto::{data_type, TensorProto};
use crate::pipeline::frame::{Frame, PixelFormat};
use crate::pipeline::segmenter::Segmenter;
use prost::Message;
use std::path::Path;

/// Largest difference allowed between a run of the float32 model and the reference, on either
/// output.
pub const TOLERANCE: f32 = 1e-4;
/// Largest *mean* difference allowed between a run of the int8 model ([`crate::tools::quantize`]) and
/// the float32 reference, on either output: quantisation moves single probabilities near the
/// boundary by up to about 0.3, so the int8 check bounds the mean, which tells a working int8
/// model (0.007 on the development machine) from a broken one (a wrong scale or zero point
/// gives 0.1 and more).
pub const INT8_MEAN_TOLERANCE: f32 = 0.03;

/// A frame and the outputs it gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Frame width (the model's input width).
    pub width_px: usize,
    /// Frame height (the model's input height).
    pub height_px: usize,
    /// RGB8 pixels, row-major, no padding.
    pub frame: Vec<u8>,
    /// Raw `fine` output.
    pub fine: Vec<f32>,
    /// Raw `coarse` output.
    pub coarse: Vec<f32>,
    /// Coarse grid `(width, height)`.
    pub grid: (usize, usize),
}

/// How far a run is from the reference.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Deviation {
    /// Largest absolute difference on `fine`.
    pub fine: f32,
    /// Largest absolute difference on `coarse`.
    pub coarse: f32,
    /// Mean absolute difference on `fine`.
    pub fine_mean: f32,
    /// Mean absolute difference on `coarse`.
    pub coarse_mean: f32,
}

fn mean_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    let sum: f64 = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum();
    (sum / a.len().max(1) as f64) as f32
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) })
}

impl Reference {
    /// Runs `model` on an RGB8 frame at its input size and keeps the outputs.
    pub fn record(model: &Segmenter, frame: Vec<u8>) -> Result<Reference> {
        let info = model.info();
        let (w, h) = (info.input_width_px, info.input_height_px);
        let f = Frame::new(&frame, w as u32, h as u32, w * 3, PixelFormat::Rgb8)?;
        let (fine, coarse) = model.raw_outputs(&f)?;
        Ok(Reference { width_px: w, height_px: h, frame, fine, coarse, grid: (info.grid_width, info.grid_height) })
    }

    /// Runs `model` on the frame and compares. A model of another input size, or a difference
    /// above [`TOLERANCE`], gives [`Status::InferenceFailed`] with a message that starts with
    /// "numeric mismatch".
    pub fn check(&self, model: &Segmenter) -> Result<Deviation> {
        let info = model.info();
        let int8 = info.precision == crate::model::format::Precision::Int8;
        if (info.input_width_px, info.input_height_px) != (self.width_px, self.height_px) {
            return Err(Error::new(
                Status::InferenceFailed,
                format!(
                    "numeric mismatch: the reference frame is {}x{}, the model's input {}x{}",
                    self.width_px, self.height_px, info.input_width_px, info.input_height_px
                ),
            ));
        }
        let (w, h) = (self.width_px, self.height_px);
        let f = Frame::new(&self.frame, w as u32, h as u32, w * 3, PixelFormat::Rgb8)?;
        let (fine, coarse) = model.raw_outputs(&f)?;
        if fine.len() != self.fine.len() || coarse.len() != self.coarse.len() {
            return Err(Error::new(Status::InferenceFailed, "numeric mismatch: the outputs have other sizes"));
        }
        let d = Deviation {
            fine: max_abs_diff(&fine, &self.fine),
            coarse: max_abs_diff(&coarse, &self.coarse),
            fine_mean: mean_abs_diff(&fine, &self.fine),
            coarse_mean: mean_abs_diff(&coarse, &self.coarse),
        };
        let (what, fine_d, coarse_d, tolerance) = match int8 {
            false => ("up to", d.fine, d.coarse, TOLERANCE),
            true => ("on average", d.fine_mean, d.coarse_mean, INT8_MEAN_TOLERANCE),
        };
        // Written so that NaN fails.
        if !(fine_d <= tolerance && coarse_d <= tolerance) {
            return Err(Error::new(
                Status::InferenceFailed,
                format!(
                    "numeric mismatch: on the reference frame the {} model's outputs differ from the reference \
                     {what} {fine_d:.3e} (fine) and {coarse_d:.3e} (coarse), more than {tolerance:e}",
                    info.precision.name()
                ),
            ));
        }
        Ok(d)
    }

    /// Writes the three files into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::new(Status::Io, format!("writing the reference in {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let (w, h) = (self.width_px as i64, self.height_px as i64);
        let (gw, gh) = (self.grid.0 as i64, self.grid.1 as i64);
        let frame = TensorProto {
            name: "frame".into(),
            dims: vec![h, w, 3],
            data_type: data_type::UINT8,
            raw_data: self.frame.clone(),
            ..Default::default()
        };
        let files = [
            ("frame.pb", frame),
            ("fine.pb", f32_tensor("fine", &[1, 1, h, w], &self.fine)),
            ("coarse.pb", f32_tensor("coarse", &[1, 1, gh, gw], &self.coarse)),
        ];
        for (name, t) in files {
            std::fs::write(dir.join(name), t.encode_to_vec()).map_err(io)?;
        }
        Ok(())
    }

    /// Reads a reference folder.
    pub fn read(dir: &Path) -> Result<Reference> {
        let load = |name: &str| -> Result<TensorProto> {
            let path = dir.join(name);
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::new(Status::Io, format!("reading reference {}: {e}", path.display())))?;
            TensorProto::decode(bytes.as_slice())
                .map_err(|e| Error::new(Status::Io, format!("{} is not a TensorProto: {e}", path.display())))
        };
        let bad = |what: &str| Error::new(Status::Io, format!("reference in {}: {what}", dir.display()));
        let frame = load("frame.pb")?;
        let fine = load("fine.pb")?;
        let coarse = load("coarse.pb")?;
        let floats = |t: &TensorProto| -> Result<Vec<f32>> {
            let b = tensor_bytes(t);
            if t.data_type != data_type::FLOAT || !b.len().is_multiple_of(4) {
                return Err(bad(&format!("{} is not a float tensor", t.name)));
            }
            Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let (h, w) = match frame.dims.as_slice() {
            [h, w, 3] if *h > 0 && *w > 0 && frame.data_type == data_type::UINT8 => (*h as usize, *w as usize),
            _ => return Err(bad("frame.pb is not a uint8 [H, W, 3] tensor")),
        };
        if frame.raw_data.len() != h * w * 3 {
            return Err(bad("frame.pb has the wrong number of bytes"));
        }
        let grid = match coarse.dims.as_slice() {
            [1, 1, gh, gw] => (*gw as usize, *gh as usize),
            _ => return Err(bad("coarse.pb is not [1, 1, h, w]")),
        };
        let r = Reference {
            width_px: w,
            height_px: h,
            frame: frame.raw_data.clone(),
            fine: floats(&fine)?,
            coarse: floats(&coarse)?,
            grid,
        };
        if r.fine.len() != w * h || r.coarse.len() != grid.0 * grid.1 {
            return Err(bad("the outputs do not match the frame's size"));
        }
        Ok(r)
    }
}
