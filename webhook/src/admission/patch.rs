// Over 400 lines of non-test code: three serde Serializers (the trait's many methods are required boilerplate) that share the writer's buffers and its rules.
//! The JSONPatch of a mutation, written straight to its JSON bytes.
//!
//! [`PatchWriter::diff`] writes what
//! `serde_json::to_vec(&json_patch::diff(old, &serde_json::to_value(new)?))`
//! would, op for op and byte for byte, in one pass and without building
//! `new` as a `serde_json::Value`: `new` is serialised while `old` is walked
//! beside it, and the value of every `add` and `replace` is written as JSON
//! while it is serialised.
//!
//! One pass is enough because `json_patch::diff` visits an object's keys in
//! the order of a `Value`'s map (sorted, unique) and `new` brings them in that
//! order: the structs of `ephemeral_core::api` declare their fields sorted by
//! JSON name, and maps are `BTreeMap`s. The writer checks the keys of every
//! object as they come; keys out of order or repeated are [`Unsupported`], as
//! are the few shapes it does not model (non-string map keys, enum variants
//! with data, 128-bit integers, byte strings, `f32`). Callers then take the
//! `Value` route: a refusal costs time, never correctness.

use std::ops::Range;

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::Number;

use super::json::Json;

/// A value the writer does not model; use `serde_json::to_value` instead.
#[derive(Debug)]
pub(super) struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a value the patch writer does not model")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

/// Appends `/token` to a JSON pointer, escaping `~` and `/` (RFC 6901), and
/// says whether the token needs escaping in a JSON string too (one scan finds
/// both; nearly no token needs either).
fn push_token(path: &mut String, token: &str) -> bool {
    path.push('/');
    let marks = |w| pointer_escapes(w) | json_escapes(w);
    if !any_marked(token.as_bytes(), marks, |b| {
        b == b'~' || b == b'/' || is_json_escape(b)
    }) {
        path.push_str(token);
        return false;
    }
    for c in token.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
    needs_escape(token.as_bytes())
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit of each byte of `w` set for some byte below `n` (`n` ≤ 0x80);
/// the borrow can mark bytes next to one, never a word without one.
fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS
}

/// [`below`]'s marks for bytes equal to `b`.
fn equal(w: u64, b: u8) -> u64 {
    below(w ^ (ONES * u64::from(b)), 1)
}

/// Marks of the bytes a JSON string must escape: control characters, `"`
/// and `\`.
fn json_escapes(w: u64) -> u64 {
    below(w, 0x20) | equal(w, b'"') | equal(w, b'\\')
}

/// Marks of the bytes a JSON pointer token must escape: `~` and `/`.
fn pointer_escapes(w: u64) -> u64 {
    equal(w, b'~') | equal(w, b'/')
}

/// Whether `marks` (or, below four bytes, `is_marked`) marks any byte of
/// `bytes`.
///
/// Eight bytes at a time (most strings here are short, where a byte loop or
/// the compiler's vectorised loop spend more on setting up than on bytes):
/// whole words, then the last eight bytes again (overlapping); strings
/// shorter than a word in two overlapping halves, their upper halves filled
/// with `A`, which neither check marks.
fn any_marked(bytes: &[u8], marks: impl Fn(u64) -> u64, is_marked: impl Fn(u8) -> bool) -> bool {
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().expect("4 bytes");
        u64::from(u32::from_le_bytes(b))
    };
    let n = bytes.len();
    if n >= 8 {
        let mut seen = 0;
        let mut at = 0;
        while at + 8 <= n {
            seen |= marks(word(at));
            at += 8;
        }
        if at < n {
            seen |= marks(word(n - 8));
        }
        seen != 0
    } else if n >= 4 {
        let fill = 0x4141_4141 << 32;
        marks(half(0) | fill) != 0 || marks(half(n - 4) | fill) != 0
    } else {
        bytes.iter().copied().any(is_marked)
    }
}

/// Whether a struct field's name needs escaping in a JSON string or a JSON
/// pointer token. Field names are fixed when the types are compiled, and
/// those of the Environment (its CRD's property names) need none, which a
/// test checks: so they are written without a scan, and debug builds check
/// each one here.
fn field_name_is_plain(name: &str) -> bool {
    !needs_escape(name.as_bytes()) && !name.contains(['~', '/'])
}

/// Writes a struct field's name and the `:` after it (see
/// [`field_name_is_plain`]).
fn write_field_name(out: &mut Vec<u8>, name: &'static str) {
    debug_assert!(field_name_is_plain(name), "field name {name:?}");
    out.reserve(name.len() + 3);
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Whether a JSON string must escape `b`.
fn is_json_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether any byte of `bytes` must be escaped in a JSON string.
fn needs_escape(bytes: &[u8]) -> bool {
    any_marked(bytes, json_escapes, is_json_escape)
}

/// Writes a JSON string as `serde_json` does; strings with nothing to
/// escape (nearly all) are copied as they are.
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        write_escaped(out, s);
    } else {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// The rare string with escapes, out of the way of the common path.
#[cold]
#[inline(never)]
fn write_escaped(out: &mut Vec<u8>, s: &str) {
    write_json(out, s);
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("strings and numbers always serialise");
}

/// The ops a patch uses.
#[derive(Clone, Copy, Debug)]
enum Op {
    Add,
    Remove,
    Replace,
}

/// Writes JSONPatch ops as `serde_json::to_vec(&json_patch::Patch)` does.
#[derive(Debug)]
pub(super) struct PatchWriter {
    out: Vec<u8>,
    /// The JSON pointer of the current position, tokens escaped.
    path: String,
    /// Where in `path` the first token that needs escaping in a JSON string
    /// starts, if one does (then the path is written escaped; otherwise as
    /// it is, without a scan).
    escape_from: Option<usize>,
    ops: usize,
    /// The last map key of each object being written, innermost last (see
    /// [`PatchWriter::next_key`]).
    keys: String,
}

impl PatchWriter {
    pub(super) fn new() -> PatchWriter {
        let mut out = Vec::with_capacity(4096);
        out.push(b'[');
        PatchWriter {
            out,
            path: String::with_capacity(64),
            escape_from: None,
            ops: 0,
            keys: String::new(),
        }
    }

    /// Runs `f` with `token` appended to the current path.
    pub(super) fn at<R>(&mut self, token: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.path.len();
        if push_token(&mut self.path, token) {
            self.escape_from.get_or_insert(len);
        }
        let r = f(self);
        self.truncate_path(len);
        r
    }

    /// Takes the path back to its first `len` bytes.
    fn truncate_path(&mut self, len: usize) {
        self.path.truncate(len);
        if self.escape_from.is_some_and(|at| at >= len) {
            self.escape_from = None;
        }
    }

    fn at_index<R>(&mut self, index: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        use std::fmt::Write as _;
        let len = self.path.len();
        // One digit without the formatting machinery: apps rarely number ten.
        match u8::try_from(index) {
            Ok(digit @ 0..=9) => {
                self.path.push('/');
                self.path.push(char::from(b'0' + digit));
            }
            _ => {
                let _ = write!(self.path, "/{index}");
            }
        }
        let r = f(self);
        self.truncate_path(len);
        r
    }

    /// Writes an op up to its path; a value (if any) and `}` follow.
    fn begin(&mut self, op: Op) {
        if self.ops > 0 {
            self.out.push(b',');
        }
        self.ops += 1;
        self.out.extend_from_slice(match op {
            Op::Add => b"{\"op\":\"add\",\"path\":",
            Op::Remove => b"{\"op\":\"remove\",\"path\":",
            Op::Replace => b"{\"op\":\"replace\",\"path\":",
        });
        if self.escape_from.is_none() {
            self.out.reserve(self.path.len() + 2);
            self.out.push(b'"');
            self.out.extend_from_slice(self.path.as_bytes());
            self.out.push(b'"');
        } else {
            write_str(&mut self.out, &self.path);
        }
    }

    /// Writes an op with a value up to the value; the value and `}` follow.
    fn begin_with_value(&mut self, op: Op) {
        self.begin(op);
        self.out.extend_from_slice(b",\"value\":");
    }

    fn remove(&mut self) {
        self.begin(Op::Remove);
        self.out.push(b'}');
    }

    fn with_value<T: Serialize + ?Sized>(&mut self, op: Op, value: &T) -> Result<(), Unsupported> {
        self.begin_with_value(op);
        value.serialize(Writer(self))?;
        self.out.push(b'}');
        Ok(())
    }

    /// An `add` of `value` at the current path.
    pub(super) fn add<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.with_value(Op::Add, value)
    }

    /// A `replace` with `value` at the current path.
    pub(super) fn replace<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.with_value(Op::Replace, value)
    }

    /// The ops `json_patch::diff(left, &to_value(right))` gives, at the
    /// current path.
    pub(super) fn diff<T: Serialize + ?Sized>(
        &mut self,
        left: &Json<'_>,
        right: &T,
    ) -> Result<(), Unsupported> {
        right.serialize(Diff { w: self, left })
    }

    /// Reads the next map key of an object into [`PatchWriter::keys`], where
    /// the object keeps its last key from `base` on, and checks that it comes
    /// after that one (`had_key`). The new key then replaces the last one;
    /// its range in `keys` is returned. Objects nested in the entry's value
    /// keep their keys above it and drop them when they end.
    fn next_key<K: Serialize + ?Sized>(
        &mut self,
        base: usize,
        had_key: bool,
        key: &K,
    ) -> Result<Range<usize>, Unsupported> {
        let mid = self.keys.len();
        key.serialize(KeyInto(&mut self.keys))?;
        if had_key {
            if compare(&self.keys[base..mid], &self.keys[mid..]).is_ge() {
                return Err(Unsupported);
            }
            self.keys.replace_range(base..mid, "");
        }
        Ok(base..self.keys.len())
    }

    /// The patch's JSON, or `None` when it has no op.
    pub(super) fn finish(mut self) -> Option<Vec<u8>> {
        if self.ops == 0 {
            return None;
        }
        self.out.push(b']');
        Some(self.out)
    }
}

/// `a.cmp(b)`, settled by the first bytes when they differ (as they do for
/// most pairs of keys) without a call to `memcmp`.
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Checks that a struct's field comes after the one before it.
fn next_field(last: &mut Option<&'static str>, key: &'static str) -> Result<(), Unsupported> {
    if last.is_some_and(|last| compare(last, key).is_ge()) {
        return Err(Unsupported);
    }
    *last = Some(key);
    Ok(())
}

/// Serialises a value as JSON into the writer's output, as
/// `serde_json::to_writer(&serde_json::to_value(value)?)` writes it.
struct Writer<'a>(&'a mut PatchWriter);

/// Generates the methods of a `Serializer` that refuse their shape.
macro_rules! refuse {
    ($($name:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $name(self, $(_: $arg),*) -> Result<$ok, Unsupported> {
            Err(Unsupported)
        })*
    };
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = JsonSeq<'a>;
    type SerializeTuple = JsonSeq<'a>;
    type SerializeTupleStruct = JsonSeq<'a>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = JsonObj<'a>;
    type SerializeStruct = JsonObj<'a>;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.0
            .out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        write_json(&mut self.0.out, &v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        write_json(&mut self.0.out, &v);
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        // Not finite: `null`, as `to_value` makes it.
        write_json(&mut self.0.out, &v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        write_str(&mut self.0.out, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.0.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<JsonSeq<'a>, Unsupported> {
        Ok(JsonSeq::open(self.0, false))
    }
    fn serialize_tuple(self, len: usize) -> Result<JsonSeq<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<JsonSeq<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<JsonObj<'a>, Unsupported> {
        Ok(JsonObj::open(self.0, false))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<JsonObj<'a>, Unsupported> {
        Ok(JsonObj::open(self.0, false))
    }
    refuse! {
        serialize_f32(f32) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Unsupported>;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Unsupported>;
    }
}

/// An array being written; `close_op` ends the op it is the value of.
pub(super) struct JsonSeq<'a> {
    w: &'a mut PatchWriter,
    first: bool,
    close_op: bool,
}

impl<'a> JsonSeq<'a> {
    fn open(w: &'a mut PatchWriter, close_op: bool) -> JsonSeq<'a> {
        w.out.push(b'[');
        JsonSeq {
            w,
            first: true,
            close_op,
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        if !std::mem::take(&mut self.first) {
            self.w.out.push(b',');
        }
        value.serialize(Writer(&mut *self.w))
    }

    fn close(self) -> Result<(), Unsupported> {
        self.w.out.push(b']');
        if self.close_op {
            self.w.out.push(b'}');
        }
        Ok(())
    }
}

/// An object being written; `close_op` ends the op it is the value of.
pub(super) struct JsonObj<'a> {
    w: &'a mut PatchWriter,
    first: bool,
    close_op: bool,
    /// The last field of a struct.
    last_field: Option<&'static str>,
    /// Where the last key of a map is in [`PatchWriter::keys`].
    base: usize,
}

impl<'a> JsonObj<'a> {
    fn open(w: &'a mut PatchWriter, close_op: bool) -> JsonObj<'a> {
        w.out.push(b'{');
        let base = w.keys.len();
        JsonObj {
            w,
            first: true,
            close_op,
            last_field: None,
            base,
        }
    }

    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.w.out.push(b',');
        }
    }

    fn close(self) -> Result<(), Unsupported> {
        self.w.keys.truncate(self.base);
        self.w.out.push(b'}');
        if self.close_op {
            self.w.out.push(b'}');
        }
        Ok(())
    }
}

macro_rules! seq_impls {
    ($ty:ty, $element:ident) => {
        impl ser::SerializeSeq for $ty {
            type Ok = ();
            type Error = Unsupported;
            fn serialize_element<T: Serialize + ?Sized>(
                &mut self,
                value: &T,
            ) -> Result<(), Unsupported> {
                self.$element(value)
            }
            fn end(self) -> Result<(), Unsupported> {
                self.close()
            }
        }

        impl ser::SerializeTuple for $ty {
            type Ok = ();
            type Error = Unsupported;
            fn serialize_element<T: Serialize + ?Sized>(
                &mut self,
                value: &T,
            ) -> Result<(), Unsupported> {
                self.$element(value)
            }
            fn end(self) -> Result<(), Unsupported> {
                self.close()
            }
        }

        impl ser::SerializeTupleStruct for $ty {
            type Ok = ();
            type Error = Unsupported;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                value: &T,
            ) -> Result<(), Unsupported> {
                self.$element(value)
            }
            fn end(self) -> Result<(), Unsupported> {
                self.close()
            }
        }
    };
}

seq_impls!(JsonSeq<'_>, element);

impl ser::SerializeMap for JsonObj<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        let had_key = !self.first;
        self.comma();
        let key = self.w.next_key(self.base, had_key, key)?;
        let PatchWriter { out, keys, .. } = &mut *self.w;
        write_str(out, &keys[key]);
        out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(Writer(&mut *self.w))
    }
    fn end(self) -> Result<(), Unsupported> {
        self.close()
    }
}

impl ser::SerializeStruct for JsonObj<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        next_field(&mut self.last_field, key)?;
        self.comma();
        write_field_name(&mut self.w.out, key);
        value.serialize(Writer(&mut *self.w))
    }
    fn end(self) -> Result<(), Unsupported> {
        self.close()
    }
}

/// Serialises `right` while walking `left` beside it, writing the ops of
/// `json_patch::diff(left, right)` at the writer's path.
struct Diff<'w, 'l> {
    w: &'w mut PatchWriter,
    left: &'l Json<'l>,
}

impl Diff<'_, '_> {
    /// A scalar on the right: a `replace` unless `left` equals it.
    fn scalar(self, same: bool, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), Unsupported> {
        if !same {
            self.w.begin_with_value(Op::Replace);
            write(&mut self.w.out);
            self.w.out.push(b'}');
        }
        Ok(())
    }

    fn number(self, n: Number, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), Unsupported> {
        let same = matches!(self.left, Json::Number(left) if *left == n);
        self.scalar(same, write)
    }
}

impl<'w, 'l> ser::Serializer for Diff<'w, 'l> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = DiffSeq<'w, 'l>;
    type SerializeTuple = DiffSeq<'w, 'l>;
    type SerializeTupleStruct = DiffSeq<'w, 'l>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = DiffObj<'w, 'l>;
    type SerializeStruct = DiffObj<'w, 'l>;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        let same = matches!(self.left, Json::Bool(left) if *left == v);
        self.scalar(same, |out| {
            out.extend_from_slice(if v { b"true" } else { b"false" })
        })
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        self.number(Number::from(v), |out| write_json(out, &v))
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        self.number(Number::from(v), |out| write_json(out, &v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        match Number::from_f64(v) {
            Some(n) => self.number(n, |out| write_json(out, &v)),
            // Not finite: `to_value` makes it `null`.
            None => self.serialize_none(),
        }
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        let same = self.left.as_str() == Some(v);
        self.scalar(same, |out| write_str(out, v))
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        let same = self.left.is_null();
        self.scalar(same, |out| out.extend_from_slice(b"null"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<DiffSeq<'w, 'l>, Unsupported> {
        Ok(match self.left {
            Json::Array(left) => DiffSeq::Diff {
                w: self.w,
                left,
                index: 0,
            },
            _ => {
                self.w.begin_with_value(Op::Replace);
                DiffSeq::Replace(JsonSeq::open(self.w, true))
            }
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<DiffSeq<'w, 'l>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<DiffSeq<'w, 'l>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<DiffObj<'w, 'l>, Unsupported> {
        Ok(match self.left {
            Json::Object(left) => {
                let base = self.w.keys.len();
                DiffObj::Diff(ObjDiff {
                    w: self.w,
                    lefts: left.iter().peekable(),
                    removed: Vec::new(),
                    last_field: None,
                    base,
                    had_key: false,
                    key: None,
                })
            }
            _ => {
                self.w.begin_with_value(Op::Replace);
                DiffObj::Replace(JsonObj::open(self.w, true))
            }
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<DiffObj<'w, 'l>, Unsupported> {
        self.serialize_map(Some(len))
    }
    refuse! {
        serialize_f32(f32) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Unsupported>;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Unsupported>;
    }
}

/// An array on the right: diffed item by item against `left`'s, or, when
/// `left` is not an array, the value of a `replace`.
pub(super) enum DiffSeq<'w, 'l> {
    Diff {
        w: &'w mut PatchWriter,
        left: &'l [Json<'l>],
        index: usize,
    },
    Replace(JsonSeq<'w>),
}

impl DiffSeq<'_, '_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        match self {
            DiffSeq::Diff { w, left, index } => {
                let i = *index;
                *index += 1;
                w.at_index(i, |w| match left.get(i) {
                    Some(left) => value.serialize(Diff { w, left }),
                    None => w.add(value),
                })
            }
            DiffSeq::Replace(seq) => seq.element(value),
        }
    }

    fn close(self) -> Result<(), Unsupported> {
        match self {
            // Items the right lacks go one by one, each at the first index
            // past the right's end, as `json_patch::diff` removes them.
            DiffSeq::Diff { w, left, index } => {
                for _ in index..left.len() {
                    w.at_index(index, PatchWriter::remove);
                }
                Ok(())
            }
            DiffSeq::Replace(seq) => seq.close(),
        }
    }
}

seq_impls!(DiffSeq<'_, '_>, element);

/// An object on the right: diffed key by key against `left`'s, or, when
/// `left` is not an object, the value of a `replace`.
pub(super) enum DiffObj<'w, 'l> {
    Diff(ObjDiff<'w, 'l>),
    Replace(JsonObj<'w>),
}

/// Both sides' keys come sorted, so one walk pairs them: the left's keys
/// passed over on the way are the ones the right lacks, removed at the end.
pub(super) struct ObjDiff<'w, 'l> {
    w: &'w mut PatchWriter,
    lefts: std::iter::Peekable<Lefts<'l>>,
    removed: Vec<&'l str>,
    last_field: Option<&'static str>,
    /// Where the last key of a map is in [`PatchWriter::keys`].
    base: usize,
    /// Whether the map had a key yet.
    had_key: bool,
    /// The map key whose value comes next.
    key: Option<Range<usize>>,
}

/// The entries of the left's object.
type Lefts<'l> = std::slice::Iter<'l, (std::borrow::Cow<'l, str>, Json<'l>)>;

/// A key of the right's object: a struct's field or a map key (its range in
/// [`PatchWriter::keys`]).
enum Key {
    Field(&'static str),
    Map(Range<usize>),
}

impl<'l> ObjDiff<'_, 'l> {
    /// The left's value of `key`, after noting the left's keys before it.
    fn pair(
        lefts: &mut std::iter::Peekable<Lefts<'l>>,
        removed: &mut Vec<&'l str>,
        key: &str,
    ) -> Option<&'l Json<'l>> {
        while let Some((left_key, left)) = lefts.peek().copied() {
            match compare(left_key, key) {
                std::cmp::Ordering::Less => removed.push(left_key),
                std::cmp::Ordering::Equal => {
                    lefts.next();
                    return Some(left);
                }
                std::cmp::Ordering::Greater => return None,
            }
            lefts.next();
        }
        None
    }

    fn entry<T: Serialize + ?Sized>(&mut self, key: Key, value: &T) -> Result<(), Unsupported> {
        let ObjDiff {
            w, lefts, removed, ..
        } = self;
        let len = w.path.len();
        let left = {
            let PatchWriter {
                path,
                keys,
                escape_from,
                ..
            } = &mut **w;
            let key = match &key {
                Key::Field(name) => {
                    debug_assert!(field_name_is_plain(name), "field name {name:?}");
                    path.push('/');
                    path.push_str(name);
                    name
                }
                Key::Map(range) => {
                    let key = &keys[range.clone()];
                    if push_token(path, key) {
                        escape_from.get_or_insert(len);
                    }
                    key
                }
            };
            Self::pair(lefts, removed, key)
        };
        match left {
            Some(left) => value.serialize(Diff { w, left })?,
            None => w.add(value)?,
        }
        w.truncate_path(len);
        Ok(())
    }

    fn close(mut self) -> Result<(), Unsupported> {
        self.w.keys.truncate(self.base);
        self.removed.extend(self.lefts.map(|(k, _)| k.as_ref()));
        for key in self.removed {
            self.w.at(key, PatchWriter::remove);
        }
        Ok(())
    }
}

impl ser::SerializeMap for DiffObj<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        match self {
            DiffObj::Diff(d) => {
                d.key = Some(d.w.next_key(d.base, d.had_key, key)?);
                d.had_key = true;
                Ok(())
            }
            DiffObj::Replace(obj) => ser::SerializeMap::serialize_key(obj, key),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        match self {
            DiffObj::Diff(d) => {
                let key = d.key.take().ok_or(Unsupported)?;
                d.entry(Key::Map(key), value)
            }
            DiffObj::Replace(obj) => ser::SerializeMap::serialize_value(obj, value),
        }
    }
    fn end(self) -> Result<(), Unsupported> {
        match self {
            DiffObj::Diff(d) => d.close(),
            DiffObj::Replace(obj) => obj.close(),
        }
    }
}

impl ser::SerializeStruct for DiffObj<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        match self {
            DiffObj::Diff(d) => {
                next_field(&mut d.last_field, key)?;
                d.entry(Key::Field(key), value)
            }
            DiffObj::Replace(obj) => ser::SerializeStruct::serialize_field(obj, key, value),
        }
    }
    fn end(self) -> Result<(), Unsupported> {
        match self {
            DiffObj::Diff(d) => d.close(),
            DiffObj::Replace(obj) => obj.close(),
        }
    }
}

/// Reads a map key into a string: string keys only (others are
/// [`Unsupported`]).
struct KeyInto<'a>(&'a mut String);

impl ser::Serializer for KeyInto<'_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Impossible<(), Unsupported>;
    type SerializeTuple = Impossible<(), Unsupported>;
    type SerializeTupleStruct = Impossible<(), Unsupported>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = Impossible<(), Unsupported>;
    type SerializeStruct = Impossible<(), Unsupported>;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.0.push_str(v);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    refuse! {
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Impossible<(), Unsupported>;
        serialize_tuple(usize) -> Impossible<(), Unsupported>;
        serialize_tuple_struct(&'static str, usize) -> Impossible<(), Unsupported>;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Unsupported>;
        serialize_map(Option<usize>) -> Impossible<(), Unsupported>;
        serialize_struct(&'static str, usize) -> Impossible<(), Unsupported>;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Unsupported>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(f: impl FnOnce(&mut PatchWriter) -> Result<(), Unsupported>) -> Option<String> {
        let mut writer = PatchWriter::new();
        writer.at("spec", f).ok()?;
        writer.finish().map(|w| String::from_utf8(w).unwrap())
    }

    #[test]
    fn array_indexes_of_one_and_more_digits_are_written_in_paths() {
        let left = serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let mut right = left.clone();
        right[3] = 33.into();
        right[12] = 1212.into();
        assert_eq!(
            written(|w| w.diff(&Json::from(&left), &right)).unwrap(),
            serde_json::to_string(&serde_json::json!([
                {"op": "replace", "path": "/spec/3", "value": 33},
                {"op": "replace", "path": "/spec/12", "value": 1212},
            ]))
            .unwrap()
        );
    }

    #[test]
    fn the_environments_field_names_need_no_escaping() {
        use kube::CustomResourceExt as _;
        // Every property name of the Environment's schema, at any depth
        // (what its types serialise as struct fields), and the admission's own.
        fn names(schema: &serde_json::Value, out: &mut Vec<String>) {
            match schema {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::Object(properties)) = map.get("properties") {
                        out.extend(properties.keys().cloned());
                    }
                    map.values().for_each(|v| names(v, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| names(v, out)),
                _ => {}
            }
        }
        let crd = serde_json::to_value(ephemeral_core::Environment::crd()).unwrap();
        let mut found = vec!["annotations".to_owned()];
        names(&crd, &mut found);
        assert!(found.len() > 30, "{found:?}");
        for name in found {
            assert!(field_name_is_plain(&name), "{name:?}");
        }
        assert!(!field_name_is_plain("a/b") && !field_name_is_plain("a~b"));
        assert!(!field_name_is_plain("a\"b") && !field_name_is_plain("a\\b"));
    }

    #[test]
    fn paths_are_escaped_exactly_while_a_key_that_needs_it_is_on_them() {
        let left = serde_json::json!({
            "a\"b": {"x": 1, "y\\z": {"q": 1}},
            "c": {"d": 1},
            "e~/\n": 1,
            "f": [1]
        });
        let right = serde_json::json!({
            "a\"b": {"x": 2, "y\\z": {"q": 2}, "w": 3},
            "c": {"d": 2},
            "e~/\n": 2,
            "f": [2]
        });
        let reference = json_patch::diff(
            &serde_json::json!({ "spec": left }),
            &serde_json::json!({ "spec": right }),
        );
        let reference = serde_json::to_string(&reference).unwrap();
        assert!(reference.contains(r#""path":"/spec/c/d""#), "{reference}");
        assert!(
            reference.contains(r#""path":"/spec/a\"b/y\\z/q""#),
            "{reference}"
        );
        assert_eq!(
            written(|w| w.diff(&Json::from(&left), &right)).unwrap(),
            reference
        );
    }

    #[test]
    fn keys_compare_as_strings_do() {
        let keys = [
            "", "a", "ab", "abc", "b", "ba", "apps", "appsX", "Apps", "~", "é", "éa", "\u{0}",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(compare(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn every_byte_that_needs_an_escape_is_found_at_every_position() {
        let json = |b: &[u8]| b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
        let pointer = |b: &[u8]| b.iter().any(|&c| c == b'~' || c == b'/');
        type Check<'a> = &'a dyn Fn(&[u8]) -> bool;
        let checks: [(Check, Check); 2] = [
            (&needs_escape, &json),
            (
                &|b| any_marked(b, pointer_escapes, |c| c == b'~' || c == b'/'),
                &pointer,
            ),
        ];
        for (check, naive) in checks {
            for len in 0..=24 {
                for at in 0..len {
                    for byte in 0..=u8::MAX {
                        // Plain bytes around, high ones included (UTF-8 tails).
                        let mut s: Vec<u8> =
                            (0..len).map(|i| [b'a', 0xc3, b'.', 0x7f][i % 4]).collect();
                        s[at] = byte;
                        assert_eq!(check(&s), naive(&s), "{s:?}");
                    }
                }
                let plain: Vec<u8> = (0..len).map(|i| b' ' + (i as u8 % 90)).collect();
                assert_eq!(check(&plain), naive(&plain), "{plain:?}");
            }
        }
    }

    #[test]
    fn every_string_of_up_to_24_characters_is_written_as_serde_json_writes_it() {
        // Each character that needs an escape (and a few that do not, of
        // every UTF-8 length) at every position of plain strings, after
        // whatever the buffer already holds.
        let special = [
            '\u{0}', '\u{1f}', '"', '\\', ' ', 'A', '~', '\u{7f}', 'é', '€', '🚀',
        ];
        for len in 0..=24 {
            for at in 0..len.max(1) {
                for c in special {
                    let mut s: String = (0..len).map(|i| ['a', '.', 'z', '-'][i % 4]).collect();
                    if len > 0 {
                        s.replace_range(at..=at, c.encode_utf8(&mut [0; 4]));
                    }
                    let mut out = b"[".to_vec();
                    write_str(&mut out, &s);
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        format!("[{}", serde_json::to_string(&s).unwrap()),
                        "{s:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "plain",
            "feature-new-basket-and-a-longer-tail-than-one-vector",
            "quote \" inside",
            "back\\slash",
            "new\nline and tab\t",
            "\u{1}\u{1f} controls",
            "ünïcödé ✓ 🚀",
            "/spec/apps/10/imageTagPrefix\"",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    /// A map written key by key, in the order given, repeats included.
    struct Entries(Vec<(&'static str, u32)>);

    impl Serialize for Entries {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeMap as _;
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }

    /// A struct whose fields come in the order given.
    struct Fields(&'static [&'static str]);

    impl Serialize for Fields {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeStruct as _;
            let mut fields = s.serialize_struct("Fields", self.0.len())?;
            for k in self.0 {
                fields.serialize_field(k, &1)?;
            }
            fields.end()
        }
    }

    #[test]
    fn sorted_maps_are_written_key_by_key_as_serde_json_writes_them() {
        // The empty key, a key that is a prefix of the next, keys alike in
        // their first bytes, a key JSON must escape, a map nested in a map.
        let entries = Entries(vec![
            ("", 1),
            ("a", 2),
            ("namespac", 3),
            ("namespac\"", 4),
            ("namespace", 5),
            ("namespaceA", 6),
        ]);
        let nested = serde_json::json!({"": {"b": [{"z": 1, "é": 2}]}, "a": {"": null}});
        for value in [serde_json::to_value(&entries).unwrap(), nested] {
            let expected = serde_json::to_string(&serde_json::json!([
                {"op": "add", "path": "/spec", "value": value},
            ]))
            .unwrap();
            assert_eq!(written(|w| w.add(&value)).unwrap(), expected);
        }
        assert_eq!(
            written(|w| w.add(&entries)).unwrap(),
            format!(
                r#"[{{"op":"add","path":"/spec","value":{}}}]"#,
                serde_json::to_string(&serde_json::to_value(&entries).unwrap()).unwrap()
            )
        );
    }

    #[test]
    fn keys_out_of_order_or_repeated_are_refused_for_the_value_route() {
        // A `Value` map would sort and deduplicate these: one pass cannot.
        let left = serde_json::json!({"a": 1, "b": 1, "namespace": 1});
        let maps = [
            Entries(vec![("b", 1), ("a", 2)]),
            Entries(vec![("a", 1), ("a", 2)]),
            Entries(vec![("", 1), ("", 2)]),
            Entries(vec![("namespaceA", 1), ("namespace", 2)]),
        ];
        for map in &maps {
            assert_eq!(written(|w| w.add(map)), None);
            assert_eq!(written(|w| w.diff(&Json::from(&left), map)), None);
            assert_eq!(written(|w| w.diff(&Json::Null, map)), None);
        }
        for fields in [&["b", "a"][..], &["a", "a"], &["namespaceA", "namespace"]] {
            assert_eq!(written(|w| w.add(&Fields(fields))), None);
            assert_eq!(
                written(|w| w.diff(&Json::from(&left), &Fields(fields))),
                None
            );
        }
        // Nested: the inner object's keys are checked on their own.
        let nested = vec![Entries(vec![("a", 1)]), Entries(vec![("b", 1), ("a", 1)])];
        assert_eq!(written(|w| w.add(&nested)), None);
        // Sorted ones pass, in both routes.
        assert!(written(|w| w.add(&Fields(&["a", "b", "namespace"]))).is_some());
        assert!(written(|w| w.diff(&Json::from(&left), &Fields(&["a", "c"]))).is_some());
    }

    #[test]
    fn shapes_the_writer_does_not_model_are_refused() {
        let keyed_by_numbers: std::collections::BTreeMap<u8, u8> = [(1, 2)].into();
        assert_eq!(written(|w| w.add(&keyed_by_numbers)), None);
        assert_eq!(written(|w| w.add(&1.5f32)), None);
        assert_eq!(written(|w| w.diff(&Json::Null, &1.5f32)), None);
        assert_eq!(written(|w| w.add(&1u128)), None);
    }
}
