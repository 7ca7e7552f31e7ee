//! Reader for official DINO / DINOv2 `.pth` checkpoints (`torch.save` zip archives).
//!
//! Such a file is a zip archive holding `<archive>/data.pkl`, a pickle of the state dict whose
//! tensors are rebuilt by `torch._utils._rebuild_tensor_v2` from persistent-id storages
//! `('storage', torch.FloatStorage, key, location, numel)`, and the raw little-endian storages
//! at `<archive>/data/<key>`. The archive prefix is whatever the writer chose; the
//! `.format_version` / `.storage_alignment` records of recent PyTorch are not needed (the
//! official checkpoints were written by older PyTorch and lack them).
//!
//! The pickle is run by a small VM that knows the opcodes these files use and fails with a
//! clear error on anything else. Nothing is executed: known callables (tensor rebuilds,
//! `OrderedDict`) are interpreted, other objects are kept as opaque values.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::Path;

use anyhow::{bail, ensure, Context};
use tch::{Kind, Tensor};

use super::vit_config::{PosInterpolation, VitConfig};
use super::weights::{infer_config, Weights};

mod pickle;
mod value;
use pickle::Unpickler;
use value::{DictRef, TensorRef, Val};

/// Loads an official DINO / DINOv2 `.pth` checkpoint: weights in canonical names and the
/// architecture inferred from their shapes (heads from `num_heads_hint`, else `dim / 64`;
/// official positional interpolation; LayerNorm eps 1e-6).
///
/// Accepts a bare state dict or one wrapped under `teacher` / `model` / `state_dict`; strips
/// `module.` and `backbone.` prefixes; ignores `mask_token` and `head.*`.
pub fn load_pth(path: &Path, num_heads_hint: Option<i64>) -> anyhow::Result<(VitConfig, Weights)> {
    let raw = read_state_dict(path)?;
    let weights = canonicalise(raw)?;
    let cfg = infer_config(&weights, num_heads_hint, PosInterpolation::Official, 1e-6)?;
    Ok((cfg, weights))
}

/// Reads every tensor of a `.pth` state dict (float32, contiguous), by its key in the file.
/// Selects the state dict inside a wrapping dict as [`load_pth`] does.
pub fn read_state_dict(path: &Path) -> anyhow::Result<Vec<(String, Tensor)>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    read_state_dict_from(file).with_context(|| format!("reading PyTorch checkpoint {}", path.display()))
}

/// [`read_state_dict`] from any seekable reader.
pub fn read_state_dict_from<R: Read + Seek>(mut reader: R) -> anyhow::Result<Vec<(String, Tensor)>> {
    let mut magic = [0u8; 4];
    let n = reader.read(&mut magic)?;
    reader.rewind()?;
    if n >= 2 && magic[0] == 0x80 && magic[1] <= 5 {
        bail!("legacy (pre-1.6, non-zip) torch.save format is not supported: re-save it with a recent PyTorch");
    }
    ensure!(n == 4 && &magic == b"PK\x03\x04", "not a PyTorch zip archive (bad magic {:02x?})", &magic[..n]);
    let mut zip = zip::ZipArchive::new(reader).context("not a readable zip archive (truncated or corrupt?)")?;
    let pkl_name = zip
        .file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| n.len())
        .map(str::to_string)
        .context("the archive has no data.pkl")?;
    let prefix = pkl_name[..pkl_name.len() - "data.pkl".len()].to_string();
    let mut pkl = Vec::new();
    zip.by_name(&pkl_name)?.read_to_end(&mut pkl).with_context(|| format!("reading {pkl_name}"))?;
    let top = Unpickler::new(&pkl).load().with_context(|| format!("unpickling {pkl_name}"))?;
    let dict = select_state_dict(&top)?;

    let mut storages: HashMap<String, (Kind, Vec<u8>)> = HashMap::new();
    let mut out = Vec::new();
    for (k, v) in dict.borrow().iter() {
        let key = match k {
            Val::Str(s) => s.to_string(),
            other => bail!("state dict key is not a string: {other:?}"),
        };
        let tref = match v {
            Val::Tensor(t) => t.clone(),
            // Non-tensor entries (e.g. a step counter) are not weights.
            _ => continue,
        };
        let s = &tref.storage;
        if !storages.contains_key(&s.key) {
            let name = format!("{prefix}data/{}", s.key);
            let mut bytes = Vec::new();
            zip.by_name(&name)
                .with_context(|| format!("storage {name} of tensor {key} is missing"))?
                .read_to_end(&mut bytes)
                .with_context(|| format!("reading storage {name}"))?;
            storages.insert(s.key.clone(), (s.kind, bytes));
        }
        let (kind, bytes) = &storages[&s.key];
        let t = build_tensor(&key, &tref, *kind, bytes)?;
        out.push((key, t));
    }
    ensure!(!out.is_empty(), "the checkpoint holds no tensors");
    Ok(out)
}

/// Maps official keys to canonical names: strips `module.` / `backbone.`, drops `mask_token`
/// and `head.*`, rejects anything the ViT does not know (register tokens, chunked blocks...).
fn canonicalise(raw: Vec<(String, Tensor)>) -> anyhow::Result<Weights> {
    let mut weights = Weights::new();
    let mut unknown = Vec::new();
    for (k, t) in raw {
        let mut name = k.as_str();
        for p in ["module.", "backbone."] {
            name = name.strip_prefix(p).unwrap_or(name);
        }
        if name == "mask_token" || name.starts_with("head.") {
            continue;
        }
        if is_canonical_name(name) {
            ensure!(weights.insert(name.to_string(), t).is_none(), "duplicate weight {name} (from {k})");
        } else {
            unknown.push(k);
        }
    }
    ensure!(unknown.is_empty(), "unsupported keys in the checkpoint: {}", unknown.join(", "));
    Ok(weights)
}

fn is_canonical_name(name: &str) -> bool {
    const TOP: [&str; 6] =
        ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"];
    const BLOCK: [&str; 14] = [
        "norm1.weight",
        "norm1.bias",
        "attn.qkv.weight",
        "attn.qkv.bias",
        "attn.proj.weight",
        "attn.proj.bias",
        "ls1.gamma",
        "norm2.weight",
        "norm2.bias",
        "mlp.fc1.weight",
        "mlp.fc1.bias",
        "mlp.fc2.weight",
        "mlp.fc2.bias",
        "ls2.gamma",
    ];
    if TOP.contains(&name) {
        return true;
    }
    if let Some(rest) = name.strip_prefix("blocks.") {
        if let Some((idx, field)) = rest.split_once('.') {
            return idx.parse::<u32>().is_ok() && BLOCK.contains(&field);
        }
    }
    false
}

/// Picks the state dict: the top-level dict itself when it holds tensors, else the dict under
/// `teacher`, `model`, `state_dict` (first found).
fn select_state_dict(top: &Val) -> anyhow::Result<DictRef> {
    let Val::Dict(d) = top else {
        bail!("the pickle holds {}, not a dict", top.type_name());
    };
    if d.borrow().iter().any(|(_, v)| matches!(v, Val::Tensor(_))) {
        return Ok(d.clone());
    }
    for wrapper in ["teacher", "model", "state_dict"] {
        let inner =
            d.borrow().iter().find(|(k, _)| matches!(k, Val::Str(s) if &**s == wrapper)).map(|(_, v)| v.clone());
        if let Some(v) = inner {
            return select_state_dict(&v).with_context(|| format!("under key {wrapper:?}"));
        }
    }
    let keys: Vec<String> = d.borrow().iter().take(10).map(|(k, _)| format!("{k:?}")).collect();
    bail!("no tensors in the top-level dict and no teacher/model/state_dict key (keys: {})", keys.join(", "))
}

fn build_tensor(name: &str, t: &TensorRef, kind: Kind, bytes: &[u8]) -> anyhow::Result<Tensor> {
    let elem = kind.elt_size_in_bytes();
    let available = (bytes.len() / elem) as i64;
    let numel = t.storage.numel.unwrap_or(available);
    ensure!(
        available >= numel,
        "tensor {name}: storage {} has {} bytes, {numel} elements of {elem} bytes expected",
        t.storage.key,
        bytes.len()
    );
    ensure!(
        t.size.len() == t.stride.len(),
        "tensor {name}: size {:?} and stride {:?} differ in rank",
        t.size,
        t.stride
    );
    ensure!(
        t.size.iter().all(|&s| s >= 0) && t.stride.iter().all(|&s| s >= 0) && t.offset >= 0,
        "tensor {name}: negative size/stride/offset"
    );
    let count: i64 = t.size.iter().product();
    if count > 0 {
        let last: i64 = t.offset + t.size.iter().zip(&t.stride).map(|(s, st)| (s - 1) * st).sum::<i64>();
        ensure!(
            last < numel,
            "tensor {name}: view (offset {}, size {:?}, stride {:?}) reaches past its storage of {numel} elements",
            t.offset,
            t.size,
            t.stride
        );
    }
    let flat = Tensor::f_from_data_size(&bytes[..numel as usize * elem], &[numel], kind)?;
    let view = flat.f_as_strided(t.size.as_slice(), t.stride.as_slice(), t.offset)?;
    Ok(view.to_kind(Kind::Float).contiguous())
}
