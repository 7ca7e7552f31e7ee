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

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::Path;
use std::rc::Rc;

use anyhow::{anyhow, bail, ensure, Context};
use tch::{Kind, Tensor};

use super::{infer_config, PosInterpolation, VitConfig, Weights};

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

// ---------------------------------------------------------------------------------------------
// The pickle VM.

#[derive(Debug)]
struct StorageRef {
    key: String,
    kind: Kind,
    numel: Option<i64>,
}

#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

type DictRef = Rc<RefCell<Vec<(Val, Val)>>>;

/// A pickled value. Payloads that nothing interprets (floats, bytes, opaque objects) are
/// kept for the `Debug` output of error messages.
#[derive(Debug, Clone)]
#[allow(dead_code)]
enum Val {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<Vec<Val>>),
    List(Rc<RefCell<Vec<Val>>>),
    Dict(DictRef),
    Global(Rc<(String, String)>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// Any other object: the callable (or class) that built it.
    Object(Rc<(String, String)>),
}

impl Val {
    fn type_name(&self) -> &'static str {
        match self {
            Val::None => "None",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float",
            Val::Str(_) => "str",
            Val::Bytes(_) => "bytes",
            Val::Tuple(_) => "tuple",
            Val::List(_) => "list",
            Val::Dict(_) => "dict",
            Val::Global(_) => "global",
            Val::Storage(_) => "storage",
            Val::Tensor(_) => "tensor",
            Val::Object(_) => "object",
        }
    }

    fn as_int(&self, what: &str) -> anyhow::Result<i64> {
        match self {
            Val::Int(i) => Ok(*i),
            Val::Bool(b) => Ok(*b as i64),
            other => bail!("{what}: expected an int, got {}", other.type_name()),
        }
    }

    fn as_int_tuple(&self, what: &str) -> anyhow::Result<Vec<i64>> {
        match self {
            Val::Tuple(t) => t.iter().map(|v| v.as_int(what)).collect(),
            Val::List(l) => l.borrow().iter().map(|v| v.as_int(what)).collect(),
            other => bail!("{what}: expected a tuple of ints, got {}", other.type_name()),
        }
    }
}

fn storage_kind(name: &str) -> anyhow::Result<Kind> {
    Ok(match name {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        other => bail!("unsupported storage type torch.{other}"),
    })
}

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Val>,
    marks: Vec<usize>,
    memo: HashMap<u32, Val>,
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8]) -> Self {
        Unpickler { data, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() }
    }

    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        ensure!(self.data.len() - self.pos >= n, "pickle truncated at byte {} (needed {n} more bytes)", self.pos);
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> anyhow::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> anyhow::Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }

    fn u32(&mut self) -> anyhow::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }

    fn u64(&mut self) -> anyhow::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }

    fn line(&mut self) -> anyhow::Result<&'a str> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').context("pickle truncated in a text line")?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).context("non-UTF-8 text in pickle")
    }

    fn utf8(&mut self, n: usize) -> anyhow::Result<Val> {
        let b = self.take(n)?;
        Ok(Val::Str(std::str::from_utf8(b).context("invalid UTF-8 string in pickle")?.into()))
    }

    fn pop(&mut self) -> anyhow::Result<Val> {
        self.stack.pop().ok_or_else(|| anyhow!("pickle stack underflow at byte {}", self.pos))
    }

    fn top(&mut self) -> anyhow::Result<&mut Val> {
        let pos = self.pos;
        self.stack.last_mut().ok_or_else(|| anyhow!("pickle stack underflow at byte {pos}"))
    }

    fn pop_mark(&mut self) -> anyhow::Result<Vec<Val>> {
        let m = self.marks.pop().ok_or_else(|| anyhow!("pickle MARK missing at byte {}", self.pos))?;
        ensure!(m <= self.stack.len(), "pickle MARK beyond the stack at byte {}", self.pos);
        Ok(self.stack.split_off(m))
    }

    fn memo_get(&self, i: u32) -> anyhow::Result<Val> {
        self.memo.get(&i).cloned().ok_or_else(|| anyhow!("pickle memo {i} is not set (byte {})", self.pos))
    }

    fn memo_put(&mut self, i: u32) -> anyhow::Result<()> {
        let v = self.stack.last().cloned().ok_or_else(|| anyhow!("pickle PUT on an empty stack"))?;
        self.memo.insert(i, v);
        Ok(())
    }

    fn set_items(dict: &Val, items: Vec<Val>) -> anyhow::Result<()> {
        ensure!(items.chunks_exact(2).remainder().is_empty(), "SETITEMS with an odd number of values");
        match dict {
            Val::Dict(d) => {
                let mut d = d.borrow_mut();
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    // Later assignments of a key replace earlier ones, as in Python.
                    if let Val::Str(ks) = &k {
                        if let Some(slot) = d.iter_mut().find(|(kk, _)| matches!(kk, Val::Str(s) if s == ks)) {
                            slot.1 = v;
                            continue;
                        }
                    }
                    d.push((k, v));
                }
                Ok(())
            }
            // Items set on an opaque object are ignored.
            Val::Object(_) => Ok(()),
            other => bail!("SETITEM(S) on a {}", other.type_name()),
        }
    }

    fn append(list: &Val, items: Vec<Val>) -> anyhow::Result<()> {
        match list {
            Val::List(l) => {
                l.borrow_mut().extend(items);
                Ok(())
            }
            Val::Object(_) => Ok(()),
            other => bail!("APPEND(S) on a {}", other.type_name()),
        }
    }

    /// Applies a callable to its arguments (REDUCE / NEWOBJ).
    fn call(&self, func: Val, args: Val) -> anyhow::Result<Val> {
        let Val::Global(g) = &func else {
            bail!("REDUCE on a {}, not a global", func.type_name());
        };
        let args = match &args {
            Val::Tuple(t) => t.clone(),
            other => bail!("REDUCE arguments are a {}, not a tuple", other.type_name()),
        };
        match (g.0.as_str(), g.1.as_str()) {
            ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
                ensure!(args.len() >= 4, "{}: expected at least 4 arguments, got {}", g.1, args.len());
                let Val::Storage(storage) = &args[0] else {
                    bail!("{}: first argument is a {}, not a storage", g.1, args[0].type_name());
                };
                Ok(Val::Tensor(Rc::new(TensorRef {
                    storage: storage.clone(),
                    offset: args[1].as_int("storage offset")?,
                    size: args[2].as_int_tuple("tensor size")?,
                    stride: args[3].as_int_tuple("tensor stride")?,
                })))
            }
            ("torch._utils", "_rebuild_parameter") | ("torch._utils", "_rebuild_parameter_with_state") => {
                ensure!(!args.is_empty(), "_rebuild_parameter without arguments");
                Ok(args[0].clone())
            }
            ("collections", "OrderedDict") | ("builtins", "dict") | ("__builtin__", "dict") => {
                let d: DictRef = Rc::new(RefCell::new(Vec::new()));
                if let Some(Val::List(items)) = args.first() {
                    for item in items.borrow().iter() {
                        if let Val::Tuple(kv) = item {
                            if kv.len() == 2 {
                                d.borrow_mut().push((kv[0].clone(), kv[1].clone()));
                            }
                        }
                    }
                }
                Ok(Val::Dict(d))
            }
            _ => Ok(Val::Object(g.clone())),
        }
    }

    /// A persistent id: `('storage', storage_type, key, location, numel[, view_metadata])`.
    fn persistent_load(&self, pid: Val) -> anyhow::Result<Val> {
        let Val::Tuple(t) = &pid else {
            bail!("persistent id is a {}, not a tuple", pid.type_name());
        };
        ensure!(t.len() >= 4, "persistent id has {} fields, expected at least 4", t.len());
        ensure!(
            matches!(&t[0], Val::Str(s) if &**s == "storage"),
            "persistent id of kind {:?}, expected 'storage'",
            t[0]
        );
        let kind = match &t[1] {
            Val::Global(g) => storage_kind(&g.1)?,
            other => bail!("storage type is a {}, not a global", other.type_name()),
        };
        let key = match &t[2] {
            Val::Str(s) => s.to_string(),
            Val::Int(i) => i.to_string(),
            other => bail!("storage key is a {}", other.type_name()),
        };
        let numel = match t.get(4) {
            Some(v) => Some(v.as_int("storage size")?),
            None => None,
        };
        Ok(Val::Storage(Rc::new(StorageRef { key, kind, numel })))
    }

    fn load(mut self) -> anyhow::Result<Val> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    ensure!(proto <= 5, "unsupported pickle protocol {proto}");
                }
                0x95 => {
                    self.u64()?; // FRAME: length only
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'}' => self.stack.push(Val::Dict(Rc::new(RefCell::new(Vec::new())))),
                b']' => self.stack.push(Val::List(Rc::new(RefCell::new(Vec::new())))),
                b')' => self.stack.push(Val::Tuple(Rc::new(Vec::new()))),
                b'N' => self.stack.push(Val::None),
                0x88 => self.stack.push(Val::Bool(true)),
                0x89 => self.stack.push(Val::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.take(4)?.try_into()?);
                    self.stack.push(Val::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Val::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Val::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.u8()? as usize } else { self.u32()? as usize };
                    let b = self.take(n)?;
                    ensure!(n <= 8, "pickle LONG of {n} bytes is too large");
                    let mut v: i64 = 0;
                    for (i, &byte) in b.iter().enumerate() {
                        v |= (byte as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.stack.push(Val::Int(v));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into()?);
                    self.stack.push(Val::Float(v));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.utf8(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.utf8(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.u64()? as usize;
                    let v = self.utf8(n)?;
                    self.stack.push(v);
                }
                b'T' | b'U' => {
                    // BINSTRING / SHORT_BINSTRING (protocol 1 byte strings, read as text).
                    let n = if op == b'T' { self.u32()? as usize } else { self.u8()? as usize };
                    let b = self.take(n)?;
                    self.stack.push(Val::Str(String::from_utf8_lossy(b).into()));
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.u64()? as usize,
                    };
                    let b = self.take(n)?;
                    self.stack.push(Val::Bytes(b.into()));
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                b'j' => {
                    let i = self.u32()?;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.stack.push(Val::Global(Rc::new((module, name))));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Val::Str(m), Val::Str(n)) => {
                            self.stack.push(Val::Global(Rc::new((m.to_string(), n.to_string()))))
                        }
                        _ => bail!("STACK_GLOBAL on non-strings at byte {at}"),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.stack.push(v);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Val::Tuple(Rc::new(items)));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    ensure!(self.stack.len() >= n, "pickle stack underflow at byte {at}");
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Val::Tuple(Rc::new(items)));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Val::List(Rc::new(RefCell::new(items))));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = Val::Dict(Rc::new(RefCell::new(Vec::new())));
                    Self::set_items(&d, items)?;
                    self.stack.push(d);
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?.clone();
                    Self::append(&l, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let l = self.top()?.clone();
                    Self::append(&l, items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?.clone();
                    Self::set_items(&d, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let d = self.top()?.clone();
                    Self::set_items(&d, items)?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.call(func, args).with_context(|| format!("REDUCE at byte {at}"))?;
                    self.stack.push(v);
                }
                0x81 => {
                    // NEWOBJ: cls.__new__(cls, *args) -> opaque object (or a dict subclass).
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(cls, args).with_context(|| format!("NEWOBJ at byte {at}"))?;
                    self.stack.push(v);
                }
                b'b' => {
                    // BUILD: set the state of the object below; tensors and dicts (the
                    // OrderedDict `_metadata` attribute) do not need it.
                    self.pop()?;
                    self.top()?;
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                other => bail!("unsupported pickle opcode 0x{other:02x} ({:?}) at byte {at}", char::from(other)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pickle_basics() {
        // pickle.dumps({'a': (1, -2, 300, 70000), 'b': [True, None, 'x']}, protocol=2)
        let p: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01(K\x01J\xfe\xff\xff\xffM,\x01J\x70\x11\x01\x00tq\x02X\x01\x00\x00\x00bq\x03]q\x04(\x88NX\x01\x00\x00\x00xq\x05eu.";
        let v = Unpickler::new(p).load().unwrap();
        let Val::Dict(d) = v else { panic!("not a dict") };
        let d = d.borrow();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].1.as_int_tuple("t").unwrap(), vec![1, -2, 300, 70000]);
        let Val::List(l) = &d[1].1 else { panic!("not a list") };
        assert_eq!(l.borrow().len(), 3);
    }

    #[test]
    fn pickle_errors_are_reported() {
        let err = Unpickler::new(b"\x80\x02}q\x00(X\x05\x00\x00\x00ab").load().unwrap_err();
        assert!(format!("{err:#}").contains("truncated"), "{err:#}");
        let err = Unpickler::new(b"\x80\x02\xff").load().unwrap_err();
        assert!(format!("{err:#}").contains("unsupported pickle opcode 0xff"), "{err:#}");
    }

    #[test]
    fn long1_sign() {
        let v = Unpickler::new(b"\x80\x02\x8a\x02\x00\xff.").load().unwrap();
        assert_eq!(v.as_int("x").unwrap(), -256);
    }
}
