//! `sempart bench`: per-stage medians, the peer model in the same run, throughput.

use crate::model_args::{open_model, options, ModelArgs};
use anyhow::{anyhow, bail, Context, Result};
use sempart::{Frame, PixelFormat, Segmenter};
use serde_json::json;
use std::path::Path;

/// Median and mean of each stage over timed calls.
pub(crate) struct Stages {
    median: [f64; 4],
    mean: [f64; 4],
}

impl Stages {
    const NAMES: [&'static str; 4] = ["preprocess", "inference", "postprocess", "total"];

    fn of(runs: &[sempart::Timing]) -> Stages {
        let stat = |f: &dyn Fn(&sempart::Timing) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            (v[v.len() / 2], v.iter().sum::<f64>() / v.len() as f64)
        };
        let s = [
            stat(&|t| t.preprocess_ms),
            stat(&|t| t.inference_ms),
            stat(&|t| t.postprocess_ms),
            stat(&|t| t.preprocess_ms + t.inference_ms + t.postprocess_ms),
        ];
        Stages { median: s.map(|x| x.0), mean: s.map(|x| x.1) }
    }

    fn json(&self) -> serde_json::Value {
        let obj = |v: &[f64; 4]| -> serde_json::Value {
            Self::NAMES.iter().zip(v).map(|(k, v)| (k.to_string(), json!(v))).collect()
        };
        json!({"median_ms": obj(&self.median), "mean_ms": obj(&self.mean)})
    }

    fn print(&self) {
        println!("             median    mean");
        for (i, name) in Self::NAMES.iter().enumerate() {
            println!("{name:<12} {:7.1} ms {:7.1} ms", self.median[i], self.mean[i]);
        }
    }
}

/// `sempart bench`'s options (see its help).
pub(crate) struct BenchArgs<'a> {
    pub(crate) image: Option<&'a Path>,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) iterations: usize,
    pub(crate) streams: usize,
    pub(crate) batch: usize,
    pub(crate) peer: Option<&'a Path>,
    pub(crate) json: bool,
}

/// Frames per second of `streams` threads each calling `segment_batch` with `batch` frames
/// `iterations` times (after one warm-up call each).
pub(crate) fn throughput(
    model: &Segmenter,
    frame: &Frame<'_>,
    streams: usize,
    batch: usize,
    iterations: usize,
) -> Result<f64> {
    let frames = vec![*frame; batch];
    let t = std::time::Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..streams)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    for _ in 0..iterations {
                        model.segment_batch(&frames)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow!("a benchmark thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((streams * batch * iterations) as f64 / t.elapsed().as_secs_f64())
}

pub(crate) fn cmd_bench(args: &ModelArgs, bench: &BenchArgs<'_>) -> Result<()> {
    let &BenchArgs { image, width, height, iterations, streams, batch, peer, json: as_json } = bench;
    if width == 0 || height == 0 || iterations == 0 || streams == 0 || batch == 0 {
        bail!("--width, --height, --iterations, --streams and --batch must be positive");
    }
    let rgb = match image {
        Some(p) => image::imageops::resize(
            &sempart::files::decode::load_rgb(p)?,
            width,
            height,
            image::imageops::FilterType::Triangle,
        ),
        None => image::RgbImage::from_fn(width, height, |x, y| {
            let inside = (x as i64 - width as i64 / 2).pow(2) + (y as i64 - height as i64 / 2).pow(2)
                < (height as i64 / 4).pow(2);
            if inside {
                image::Rgb([220, 60, 40])
            } else {
                image::Rgb([(x % 256) as u8, (y % 256) as u8, 120])
            }
        }),
    };
    let model = open_model(args)?;
    let peer = peer
        .map(|p| sempart::peer::PeerModel::open(p, &options(args)?).with_context(|| format!("peer {}", p.display())))
        .transpose()?;
    let frame = Frame::new(rgb.as_raw(), width, height, width as usize * 3, PixelFormat::Rgb8)?;
    if streams > 1 || batch > 1 {
        model.segment(&frame)?;
        let fps = throughput(&model, &frame, streams, batch, iterations)?;
        let info = model.info();
        if as_json {
            let doc = json!({
                "frame": [width, height], "input": [info.input_width_px, info.input_height_px],
                "precision": info.precision.name(), "provider": model.provider().name(), "threads": args.threads,
                "streams": streams, "batch": batch, "iterations": iterations, "frames_per_second": fps,
            });
            println!("{}", serde_json::to_string(&doc)?);
        } else {
            println!(
                "{streams} stream(s) x {iterations} calls of {batch} frame(s), {width}x{height}, {} on {}, {} inference threads: {fps:.2} frames/s",
                info.precision.name(),
                model.provider().name(),
                if args.threads == 0 { "default".to_string() } else { args.threads.to_string() }
            );
        }
        return Ok(());
    }
    for _ in 0..3 {
        model.segment(&frame)?;
        if let Some(p) = &peer {
            p.run(&frame)?;
        }
    }
    let mut runs = Vec::with_capacity(iterations);
    let mut peer_runs = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        runs.push(model.segment(&frame)?.timing);
        if let Some(p) = &peer {
            peer_runs.push(p.run(&frame)?.1);
        }
    }
    let ours = Stages::of(&runs);
    let theirs = peer.as_ref().map(|_| Stages::of(&peer_runs));
    let ratio = theirs.as_ref().map(|t| ours.median[3] / t.median[3]);
    let info = model.info();
    if as_json {
        let mut doc = json!({
            "frame": [width, height], "input": [info.input_width_px, info.input_height_px], "iterations": iterations,
            "precision": info.precision.name(), "provider": model.provider().name(), "threads": args.threads,
            "refine_radius": model.refine().radius, "refine_eps": model.refine().eps,
        });
        doc.as_object_mut().expect("object").extend(ours.json().as_object().expect("object").clone());
        if let (Some(p), Some(t)) = (&peer, &theirs) {
            let mut pj = t.json();
            pj["input"] = json!([p.input_size().0, p.input_size().1]);
            doc["peer"] = pj;
            doc["ratio_total_median"] = json!(ratio);
            doc["ratio_inference_median"] = json!(ours.median[1] / t.median[1]);
        }
        println!("{}", serde_json::to_string(&doc)?);
    } else {
        println!(
            "sempart_segment on a {width}x{height} frame, model input {}x{}, {} {} on {}, {iterations} calls",
            info.input_width_px,
            info.input_height_px,
            info.backbone_name,
            info.precision.name(),
            model.provider().name()
        );
        ours.print();
        if let (Some(p), Some(t)) = (&peer, &theirs) {
            let (pw, ph) = p.input_size();
            println!("peer model (input {pw}x{ph}, resized to the frame), calls alternating with the SDK's");
            t.print();
            println!(
                "ratio SDK / peer (median): total {:.2}, inference {:.2}",
                ours.median[3] / t.median[3],
                ours.median[1] / t.median[1]
            );
        }
    }
    Ok(())
}
