//! The exported ONNX file, run by the SDK (ONNX Runtime), agrees with the tch model it came
//! from within 1e-4 on both outputs.

use sempart::{Frame, Options, PixelFormat, Segmenter};
use tch::{Kind, Tensor};
use trainer::fixtures;

fn picture(w: usize, h: usize, seed: u32) -> Vec<u8> {
    (0..w * h * 3)
        .map(|i| {
            let x = (i / 3) % w;
            let y = (i / 3) / w;
            let c = i % 3;
            let blob = ((x as i32 - 30).pow(2) + (y as i32 - 28).pow(2) < 300) as u32;
            ((x as u32 * 3 + y as u32 * 5 + c as u32 * 40 + seed * 17 + blob * 120) % 256) as u8
        })
        .collect()
}

#[test]
fn tch_and_onnx_runtime_agree() {
    let seed = 11;
    let model = fixtures::tiny_model(seed).unwrap();
    let onnx = fixtures::tiny_model_onnx(&model, seed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.onnx");
    std::fs::write(&path, &onnx).unwrap();
    let sdk = Segmenter::open(&path, &Options::default()).unwrap();
    let spec = sdk.info().input_spec();
    let (w, h) = (spec.width_px, spec.height_px);

    let mut max_fine = 0f32;
    let mut max_coarse = 0f32;
    for s in 0..3 {
        // A frame at the model's input size: the SDK's resize is then the identity, so its
        // fine probabilities are the raw network output.
        let rgb = picture(w, h, s);
        let frame = Frame::new(&rgb, w as u32, h as u32, w * 3, PixelFormat::Rgb8).unwrap();
        let seg = sdk.segment(&frame).unwrap();

        let mut input = vec![0f32; 3 * w * h];
        sempart::preprocess::frame_to_input(&frame, &spec, &mut input);
        let x = Tensor::from_slice(&input).reshape([1, 3, h as i64, w as i64]);
        let _g = tch::no_grad_guard();
        let out = model.vit.forward(&x);
        let patches = out.tokens.narrow(1, 1, out.tokens.size()[1] - 1);
        let heads = model.heads.forward_t(&patches, &x, false, true);
        let unflip = |p: f32| if seg.foreground_is_b { 1.0 - p } else { p };
        let fine: Vec<f32> = Vec::try_from(heads.fine.to_kind(Kind::Float).flatten(0, -1)).unwrap();
        let coarse: Vec<f32> = Vec::try_from(heads.coarse.to_kind(Kind::Float).flatten(0, -1)).unwrap();
        for (a, b) in fine.iter().zip(&seg.fine_probability) {
            max_fine = max_fine.max((a - unflip(*b)).abs());
        }
        for (a, b) in coarse.iter().zip(&seg.coarse_probability) {
            max_coarse = max_coarse.max((a - unflip(*b)).abs());
        }
        // The outputs are not trivially constant.
        let spread = fine.iter().cloned().fold(f32::MIN, f32::max) - fine.iter().cloned().fold(f32::MAX, f32::min);
        assert!(spread > 1e-3, "fine output is constant");
    }
    println!("max |tch - ORT|: fine {max_fine:.2e}, coarse {max_coarse:.2e}");
    assert!(max_fine <= 1e-4, "fine differs by {max_fine}");
    assert!(max_coarse <= 1e-4, "coarse differs by {max_coarse}");
}
