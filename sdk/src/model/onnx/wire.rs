//! How each kind of field in [`super::proto`] goes to and from the protobuf wire format, and
//! the [`onnx_message!`] macro that writes a `prost::Message` impl from a field list.
//!
//! The impls are written here instead of derived so that the library needs no proc-macro
//! crate (prost-derive pulls in anyhow). They encode exactly as prost's derive does for a
//! proto3-style message: a singular field only when it differs from its default, repeated
//! numbers packed, fields in tag order. Decoding accepts packed and unpacked repeated numbers
//! and skips unknown fields.

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

/// Writes a struct with public fields and its `prost::Message` impl. Each field reads
/// `pub name: Type = tag as kind`, where `kind` names a module of this file.
macro_rules! onnx_message {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $( pub $field:ident : $ty:ty = $tag:literal as $kind:ident ),* $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Clone, PartialEq, Debug, Default)]
        pub struct $name {
            $( pub $field: $ty, )*
        }

        impl prost::Message for $name {
            fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
                $( $crate::model::onnx::wire::$kind::encode($tag, &self.$field, buf); )*
            }

            fn merge_field(
                &mut self,
                tag: u32,
                wire_type: prost::encoding::WireType,
                buf: &mut impl prost::bytes::Buf,
                ctx: prost::encoding::DecodeContext,
            ) -> ::std::result::Result<(), prost::DecodeError> {
                match tag {
                    $( $tag => $crate::model::onnx::wire::$kind::merge(wire_type, &mut self.$field, buf, ctx), )*
                    _ => prost::encoding::skip_field(wire_type, tag, buf, ctx),
                }
            }

            fn encoded_len(&self) -> usize {
                0 $( + $crate::model::onnx::wire::$kind::encoded_len($tag, &self.$field) )*
            }

            fn clear(&mut self) {
                *self = Self::default();
            }
        }
    };
}
pub(crate) use onnx_message;

/// A singular scalar, written only when it is not zero.
macro_rules! scalar {
    ($kind:ident, $ty:ty) => {
        pub mod $kind {
            use super::*;

            pub fn encode(tag: u32, value: &$ty, buf: &mut impl BufMut) {
                if *value != <$ty>::default() {
                    encoding::$kind::encode(tag, value, buf);
                }
            }

            pub fn merge(
                wire_type: WireType,
                value: &mut $ty,
                buf: &mut impl Buf,
                ctx: DecodeContext,
            ) -> Result<(), DecodeError> {
                encoding::$kind::merge(wire_type, value, buf, ctx)
            }

            pub fn encoded_len(tag: u32, value: &$ty) -> usize {
                if *value != <$ty>::default() {
                    encoding::$kind::encoded_len(tag, value)
                } else {
                    0
                }
            }
        }
    };
}

/// A repeated number, written packed (one length-delimited run).
macro_rules! packed {
    ($kind:ident, $scalar:ident, $ty:ty) => {
        pub mod $kind {
            use super::*;

            pub fn encode(tag: u32, values: &[$ty], buf: &mut impl BufMut) {
                encoding::$scalar::encode_packed(tag, values, buf);
            }

            pub fn merge(
                wire_type: WireType,
                values: &mut Vec<$ty>,
                buf: &mut impl Buf,
                ctx: DecodeContext,
            ) -> Result<(), DecodeError> {
                encoding::$scalar::merge_repeated(wire_type, values, buf, ctx)
            }

            pub fn encoded_len(tag: u32, values: &[$ty]) -> usize {
                encoding::$scalar::encoded_len_packed(tag, values)
            }
        }
    };
}

scalar!(int32, i32);
scalar!(int64, i64);
scalar!(float, f32);
scalar!(string, String);
scalar!(bytes, Vec<u8>);
packed!(int32s, int32, i32);
packed!(int64s, int64, i64);
packed!(floats, float, f32);

/// `repeated string`.
pub mod strings {
    use super::*;

    pub fn encode(tag: u32, values: &[String], buf: &mut impl BufMut) {
        encoding::string::encode_repeated(tag, values, buf);
    }

    pub fn merge(
        wire_type: WireType,
        values: &mut Vec<String>,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        encoding::string::merge_repeated(wire_type, values, buf, ctx)
    }

    pub fn encoded_len(tag: u32, values: &[String]) -> usize {
        encoding::string::encoded_len_repeated(tag, values)
    }
}

/// An optional nested message, written when present.
pub mod message {
    use super::*;

    pub fn encode<M: Message>(tag: u32, value: &Option<M>, buf: &mut impl BufMut) {
        if let Some(m) = value {
            encoding::message::encode(tag, m, buf);
        }
    }

    pub fn merge<M: Message + Default>(
        wire_type: WireType,
        value: &mut Option<M>,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        encoding::message::merge(wire_type, value.get_or_insert_with(M::default), buf, ctx)
    }

    pub fn encoded_len<M: Message>(tag: u32, value: &Option<M>) -> usize {
        value.as_ref().map_or(0, |m| encoding::message::encoded_len(tag, m))
    }
}

/// `repeated` nested messages.
pub mod messages {
    use super::*;

    pub fn encode<M: Message>(tag: u32, values: &[M], buf: &mut impl BufMut) {
        encoding::message::encode_repeated(tag, values, buf);
    }

    pub fn merge<M: Message + Default>(
        wire_type: WireType,
        values: &mut Vec<M>,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        encoding::message::merge_repeated(wire_type, values, buf, ctx)
    }

    pub fn encoded_len<M: Message>(tag: u32, values: &[M]) -> usize {
        encoding::message::encoded_len_repeated(tag, values)
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::{AttributeProto, Dimension, DimensionValue, TensorProto, TensorShapeProto};
    use prost::Message;

    #[test]
    fn every_field_kind_survives_a_round_trip() {
        let t = TensorProto {
            dims: vec![2, 3],
            data_type: 1,
            float_data: vec![0.5, -1.0],
            int32_data: vec![-7],
            int64_data: vec![1 << 40],
            name: "w".into(),
            raw_data: vec![1, 2, 3],
            ..Default::default()
        };
        let a = AttributeProto {
            name: "x".into(),
            f: 2.5,
            i: -3,
            t: Some(t),
            ints: vec![4, 5],
            r#type: 7,
            ..Default::default()
        };
        let bytes = a.encode_to_vec();
        assert_eq!(bytes.len(), a.encoded_len());
        assert_eq!(AttributeProto::decode(bytes.as_slice()).unwrap(), a);
    }

    #[test]
    fn defaults_are_not_written_and_numbers_are_packed() {
        assert!(TensorProto::default().encode_to_vec().is_empty());
        // dims [1, 2] at tag 1, packed: key (1 << 3 | 2), length 2, then the two varints.
        let t = TensorProto { dims: vec![1, 2], ..Default::default() };
        assert_eq!(t.encode_to_vec(), [0x0a, 2, 1, 2]);
    }

    #[test]
    fn unpacked_numbers_and_unknown_fields_are_read() {
        // dims 1 and 2 as two separate varint fields, then field 99 (varint 5), which is skipped.
        let bytes = [0x08, 1, 0x08, 2, 0x98, 0x06, 5];
        let t = TensorProto::decode(&bytes[..]).unwrap();
        assert_eq!(t.dims, [1, 2]);
        assert!(TensorProto::decode(&[0x0a, 5, 1][..]).is_err(), "a run longer than the buffer is an error");
    }

    #[test]
    fn a_dimension_writes_its_value_even_when_zero() {
        let shape = TensorShapeProto {
            dim: vec![
                Dimension { value: Some(DimensionValue::DimValue(0)) },
                Dimension { value: Some(DimensionValue::DimParam("batch".into())) },
                Dimension { value: None },
            ],
        };
        let bytes = shape.encode_to_vec();
        assert_eq!(&bytes[..4], [0x0a, 2, 0x08, 0], "dim_value 0 is written");
        assert_eq!(TensorShapeProto::decode(bytes.as_slice()).unwrap(), shape);
    }
}
