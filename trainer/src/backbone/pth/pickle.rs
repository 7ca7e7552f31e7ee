//! The pickle VM of `data.pkl`: the opcodes `torch.save` writes, the values they build, and
//! the two callables a state dict needs (tensor rebuilds, `OrderedDict`). Nothing is executed;
//! any other callable yields an opaque value, any other opcode a clear error.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use anyhow::{anyhow, bail, ensure, Context};

use super::value::{storage_kind, DictRef, StorageRef, TensorRef, Val};

pub(super) struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Val>,
    marks: Vec<usize>,
    memo: HashMap<u32, Val>,
}

impl<'a> Unpickler<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Unpickler { data, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() }
    }

    pub(super) fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        ensure!(self.data.len() - self.pos >= n, "pickle truncated at byte {} (needed {n} more bytes)", self.pos);
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(super) fn u8(&mut self) -> anyhow::Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn u16(&mut self) -> anyhow::Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }

    pub(super) fn u32(&mut self) -> anyhow::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }

    pub(super) fn u64(&mut self) -> anyhow::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }

    pub(super) fn line(&mut self) -> anyhow::Result<&'a str> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').context("pickle truncated in a text line")?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).context("non-UTF-8 text in pickle")
    }

    pub(super) fn utf8(&mut self, n: usize) -> anyhow::Result<Val> {
        let b = self.take(n)?;
        Ok(Val::Str(std::str::from_utf8(b).context("invalid UTF-8 string in pickle")?.into()))
    }

    pub(super) fn pop(&mut self) -> anyhow::Result<Val> {
        self.stack.pop().ok_or_else(|| anyhow!("pickle stack underflow at byte {}", self.pos))
    }

    pub(super) fn top(&mut self) -> anyhow::Result<&mut Val> {
        let pos = self.pos;
        self.stack.last_mut().ok_or_else(|| anyhow!("pickle stack underflow at byte {pos}"))
    }

    pub(super) fn pop_mark(&mut self) -> anyhow::Result<Vec<Val>> {
        let m = self.marks.pop().ok_or_else(|| anyhow!("pickle MARK missing at byte {}", self.pos))?;
        ensure!(m <= self.stack.len(), "pickle MARK beyond the stack at byte {}", self.pos);
        Ok(self.stack.split_off(m))
    }

    pub(super) fn memo_get(&self, i: u32) -> anyhow::Result<Val> {
        self.memo.get(&i).cloned().ok_or_else(|| anyhow!("pickle memo {i} is not set (byte {})", self.pos))
    }

    pub(super) fn memo_put(&mut self, i: u32) -> anyhow::Result<()> {
        let v = self.stack.last().cloned().ok_or_else(|| anyhow!("pickle PUT on an empty stack"))?;
        self.memo.insert(i, v);
        Ok(())
    }

    pub(super) fn set_items(dict: &Val, items: Vec<Val>) -> anyhow::Result<()> {
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

    pub(super) fn append(list: &Val, items: Vec<Val>) -> anyhow::Result<()> {
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
    pub(super) fn call(&self, func: Val, args: Val) -> anyhow::Result<Val> {
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
    pub(super) fn persistent_load(&self, pid: Val) -> anyhow::Result<Val> {
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

    pub(super) fn load(mut self) -> anyhow::Result<Val> {
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
