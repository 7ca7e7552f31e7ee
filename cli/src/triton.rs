//! `sempart export-triton`: a Triton Inference Server model repository serving the whole SDK
//! pipeline (the Python backend over the `sempart` wheel; bindings/triton holds the model and
//! config templates). docs/SCALE_OUT.md says how to run it.

use anyhow::{bail, Context, Result};
use sempart::model_format::{default_model_path, Precision};
use std::path::{Path, PathBuf};

const MODEL_PY: &str = include_str!("../../bindings/triton/model.py");
const CONFIG: &str = include_str!("../../bindings/triton/config.pbtxt.in");

/// What `export-triton` writes.
pub struct TritonArgs<'a> {
    pub out: &'a Path,
    pub model: Option<&'a Path>,
    pub name: &'a str,
    pub max_batch_size: u32,
    pub queue_delay_us: u32,
    pub cpu_instances: u32,
    pub threads: u32,
    pub force: bool,
}

fn config(args: &TritonArgs<'_>, model_file: &str, kind: &str, providers: &str) -> String {
    CONFIG
        .replace("@NAME@", args.name)
        .replace("@MAX_BATCH@", &args.max_batch_size.to_string())
        .replace("@QUEUE_DELAY_US@", &args.queue_delay_us.to_string())
        .replace("@INSTANCES@", &args.cpu_instances.to_string())
        .replace("@KIND@", kind)
        .replace("@MODEL_FILE@", model_file)
        .replace("@PROVIDERS@", providers)
        .replace("@THREADS@", &args.threads.to_string())
}

/// Writes `REPO/NAME/{config.pbtxt, configs/gpu.pbtxt, 1/model.py, 1/<model file>}`. The
/// repository is built beside the target and renamed into place, so a failed export leaves
/// nothing half-written; an existing repository is replaced only with `force`.
pub fn cmd_export_triton(args: &TritonArgs<'_>) -> Result<()> {
    let name_ok = !args.name.is_empty() && args.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok || args.name.starts_with('.') {
        bail!("model name {:?}: use letters, digits, '-', '_' and '.'", args.name);
    }
    if args.max_batch_size == 0 || args.cpu_instances == 0 {
        bail!("--max-batch-size and --cpu-instances must be at least 1");
    }
    let model: PathBuf = match args.model {
        Some(m) => m.to_path_buf(),
        None => default_model_path(Precision::Int8),
    };
    if !model.is_file() {
        bail!(
            "no model at {} ({})",
            model.display(),
            if args.model.is_some() { "check --model" } else { "run scripts/setup.sh, or pass --model PATH" }
        );
    }
    // The file must be a Sempart model this SDK opens (checked without ONNX Runtime).
    sempart::model_format::read_model(&model, true)
        .with_context(|| format!("{} is not a usable model", model.display()))?;
    if args.out.exists() && !args.force {
        bail!("{} exists; pass --force to replace it", args.out.display());
    }
    let parent = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = parent.join(format!(".{}.partial", args.out.file_name().and_then(|n| n.to_str()).unwrap_or("repo")));
    let _ = std::fs::remove_dir_all(&staging);
    let written = write_repository(&staging, args, &model);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if args.out.exists() {
        std::fs::remove_dir_all(args.out).with_context(|| format!("cannot remove {}", args.out.display()))?;
    }
    std::fs::rename(&staging, args.out)
        .with_context(|| format!("cannot move the repository to {}", args.out.display()))?;
    println!(
        "wrote the Triton model repository {} (model {:?}: {}, CPU config; configs/gpu.pbtxt for GPUs)",
        args.out.display(),
        args.name,
        model.file_name().and_then(|n| n.to_str()).unwrap_or("?")
    );
    Ok(())
}

fn write_repository(root: &Path, args: &TritonArgs<'_>, model: &Path) -> Result<()> {
    let dir = root.join(args.name);
    let version = dir.join("1");
    std::fs::create_dir_all(&version).with_context(|| format!("cannot create {}", version.display()))?;
    std::fs::create_dir_all(dir.join("configs"))?;
    let file = model.file_name().and_then(|n| n.to_str()).context("the model path has no file name")?;
    std::fs::copy(model, version.join(file)).with_context(|| format!("cannot copy {}", model.display()))?;
    std::fs::write(version.join("model.py"), MODEL_PY)?;
    std::fs::write(dir.join("config.pbtxt"), config(args, file, "KIND_CPU", "cpu"))?;
    std::fs::write(dir.join("configs/gpu.pbtxt"), config(args, file, "KIND_GPU", "tensorrt,cuda,cpu"))?;
    Ok(())
}
