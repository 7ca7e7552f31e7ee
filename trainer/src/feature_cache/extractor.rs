//! The frozen backbone run on images: the SDK's preprocessing, then the ViT's patch tokens (and
//! keys), batched.

use super::Features;
use crate::backbone::Backbone;
use crate::data::{self, RgbImage};
use anyhow::{ensure, Result};
use sempart::preprocess::InputSpec;
use tch::Tensor;

/// Runs the frozen backbone on images.
#[derive(Debug)]
pub struct Extractor<'a> {
    backbone: &'a Backbone,
    spec: InputSpec,
    with_keys: bool,
}

impl<'a> Extractor<'a> {
    /// An extractor for inputs of `spec`; `with_keys` also returns the last block's keys.
    pub fn new(backbone: &'a Backbone, spec: InputSpec, with_keys: bool) -> Result<Extractor<'a>> {
        let p = backbone.config().patch_size as usize;
        ensure!(
            spec.width_px.is_multiple_of(p) && spec.height_px.is_multiple_of(p),
            "input size {}x{} is not a multiple of the backbone's patch size {p}",
            spec.width_px,
            spec.height_px
        );
        Ok(Extractor { backbone, spec, with_keys })
    }

    /// The input specification.
    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// The backbone.
    pub fn backbone(&self) -> &Backbone {
        self.backbone
    }

    /// Whether keys are extracted.
    pub fn with_keys(&self) -> bool {
        self.with_keys
    }

    /// Token grid `(h, w)`.
    pub fn grid(&self) -> (i64, i64) {
        let p = self.backbone.config().patch_size;
        (self.spec.height_px as i64 / p, self.spec.width_px as i64 / p)
    }

    /// The model input `[3, H, W]` of an image (the SDK's preprocessing), mirrored with `hflip`.
    pub fn input_tensor(&self, img: &RgbImage, hflip: bool) -> Result<Tensor> {
        let v = data::preprocess(img, &self.spec, hflip)?;
        Ok(Tensor::from_slice(&v).reshape([3, self.spec.height_px as i64, self.spec.width_px as i64]))
    }

    /// Runs the backbone (no gradient) on a normalised batch `[N, 3, H, W]`: patch tokens
    /// `[N, T, C]` and, when configured, patch keys `[N, T, C]`.
    pub fn run(&self, inputs: &Tensor) -> (Tensor, Option<Tensor>) {
        tch::no_grad(|| {
            let out = self.backbone.vit.forward(&inputs.to_device(self.backbone.vs.device()));
            let (h, w) = out.grid;
            let tokens = out.tokens.narrow(1, 1, h * w).to_device(tch::Device::Cpu).contiguous();
            let keys = self.with_keys.then(|| out.keys.narrow(1, 1, h * w).to_device(tch::Device::Cpu).contiguous());
            (tokens, keys)
        })
    }

    /// Features of already-prepared inputs `[3, H, W]` each, run in batches of `chunk`.
    pub fn compute_inputs(&self, inputs: Vec<Tensor>, chunk: usize) -> Vec<Features> {
        let mut out = Vec::with_capacity(inputs.len());
        for group in inputs.chunks(chunk.max(1)) {
            let batch = Tensor::stack(group, 0);
            let (tokens, keys) = self.run(&batch);
            for (i, image) in group.iter().enumerate() {
                let i = i as i64;
                out.push(Features {
                    tokens: tokens.get(i),
                    keys: keys.as_ref().map(|k| k.get(i)),
                    image: image.shallow_clone(),
                });
            }
        }
        out
    }
}
