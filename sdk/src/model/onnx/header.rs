//! A first look at a model file before ONNX Runtime sees it: is it a complete ONNX protobuf,
//! and what metadata does it carry? Only the top level of the `ModelProto` message is walked
//! (the weights are skipped over, not decoded), so this costs one read of the file.

use crate::error::{Error, Result, Status};
use crate::model::keys;
use std::collections::BTreeMap;
use std::ops::Range;

/// What the top level of an ONNX file holds.
#[derive(Debug, Clone, Default)]
pub struct OnnxHeader {
    /// `ModelProto.ir_version`.
    pub ir_version: u64,
    /// `ModelProto.producer_name`.
    pub producer_name: String,
    /// `ModelProto.metadata_props` as a map.
    pub metadata: BTreeMap<String, String>,
    /// Whether the file has a graph.
    pub has_graph: bool,
    /// Bytes of the whole top-level field (key, length and entry) that holds the
    /// [`keys::CONTENT_SHA256`] metadata entry, if there is one.
    pub digest_field: Option<Range<usize>>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn bytes(&mut self, len: u64) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(usize::try_from(len).ok()?)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// One protobuf field: number and payload.
enum Field<'a> {
    Varint(u32, u64),
    Bytes(u32, &'a [u8]),
    Other(u32),
}

fn next_field<'a>(r: &mut Reader<'a>) -> std::result::Result<Field<'a>, String> {
    let at = r.pos;
    let key = r.varint().ok_or_else(|| format!("unreadable field key at byte {at}"))?;
    let number = (key >> 3) as u32;
    if number == 0 {
        return Err(format!("field number 0 at byte {at}"));
    }
    match key & 7 {
        0 => r
            .varint()
            .map(|v| Field::Varint(number, v))
            .ok_or_else(|| format!("field {number} at byte {at} ends early")),
        1 => r.bytes(8).map(|_| Field::Other(number)).ok_or_else(|| format!("field {number} at byte {at} ends early")),
        5 => r.bytes(4).map(|_| Field::Other(number)).ok_or_else(|| format!("field {number} at byte {at} ends early")),
        2 => {
            let len = r.varint().ok_or_else(|| format!("field {number} at byte {at}: unreadable length"))?;
            let remaining = r.buf.len() - r.pos;
            r.bytes(len)
                .map(|b| Field::Bytes(number, b))
                .ok_or_else(|| format!("field {number} at byte {at} declares {len} bytes but only {remaining} remain"))
        }
        wire => Err(format!("field {number} at byte {at} has invalid wire type {wire}")),
    }
}

fn string_pair(bytes: &[u8]) -> std::result::Result<(String, String), String> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let (mut key, mut value) = (String::new(), String::new());
    while !r.done() {
        match next_field(&mut r)? {
            Field::Bytes(1, b) => key = String::from_utf8(b.to_vec()).map_err(|_| "metadata key is not UTF-8")?,
            Field::Bytes(2, b) => value = String::from_utf8(b.to_vec()).map_err(|_| "metadata value is not UTF-8")?,
            _ => {}
        }
    }
    Ok((key, value))
}

/// Reads the top level of an ONNX file held in memory.
pub fn parse_header(path: &str, bytes: &[u8]) -> Result<OnnxHeader> {
    let corrupt = |why: String| {
        Error::new(Status::ModelCorrupt, format!("{path}: not a valid ONNX file (truncated or corrupt: {why})"))
    };
    if bytes.is_empty() {
        return Err(corrupt("the file is empty".into()));
    }
    let mut r = Reader { buf: bytes, pos: 0 };
    let mut header = OnnxHeader::default();
    let mut seen_ir_version = false;
    while !r.done() {
        let start = r.pos;
        match next_field(&mut r).map_err(corrupt)? {
            Field::Varint(1, v) => {
                header.ir_version = v;
                seen_ir_version = true;
            }
            Field::Bytes(2, b) => header.producer_name = String::from_utf8_lossy(b).into_owned(),
            Field::Bytes(7, _) => header.has_graph = true,
            Field::Bytes(14, b) => {
                let (k, v) = string_pair(b).map_err(corrupt)?;
                if header.metadata.contains_key(&k) {
                    return Err(corrupt(format!("metadata entry '{k}' appears twice")));
                }
                if k == keys::CONTENT_SHA256 {
                    header.digest_field = Some(start..r.pos);
                }
                header.metadata.insert(k, v);
            }
            // ModelProto has no field numbers above 25; a larger one means this is not ONNX.
            Field::Varint(n, _) | Field::Bytes(n, _) | Field::Other(n) if n > 25 => {
                return Err(corrupt(format!("field number {n} does not exist in ONNX ModelProto")));
            }
            _ => {}
        }
    }
    if !seen_ir_version || !header.has_graph {
        return Err(corrupt("no ir_version or no graph".into()));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(n: u32, payload: &[u8], out: &mut Vec<u8>) {
        varint(((n as u64) << 3) | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn tiny_model() -> Vec<u8> {
        let mut m = Vec::new();
        // The exporter's layout: header fields and metadata first, the graph last.
        varint(1 << 3, &mut m);
        varint(9, &mut m);
        let mut kv = Vec::new();
        bytes_field(1, b"sempart.format_version", &mut kv);
        bytes_field(2, b"1", &mut kv);
        bytes_field(14, &kv, &mut m);
        bytes_field(7, b"graph-bytes-not-parsed-here", &mut m);
        m
    }

    #[test]
    fn reads_metadata_and_ir_version() {
        let h = parse_header("m", &tiny_model()).unwrap();
        assert_eq!(h.ir_version, 9);
        assert!(h.has_graph);
        assert_eq!(h.metadata["sempart.format_version"], "1");
    }

    #[test]
    fn every_truncation_is_refused() {
        let m = tiny_model();
        for len in 0..m.len() {
            let err = parse_header("m", &m[..len]).unwrap_err();
            assert_eq!(err.status(), Status::ModelCorrupt, "truncated at {len}");
        }
    }

    #[test]
    fn text_file_is_refused() {
        let err = parse_header("m", b"this is a text file, not a model\n").unwrap_err();
        assert_eq!(err.status(), Status::ModelCorrupt);
    }
}
