//! The values the pickle VM builds: Python's basic types, the storages and tensors of a state
//! dict (by reference: the bytes stay in the archive), and opaque objects.

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::bail;
use tch::Kind;

#[derive(Debug)]
pub(super) struct StorageRef {
    pub(super) key: String,
    pub(super) kind: Kind,
    pub(super) numel: Option<i64>,
}

#[derive(Debug)]
pub(super) struct TensorRef {
    pub(super) storage: Rc<StorageRef>,
    pub(super) offset: i64,
    pub(super) size: Vec<i64>,
    pub(super) stride: Vec<i64>,
}

pub(super) type DictRef = Rc<RefCell<Vec<(Val, Val)>>>;

/// A pickled value. Payloads that nothing interprets (floats, bytes, opaque objects) are
/// kept for the `Debug` output of error messages.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub(super) enum Val {
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
    pub(super) fn type_name(&self) -> &'static str {
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

    pub(super) fn as_int(&self, what: &str) -> anyhow::Result<i64> {
        match self {
            Val::Int(i) => Ok(*i),
            Val::Bool(b) => Ok(*b as i64),
            other => bail!("{what}: expected an int, got {}", other.type_name()),
        }
    }

    pub(super) fn as_int_tuple(&self, what: &str) -> anyhow::Result<Vec<i64>> {
        match self {
            Val::Tuple(t) => t.iter().map(|v| v.as_int(what)).collect(),
            Val::List(l) => l.borrow().iter().map(|v| v.as_int(what)).collect(),
            other => bail!("{what}: expected a tuple of ints, got {}", other.type_name()),
        }
    }
}

pub(super) fn storage_kind(name: &str) -> anyhow::Result<Kind> {
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
