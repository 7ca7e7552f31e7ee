//! The `trainer` command as a user runs it: feature extraction killed mid-way (SIGKILL) and
//! started again resumes from the entries already written, and progress goes to a log as lines
//! with an ETA when stderr is not a terminal.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use trainer::backbone::save_backbone;
use trainer::fixtures;
use trainer::train::with_seeded_torch;

/// `n` large noisy JPEGs (decoding dominates the tiny backbone's extraction, so it lasts long
/// enough to be killed part-way).
fn write_photos(dir: &Path, n: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let (w, h) = (1280, 960);
    let mut base = image::RgbImage::new(w, h);
    let mut s = 1u64;
    for (x, y, px) in base.enumerate_pixels_mut() {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let noise = (s >> 58) as u8;
        *px = image::Rgb([(x / 7) as u8 ^ noise, (y / 5) as u8, ((x + y) / 11) as u8]);
    }
    for i in 0..n {
        let mut img = base.clone();
        // A distinct square per photo: distinct content, distinct cache entries.
        for y in 0..200 {
            for x in 0..200 {
                img.put_pixel(100 + 6 * i + x, 100 + 4 * i + y, image::Rgb([255, 255 - i as u8, 0]));
            }
        }
        img.save(dir.join(format!("p{i:03}.jpg"))).unwrap();
    }
}

fn entries(cache: &Path) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(cache) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn killed_extraction_resumes_and_logs_progress_with_an_eta() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    let n = 40;
    write_photos(&photos, n);
    let m = with_seeded_torch(3, || fixtures::tiny_model(3).unwrap());
    let backbone_file = dir.path().join("backbone.safetensors");
    save_backbone(&backbone_file, m.vit.config(), &m.backbone_vs).unwrap();
    let mut cfg = fixtures::tiny_train_config(&dir.path().join("run"), &photos).unwrap();
    cfg.backbone.path = backbone_file;
    cfg.backbone.format = Some("saved".into());
    cfg.data.cache_dir = Some(dir.path().join("cache"));
    cfg.data.extract_batch = 2;
    cfg.schedule.epochs = 1;
    let config = dir.path().join("config.toml");
    std::fs::write(&config, cfg.to_toml().unwrap()).unwrap();
    let cache = dir.path().join("cache");
    let train = |log: &str| {
        Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args(["train", "--config", config.to_str().unwrap(), "--overwrite"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join(log)).unwrap())
            .spawn()
            .unwrap()
    };

    // Killed as soon as the first entries are on disk.
    let mut child = train("first.log");
    let t0 = Instant::now();
    while entries(&cache).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no cache entry after 2 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the first run ended before it was killed");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let kept = entries(&cache);
    assert!(
        !kept.is_empty() && kept.len() < n as usize,
        "{} of {n} entries after the kill: the extraction was not cut part-way",
        kept.len()
    );
    // Every entry left is whole (written to a temporary name, then renamed).
    for p in &kept {
        let bytes = std::fs::read(p).unwrap();
        safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }

    // Started again, it computes only what is missing and finishes.
    let out = train("second.log").wait_with_output().unwrap();
    let log = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert!(out.status.success(), "{log}");
    assert_eq!(entries(&cache).len(), n as usize);
    let summary = log.lines().find(|l| l.starts_with("features: ")).unwrap_or_else(|| panic!("{log}"));
    let want =
        format!("features: {n} images, {} entries from the cache, {} computed", kept.len(), n as usize - kept.len());
    assert!(summary.starts_with(&want), "{summary:?} does not start with {want:?}");
    // Not a terminal: plain progress lines, the last of each stage at its end, with the rate
    // and the time left.
    assert!(log.contains(&format!("features {n}/{n} (100.0%)")), "{log}");
    let train_line =
        log.lines().find(|l| l.starts_with("train ") && l.contains("(100.0%)")).unwrap_or_else(|| panic!("{log}"));
    assert!(train_line.contains("/s, ETA 0:00:00"), "{train_line}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("Coarse phase:") || stdout.contains("Joint phase:"), "{stdout}");
}
