use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};
use trainer::config::TrainConfig;
use trainer::heads::Heads;
use trainer::losses::*;

fn cl(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

#[test]
#[ignore]
fn prof() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cfg = TrainConfig::from_file(&root.join("configs/default.toml")).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let heads = Heads::new(&vs.root(), &cfg.heads, cfg.input.mean, cfg.input.std).unwrap();
    let b = 8;
    let tokens = Tensor::randn([b, 1024, 384], (Kind::Float, Device::Cpu));
    let image = Tensor::randn([b, 3, 448, 448], (Kind::Float, Device::Cpu));
    let ia = grid_affinity_from_image(&image, 1.0);
    let enc = heads.encode(&tokens).detach();
    let coarse = heads.coarse_from(&enc).detach();
    for round in 0..2 {
        for channels_last in [false, true] {
            let (e, im) = if channels_last { (cl(&enc), cl(&image)) } else { (enc.shallow_clone(), image.shallow_clone()) };
            let t = Instant::now();
            let fine = heads.fine_from(&e, &im, true);
            let f = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let g = gtv(&fine, &ia, Reduction::Sum).mean(Kind::Float) + sr_per_image(&fine, &coarse, 14, Reduction::Mean).mean(Kind::Float);
            g.backward();
            let bw = t.elapsed().as_secs_f64();
            eprintln!("round {round} channels_last {channels_last}: fine fwd {f:.3} loss+bwd {bw:.3} loss {:.6}", g.double_value(&[]));
        }
    }
}
