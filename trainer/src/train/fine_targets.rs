//! Edge-aware self-training targets of the fine branch (not in the paper; FOUND and SelfMask
//! train on bilateral-solver-refined masks): each image's coarse map, brought to the input
//! size by the SDK's guided filter ([`sempart::refine::refine_to_frame`]) with the image
//! itself as the guide and binarised at the SDK's threshold.

use crate::config::InputConfig;
use anyhow::{ensure, Result};
use sempart::postprocess::THRESHOLD;
use sempart::refine::refine_to_frame;
use sempart::{Frame, GuidedFilter, PixelFormat};
use tch::{Kind, Tensor};

/// The targets `[N, 1, H, W]` (0/1, `f32`) of a batch: `coarse` `[N, 1, h, w]` holds the
/// (raw, partition-A) coarse probabilities, `image` `[N, 3, H, W]` the normalised input; the
/// filter's radius is in input pixels. The guided filter is linear in the map, so refining
/// the raw map and orienting afterwards give the same mask: the targets stay in the raw
/// orientation the fine output is trained in.
pub(super) fn refined_coarse_targets(
    input: &InputConfig,
    coarse: &Tensor,
    image: &Tensor,
    filter: &GuidedFilter,
) -> Result<Tensor> {
    let (n, gh, gw) = (coarse.size()[0], coarse.size()[2], coarse.size()[3]);
    let (ih, iw) = (image.size()[2], image.size()[3]);
    ensure!(image.size()[0] == n, "{} coarse maps for {} images", n, image.size()[0]);
    let bytes = rgb_bytes(input, image)?;
    let plane = (ih * iw) as usize;
    let mut out = Vec::with_capacity(n as usize * plane);
    for i in 0..n {
        let p = Vec::<f32>::try_from(coarse.get(i).reshape([-1]).to_kind(Kind::Float))?;
        let rgb = &bytes[i as usize * 3 * plane..(i as usize + 1) * 3 * plane];
        let frame = Frame::new(rgb, iw as u32, ih as u32, 3 * iw as usize, PixelFormat::Rgb8)?;
        let q = refine_to_frame(&frame, None, &p, gw as usize, gh as usize, (iw as usize, ih as usize), filter);
        out.extend(q.into_iter().map(|v| if v > THRESHOLD { 1f32 } else { 0.0 }));
    }
    Ok(Tensor::from_slice(&out).reshape([n, 1, ih, iw]).to_device(coarse.device()))
}

/// The normalised images `[N, 3, H, W]` as interleaved RGB bytes, `N x H x W x 3`.
fn rgb_bytes(input: &InputConfig, image: &Tensor) -> Result<Vec<u8>> {
    let mean = Tensor::from_slice(&input.mean).to_kind(Kind::Float).reshape([1, 3, 1, 1]);
    let std = Tensor::from_slice(&input.std).to_kind(Kind::Float).reshape([1, 3, 1, 1]);
    let rgb = tch::no_grad(|| {
        ((image.to_device(tch::Device::Cpu).to_kind(Kind::Float) * std + mean) * 255.0)
            .round()
            .clamp(0.0, 255.0)
            .permute([0, 2, 3, 1])
            .contiguous()
            .to_kind(Kind::Uint8)
    });
    Ok(Vec::<u8>::try_from(rgb.reshape([-1]))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A coarse map that splits the grid left/right at the patch boundary, over an image whose
    /// colour edge lies 5 pixels to the right of it: the target's boundary moves towards the colour
    /// edge (the filter's job), and the orientation of the raw map is kept.
    #[test]
    fn the_targets_follow_the_image_edge() {
        let input = InputConfig { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
        let (g, patch) = (4i64, 14i64);
        let size = g * patch;
        let edge = 2 * patch + 5;
        let mut coarse = vec![0f32; (g * g) as usize];
        for y in 0..g {
            for x in 0..2 {
                coarse[(y * g + x) as usize] = 1.0;
            }
        }
        let coarse = Tensor::from_slice(&coarse).reshape([1, 1, g, g]);
        // Dark left of `edge`, bright right of it, in normalised units.
        let mut rgb = vec![0f32; (3 * size * size) as usize];
        for c in 0..3usize {
            for y in 0..size {
                for x in 0..size {
                    let v = if x < edge { 0.1f32 } else { 0.9 };
                    rgb[c * (size * size) as usize + (y * size + x) as usize] =
                        (v - input.mean[c] as f32) / input.std[c] as f32;
                }
            }
        }
        let image = Tensor::from_slice(&rgb).reshape([1, 3, size, size]);
        let first_background = |filter: &GuidedFilter| {
            let t = refined_coarse_targets(&input, &coarse, &image, filter).unwrap();
            assert_eq!(t.size(), vec![1, 1, size, size]);
            let row = Vec::<f32>::try_from(t.get(0).get(0).get(size / 2)).unwrap();
            let first = row.iter().position(|&v| v == 0.0).unwrap();
            assert!(row[..first].iter().all(|&v| v == 1.0) && row[first..].iter().all(|&v| v == 0.0), "{row:?}");
            first as i64
        };
        // Resized only: the boundary stays at the patch boundary.
        assert_eq!(first_background(&GuidedFilter::OFF), 2 * patch);
        // Refined: it moves towards the colour edge, and not past it.
        let refined = first_background(&GuidedFilter { radius: 8.0, eps: 1e-3 });
        assert!(refined > 2 * patch + 1 && refined <= edge, "boundary at {refined}, colour edge at {edge}");
    }
}
