// examples/quickstart/quickstart.rs
// Segments a synthetic 64x48 RGB frame; prints the foreground pixel count and the object box.
// cargo run --release -p sempart --example quickstart [MODEL.onnx]
use sempart::{model_format, Frame, Options, PixelFormat, Segmenter};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = Options::default(); // CPU, refinement on
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| model_format::default_model_path(options.default_precision()));
    let model = Segmenter::open(&path, &options)?; // an Err ends main with the SDK's message
    let (width, height) = (64u32, 48u32);
    let rgb: Vec<u8> = // a gradient: no image decoder needed
        (0..width * height).flat_map(|i| [(i % width * 4) as u8, (i / width * 5) as u8, 128]).collect();
    let frame = Frame::new(&rgb, width, height, width as usize * 3, PixelFormat::Rgb8)?;
    let seg = model.segment(&frame)?;
    let foreground = seg.fine_mask.iter().filter(|&&v| v == 255).count();
    println!("foreground pixels: {foreground} of {}", width * height);
    match seg.object.map(|i| &seg.components[i]) {
        Some(b) => println!("object box: x0={} y0={} x1={} y1={} (x1, y1 exclusive)", b.x0, b.y0, b.x1, b.y1),
        None => println!("object box: none"),
    }
    Ok(())
}
