//! Model options shared by the commands: `--model`, providers, threads, refinement, box list.

use anyhow::{anyhow, bail, Result};
use clap::Args;
use sempart::model_format::default_model_path;
use sempart::{GuidedFilter, Options, Provider, Segmenter};
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Model file (default: $SEMPART_MODEL, else the default model installed by
    /// scripts/setup.sh: its int8 variant when the CPU provider comes first, float32 otherwise).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Execution providers in order of preference, comma-separated: tensorrt, cuda, cpu.
    #[arg(long, default_value = "cpu", value_delimiter = ',')]
    pub provider: Vec<String>,
    /// Fail instead of falling back to the next provider (and finally the CPU).
    #[arg(long)]
    pub no_fallback: bool,
    /// CPU threads for inference (0: let ONNX Runtime choose).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Radius of the fine mask's edge-aware refinement (guided filter with the image as the
    /// guide), in model-input pixels; 0 switches it off (the paper's plain resize).
    #[arg(long, default_value_t = GuidedFilter::DEFAULT.radius)]
    pub refine_radius: f32,
    /// Regulariser of the refinement (colours in [0, 1]).
    #[arg(long, default_value_t = GuidedFilter::DEFAULT.eps)]
    pub refine_eps: f32,
    /// Components of the mask smaller than this share of the image's area get no box in
    /// boxes.json (the mask keeps them; the object box is always listed); 0 lists all.
    #[arg(long, default_value_t = sempart::pipeline::runtime::DEFAULT_MIN_COMPONENT_FRACTION)]
    pub min_component_fraction: f32,
    /// Do not check the model file's content digest when opening it.
    #[arg(long)]
    pub no_verify_integrity: bool,
    /// Write ONNX Runtime's per-operator profile to a JSON file starting with this path.
    #[arg(long)]
    pub profile: Option<PathBuf>,
}

/// `--model`, else the default model of the precision that suits the providers.
pub fn model_path(args: &ModelArgs, options: &Options) -> PathBuf {
    args.model.clone().unwrap_or_else(|| default_model_path(options.default_precision()))
}

pub fn options(args: &ModelArgs) -> Result<Options> {
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
        min_component_fraction: args.min_component_fraction,
        ..Options::default()
    };
    Ok(options)
}

pub fn open_model(args: &ModelArgs) -> Result<Segmenter> {
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
