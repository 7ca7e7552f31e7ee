//! A peer model (`sempart bench --peer`, `sempart eval --peer`) on a hand-made ONNX file whose
//! answer is known: the sigmoid of the normalised image's channel mean, so bright pixels are
//! foreground (white: ~0.90) and dark ones background (black: ~0.12).

use sempart::evaluate::evaluate_peer;
use sempart::onnx::builder::{encode, Attr, GraphBuilder};
use sempart::peer::PeerModel;
use sempart::{Frame, Options, PixelFormat, Status};
use std::path::{Path, PathBuf};

const SIDE: u32 = 8;

/// Writes the brightness peer, input `[N, 3, SIDE, SIDE]`, output `[N, 1, SIDE, SIDE]`.
fn brightness_peer(path: &Path) {
    let mut g = GraphBuilder::default();
    let mean = g.node("ReduceMean", &["image"], vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(1))]);
    g.node_named("Sigmoid", &[&mean], vec![], "map");
    let side = SIDE as i64;
    let model = g.finish(("image", [3, side, side]), &[("map", [1, side, side])], &[], "brightness peer");
    std::fs::write(path, encode(&model)).unwrap();
}

/// A `w x h` image, white inside `[x0, x1) x [y0, y1)` and black outside, and its mask.
fn square(w: u32, h: u32, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> (image::RgbImage, image::GrayImage) {
    let inside = |x: u32, y: u32| (x0..x1).contains(&x) && (y0..y1).contains(&y);
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(if inside(x, y) { [255; 3] } else { [0; 3] }));
    let mask = image::GrayImage::from_fn(w, h, |x, y| image::Luma([if inside(x, y) { 255 } else { 0 }]));
    (img, mask)
}

#[test]
fn a_peer_reports_its_input_size_and_maps_at_the_frames_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.onnx");
    brightness_peer(&path);
    let peer = PeerModel::open(&path, &Options::default()).unwrap();
    assert_eq!(peer.input_size(), (SIDE as usize, SIDE as usize));
    let (img, _) = square(16, 12, (0, 0, 8, 12));
    let frame = Frame::new(img.as_raw(), 16, 12, 16 * 3, PixelFormat::Rgb8).unwrap();
    let (map, _) = peer.run(&frame).unwrap();
    assert_eq!(map.len(), 16 * 12);
    assert!(map[0] > 0.8 && map[15] < 0.2, "left white, right black: {} {}", map[0], map[15]);
}

#[test]
fn a_model_without_an_image_input_is_refused_as_a_peer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gray.onnx");
    let mut g = GraphBuilder::default();
    g.node_named("Sigmoid", &["image"], vec![], "map");
    std::fs::write(&path, encode(&g.finish(("image", [1, 8, 8]), &[("map", [1, 8, 8])], &[], ""))).unwrap();
    let Err(err) = PeerModel::open(&path, &Options::default()) else { panic!("a one-channel input is not a peer") };
    assert_eq!(err.status(), Status::ModelForeign, "{}", err.message());
}

#[test]
fn evaluate_peer_scores_its_map_against_the_masks_and_lists_what_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let peer_path = dir.path().join("peer.onnx");
    brightness_peer(&peer_path);
    let peer = PeerModel::open(&peer_path, &Options::default()).unwrap();
    let (images, masks, inverted) = (dir.path().join("images"), dir.path().join("masks"), dir.path().join("inverted"));
    for d in [&images, &masks, &inverted] {
        std::fs::create_dir(d).unwrap();
    }
    // At the peer's own size nothing is resized, so the map is exactly the square.
    for (name, rect) in [("a", (2, 2, 6, 6)), ("b", (0, 0, 4, 8))] {
        let (img, mask) = square(SIDE, SIDE, rect);
        img.save(images.join(format!("{name}.png"))).unwrap();
        mask.save(masks.join(format!("{name}.png"))).unwrap();
        let flipped = image::GrayImage::from_fn(SIDE, SIDE, |x, y| image::Luma([255 - mask.get_pixel(x, y)[0]]));
        flipped.save(inverted.join(format!("{name}.png"))).unwrap();
    }
    let (img, _) = square(SIDE, SIDE, (0, 0, 1, 1));
    img.save(images.join("no-mask.png")).unwrap();
    let files: Vec<PathBuf> = ["a", "b", "no-mask"].iter().map(|n| images.join(format!("{n}.png"))).collect();

    let mut seen = 0;
    let right = evaluate_peer(&peer, &files, &masks, |_| seen += 1).unwrap();
    assert_eq!(seen, 3);
    assert_eq!(right.map.n, 2);
    assert_eq!((right.map.iou, right.map.acc), (1.0, 1.0));
    assert_eq!(right.failed.len(), 1);
    assert!(right.failed[0].0.ends_with("no-mask.png") && right.failed[0].1.contains("no mask"), "{:?}", right.failed);

    let wrong = evaluate_peer(&peer, &files, &inverted, |_| ()).unwrap();
    assert_eq!((wrong.map.iou, wrong.map.acc), (0.0, 0.0));

    let none = evaluate_peer(&peer, &files[2..], &masks, |_| ()).expect_err("nothing could be scored");
    assert_eq!(none.status(), Status::InvalidArgument, "{}", none.message());
}
