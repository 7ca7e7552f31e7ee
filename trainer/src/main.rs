//! `trainer`: import a backbone, train the Sempart heads, evaluate, export to ONNX.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use trainer::fixtures;

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Train the Sempart heads over a frozen DINO backbone and export the SDK's ONNX model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
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
