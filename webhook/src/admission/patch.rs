// Over 400 lines of non-test code: a serde Serializer into a flat tree (the trait's many methods are required boilerplate) and the diff walk over it; apart they would share every private type.
//! The JSONPatch of a mutation, written straight to its JSON bytes.
//!
//! [`PatchWriter::diff`] writes what
//! `serde_json::to_vec(&json_patch::diff(old, &serde_json::to_value(new)?))`
//! would, op for op and byte for byte, without building `new` as a
//! `serde_json::Value`, cloning subtrees into ops or keeping a list of ops:
//! `new` is serialised once into a flat [`Tree`] (one buffer for all text,
//! one for all nodes, object keys sorted as a `Value`'s map sorts them), which
//! is walked against `old` as `json_patch::diff` walks two `Value`s.
//!
//! The few shapes the tree does not take (non-string map keys, enum variants
//! with data, 128-bit integers, byte strings, `f32`) are reported as
//! [`Unsupported`]; callers then take the `Value` route.

use std::ops::Range;

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::{Map, Number, Value};

/// A value the [`Tree`] does not model; use `serde_json::to_value` instead.
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

type Id = u32;

#[derive(Clone, Debug)]
enum Node {
    Null,
    Bool(bool),
    Number(Number),
    /// A range of [`Tree::text`].
    Str(Range<usize>),
    /// A range of [`Tree::items`].
    Array(Range<usize>),
    /// A range of [`Tree::entries`], sorted by key, keys unique.
    Object(Range<usize>),
}

/// What `serde_json::to_value` would give, flattened.
#[derive(Debug)]
pub(super) struct Tree {
    nodes: Vec<Node>,
    text: String,
    items: Vec<Id>,
    /// Key (a range of `text`) and value of object entries.
    entries: Vec<(Range<usize>, Id)>,
    /// Children of the containers being built, moved to `items` or
    /// `entries` when their container ends.
    pending_items: Vec<Id>,
    pending_entries: Vec<Pending>,
    /// How much of `text` [`Tree::check_text`] has looked at, and whether
    /// all of it can be written as JSON without escapes.
    checked: usize,
    plain: bool,
}

/// An entry of an object being built: its key's first bytes (see
/// [`key_prefix`]) make most comparisons of the sort one integer compare.
#[derive(Debug)]
struct Pending {
    prefix: u64,
    key: Range<usize>,
    id: Id,
}

/// The first 8 bytes of `key`, zero-padded, big-endian: ordering prefixes
/// orders keys, except that equal prefixes need the whole keys compared.
fn key_prefix(key: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[..n].copy_from_slice(&key.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
}

impl Default for Tree {
    fn default() -> Tree {
        Tree {
            nodes: Vec::new(),
            text: String::new(),
            items: Vec::new(),
            entries: Vec::new(),
            pending_items: Vec::new(),
            pending_entries: Vec::new(),
            checked: 0,
            plain: true,
        }
    }
}

impl Tree {
    /// Empties the tree, keeping its buffers.
    fn clear(&mut self) {
        self.nodes.clear();
        self.text.clear();
        self.items.clear();
        self.entries.clear();
        self.pending_items.clear();
        self.pending_entries.clear();
        self.checked = 0;
        self.plain = true;
    }

    /// Bytes of buffer the tree holds.
    fn capacity_bytes(&self) -> usize {
        use std::mem::size_of;
        self.nodes.capacity() * size_of::<Node>()
            + self.text.capacity()
            + (self.items.capacity() + self.pending_items.capacity()) * size_of::<Id>()
            + self.entries.capacity() * size_of::<(Range<usize>, Id)>()
            + self.pending_entries.capacity() * size_of::<Pending>()
    }

    /// Serialises `value` into the tree; the root's id.
    fn add<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<Id, Unsupported> {
        value.serialize(&mut *self)
    }

    fn push(&mut self, node: Node) -> Id {
        self.nodes.push(node);
        (self.nodes.len() - 1) as Id
    }

    fn push_str(&mut self, s: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    fn str(&self, range: &Range<usize>) -> &str {
        &self.text[range.clone()]
    }

    fn node(&self, id: Id) -> &Node {
        &self.nodes[id as usize]
    }

    fn end_array(&mut self, start: usize) -> Id {
        let from = self.items.len();
        self.items.extend(self.pending_items.drain(start..));
        let to = self.items.len();
        self.push(Node::Array(from..to))
    }

    /// Sorts the entries by key and keeps the last of equal keys, as
    /// inserting them one by one into a `serde_json::Map` does.
    fn end_object(&mut self, start: usize) -> Id {
        let from = self.entries.len();
        let text = &self.text;
        // Stable, so that of equal keys the last one written stays last.
        self.pending_entries[start..].sort_by(|a, b| {
            a.prefix
                .cmp(&b.prefix)
                .then_with(|| text[a.key.clone()].cmp(&text[b.key.clone()]))
        });
        for Pending { key, id, .. } in self.pending_entries.drain(start..) {
            match self.entries[from..].last_mut() {
                Some(last) if text[last.0.clone()] == text[key.clone()] => last.1 = id,
                _ => self.entries.push((key, id)),
            }
        }
        let to = self.entries.len();
        self.push(Node::Object(from..to))
    }

    /// Notes whether the text added since the last check has anything JSON
    /// must escape; [`Tree::write`] copies strings as they are while nothing
    /// in the tree has. One pass over the whole text is much cheaper than one
    /// check per (short) string.
    fn check_text(&mut self) {
        if self.plain {
            self.plain = !needs_escape(&self.text.as_bytes()[self.checked..]);
        }
        self.checked = self.text.len();
    }

    fn entries(&self, range: &Range<usize>) -> &[(Range<usize>, Id)] {
        &self.entries[range.clone()]
    }

    fn find(&self, range: &Range<usize>, key: &str) -> Option<Id> {
        let entries = self.entries(range);
        entries
            .binary_search_by(|(k, _)| self.str(k).cmp(key))
            .ok()
            .map(|i| entries[i].1)
    }

    /// Whether `left` equals the node (for anything but two objects or two
    /// arrays, which are diffed instead).
    fn equals(&self, left: &Value, id: Id) -> bool {
        match (left, self.node(id)) {
            (Value::Null, Node::Null) => true,
            (Value::Bool(a), Node::Bool(b)) => a == b,
            (Value::Number(a), Node::Number(b)) => a == b,
            (Value::String(a), Node::Str(b)) => a == self.str(b),
            (Value::Array(a), Node::Array(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(&self.items[b.clone()])
                        .all(|(l, r)| self.equals(l, *r))
            }
            (Value::Object(a), Node::Object(b)) => {
                let entries = self.entries(b);
                a.len() == entries.len()
                    && a.iter()
                        .zip(entries)
                        .all(|((lk, lv), (rk, rv))| lk == self.str(rk) && self.equals(lv, *rv))
            }
            _ => false,
        }
    }

    /// Writes a string of the text as JSON ([`Tree::check_text`] must have
    /// seen it).
    fn write_text(&self, range: &Range<usize>, out: &mut Vec<u8>) {
        debug_assert!(range.end <= self.checked);
        let s = self.str(range);
        if self.plain {
            write_plain(out, s);
        } else {
            write_str(out, s);
        }
    }

    /// Writes the node as `serde_json::to_writer` writes the `Value`.
    fn write(&self, id: Id, out: &mut Vec<u8>) {
        match self.node(id) {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(true) => out.extend_from_slice(b"true"),
            Node::Bool(false) => out.extend_from_slice(b"false"),
            Node::Number(n) => write_json(out, n),
            Node::Str(s) => self.write_text(s, out),
            Node::Array(items) => {
                out.push(b'[');
                for (i, item) in self.items[items.clone()].iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.write(*item, out);
                }
                out.push(b']');
            }
            Node::Object(entries) => {
                out.push(b'{');
                for (i, (key, value)) in self.entries(entries).iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.write_text(key, out);
                    out.push(b':');
                    self.write(*value, out);
                }
                out.push(b'}');
            }
        }
    }
}

/// Appends `/token` to a JSON pointer, escaping `~` and `/` (RFC 6901).
fn push_token(path: &mut String, token: &str) {
    path.push('/');
    if !token.bytes().any(|b| b == b'~' || b == b'/') {
        path.push_str(token);
        return;
    }
    for c in token.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

/// Whether any byte of `bytes` must be escaped in a JSON string.
fn needs_escape(bytes: &[u8]) -> bool {
    // A fold without an early exit, so that the compiler checks many bytes
    // per instruction.
    bytes.iter().fold(false, |escape, &b| {
        escape | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// Writes a string with nothing to escape as a JSON string.
fn write_plain(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Writes a JSON string as `serde_json` does; strings with nothing to
/// escape (nearly all) are copied as they are.
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        write_json(out, s);
    } else {
        write_plain(out, s);
    }
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("strings and numbers always serialise");
}

/// Writes JSONPatch ops as `serde_json::to_vec(&json_patch::Patch)` does.
#[derive(Debug)]
pub(super) struct PatchWriter {
    out: Vec<u8>,
    /// The JSON pointer of the current position, tokens escaped.
    path: String,
    ops: usize,
    tree: Tree,
}

impl PatchWriter {
    pub(super) fn new() -> PatchWriter {
        let mut out = Vec::with_capacity(4096);
        out.push(b'[');
        PatchWriter {
            out,
            path: String::with_capacity(64),
            ops: 0,
            tree: spare::take(),
        }
    }

    /// Runs `f` with `token` appended to the current path.
    pub(super) fn at<R>(&mut self, token: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.path.len();
        push_token(&mut self.path, token);
        let r = f(self);
        self.path.truncate(len);
        r
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
        self.path.truncate(len);
        r
    }

    fn op(&mut self, op: &str, value: Option<Id>) {
        if self.ops > 0 {
            self.out.push(b',');
        }
        self.ops += 1;
        self.out.extend_from_slice(b"{\"op\":\"");
        self.out.extend_from_slice(op.as_bytes());
        self.out.extend_from_slice(b"\",\"path\":");
        write_str(&mut self.out, &self.path);
        if let Some(id) = value {
            self.tree.check_text();
            self.out.extend_from_slice(b",\"value\":");
            self.tree.write(id, &mut self.out);
        }
        self.out.push(b'}');
    }

    /// An `add` of `value` at the current path.
    pub(super) fn add<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        let id = self.tree.add(value)?;
        self.op("add", Some(id));
        Ok(())
    }

    /// A `replace` with `value` at the current path.
    pub(super) fn replace<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        let id = self.tree.add(value)?;
        self.op("replace", Some(id));
        Ok(())
    }

    /// The ops `json_patch::diff(left, &to_value(right))` gives, at the
    /// current path.
    pub(super) fn diff<T: Serialize + ?Sized>(
        &mut self,
        left: &Value,
        right: &T,
    ) -> Result<(), Unsupported> {
        let id = self.tree.add(right)?;
        self.diff_node(left, id);
        Ok(())
    }

    fn diff_node(&mut self, left: &Value, right: Id) {
        match (left, self.tree.node(right).clone()) {
            (Value::Object(left), Node::Object(entries)) => self.diff_object(left, entries),
            (Value::Array(left), Node::Array(items)) => self.diff_array(left, items),
            _ if self.tree.equals(left, right) => {}
            _ => self.op("replace", Some(right)),
        }
    }

    fn diff_object(&mut self, left: &Map<String, Value>, entries: Range<usize>) {
        // Both sides are sorted by key (a `Map` is a `BTreeMap`; the tree
        // sorts its entries the same way), so one walk pairs them.
        let mut lefts = left.iter().peekable();
        let mut paired = 0usize;
        for i in entries.clone() {
            let (key, right) = self.tree.entries[i].clone();
            let key = &self.tree.text[key];
            let left = loop {
                match lefts.peek().map(|(k, v)| (k.as_str().cmp(key), *v)) {
                    Some((std::cmp::Ordering::Less, _)) => {
                        lefts.next();
                    }
                    Some((std::cmp::Ordering::Equal, v)) => {
                        lefts.next();
                        paired += 1;
                        break Some(v);
                    }
                    _ => break None,
                }
            };
            let len = self.path.len();
            push_token(&mut self.path, key);
            match left {
                Some(left) => self.diff_node(left, right),
                None => self.op("add", Some(right)),
            }
            self.path.truncate(len);
        }
        if paired == left.len() {
            return;
        }
        for key in left.keys() {
            if self.tree.find(&entries, key).is_none() {
                self.at(key, |w| w.op("remove", None));
            }
        }
    }

    fn diff_array(&mut self, left: &[Value], items: Range<usize>) {
        let right = |w: &Self, index: usize| {
            (index < items.len()).then(|| w.tree.items[items.start + index])
        };
        let mut shift = 0usize;
        for index in 0..left.len().max(items.len()) {
            let right = right(self, index);
            self.at_index(index - shift, |w| match (left.get(index), right) {
                (Some(left), Some(right)) => w.diff_node(left, right),
                (Some(_), None) => {
                    shift += 1;
                    w.op("remove", None);
                }
                (None, Some(right)) => w.op("add", Some(right)),
                (None, None) => unreachable!("index below the longer length"),
            });
        }
    }

    /// The patch's JSON, or `None` when it has no op.
    pub(super) fn finish(mut self) -> Option<Vec<u8>> {
        if self.ops == 0 {
            return None;
        }
        let mut out = std::mem::take(&mut self.out);
        out.push(b']');
        Some(out)
    }
}

impl Drop for PatchWriter {
    fn drop(&mut self) {
        spare::put(std::mem::take(&mut self.tree));
    }
}

/// One spare [`Tree`] per thread, so that the tree's buffers (a few KiB
/// each for an Environment of ten apps) are allocated once per thread rather
/// than once per request: with glibc's allocator, buffers that size are
/// neither cached per thread nor cheap to free from another thread, and
/// allocating them per request cost more than the diff itself. A tree that
/// grew past [`spare::KEEP_BYTES`] for an unusually large Environment is
/// dropped instead of kept.
mod spare {
    use std::cell::Cell;

    use super::Tree;

    /// Largest tree kept for the next request, in bytes of buffer capacity.
    pub(super) const KEEP_BYTES: usize = 256 * 1024;

    thread_local! {
        static SPARE: Cell<Option<Tree>> = const { Cell::new(None) };
    }

    /// The thread's spare tree, empty, or a new one with room for an
    /// Environment of a few dozen apps.
    pub(super) fn take() -> Tree {
        SPARE.take().unwrap_or_else(|| Tree {
            nodes: Vec::with_capacity(512),
            text: String::with_capacity(4096),
            items: Vec::with_capacity(64),
            entries: Vec::with_capacity(512),
            pending_items: Vec::with_capacity(64),
            pending_entries: Vec::with_capacity(128),
            checked: 0,
            plain: true,
        })
    }

    /// Keeps `tree`, emptied, as the thread's spare (unless it is too big).
    pub(super) fn put(mut tree: Tree) {
        if tree.capacity_bytes() > KEEP_BYTES {
            return;
        }
        tree.clear();
        SPARE.set(Some(tree));
    }
}

// Building the tree: `serde_json::value::Serializer`'s rules, for the shapes
// modelled.

impl<'a> ser::Serializer for &'a mut Tree {
    type Ok = Id;
    type Error = Unsupported;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Impossible<Id, Unsupported>;
    type SerializeMap = Obj<'a>;
    type SerializeStruct = Obj<'a>;
    type SerializeStructVariant = Impossible<Id, Unsupported>;

    fn serialize_bool(self, v: bool) -> Result<Id, Unsupported> {
        Ok(self.push(Node::Bool(v)))
    }
    fn serialize_i8(self, v: i8) -> Result<Id, Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Id, Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Id, Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Id, Unsupported> {
        Ok(self.push(Node::Number(Number::from(v))))
    }
    fn serialize_u8(self, v: u8) -> Result<Id, Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Id, Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Id, Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Id, Unsupported> {
        Ok(self.push(Node::Number(Number::from(v))))
    }
    fn serialize_f32(self, _: f32) -> Result<Id, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_f64(self, v: f64) -> Result<Id, Unsupported> {
        Ok(self.push(Number::from_f64(v).map_or(Node::Null, Node::Number)))
    }
    fn serialize_char(self, v: char) -> Result<Id, Unsupported> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<Id, Unsupported> {
        let range = self.push_str(v);
        Ok(self.push(Node::Str(range)))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<Id, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_none(self) -> Result<Id, Unsupported> {
        Ok(self.push(Node::Null))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Id, Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Id, Unsupported> {
        Ok(self.push(Node::Null))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Id, Unsupported> {
        Ok(self.push(Node::Null))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Id, Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Id, Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Id, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Seq<'a>, Unsupported> {
        let start = self.pending_items.len();
        Ok(Seq { tree: self, start })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Obj<'a>, Unsupported> {
        let start = self.pending_entries.len();
        Ok(Obj {
            tree: self,
            start,
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Obj<'a>, Unsupported> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported)
    }
}

pub(super) struct Seq<'a> {
    tree: &'a mut Tree,
    start: usize,
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        let id = value.serialize(&mut *self.tree)?;
        self.tree.pending_items.push(id);
        Ok(())
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = Id;
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<Id, Unsupported> {
        Ok(self.tree.end_array(self.start))
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = Id;
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<Id, Unsupported> {
        Ok(self.tree.end_array(self.start))
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = Id;
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<Id, Unsupported> {
        Ok(self.tree.end_array(self.start))
    }
}

pub(super) struct Obj<'a> {
    tree: &'a mut Tree,
    start: usize,
    key: Option<Range<usize>>,
}

impl Obj<'_> {
    fn entry<T: Serialize + ?Sized>(
        &mut self,
        key: Range<usize>,
        value: &T,
    ) -> Result<(), Unsupported> {
        let id = value.serialize(&mut *self.tree)?;
        let prefix = key_prefix(&self.tree.text[key.clone()]);
        self.tree.pending_entries.push(Pending { prefix, key, id });
        Ok(())
    }
}

impl ser::SerializeMap for Obj<'_> {
    type Ok = Id;
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        self.key = Some(key.serialize(KeySerializer(&mut *self.tree))?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        let key = self.key.take().ok_or(Unsupported)?;
        self.entry(key, value)
    }
    fn end(self) -> Result<Id, Unsupported> {
        Ok(self.tree.end_object(self.start))
    }
}

impl ser::SerializeStruct for Obj<'_> {
    type Ok = Id;
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        let key = self.tree.push_str(key);
        self.entry(key, value)
    }
    fn end(self) -> Result<Id, Unsupported> {
        Ok(self.tree.end_object(self.start))
    }
}

/// Map keys: strings only (others are [`Unsupported`]).
struct KeySerializer<'a>(&'a mut Tree);

impl ser::Serializer for KeySerializer<'_> {
    type Ok = Range<usize>;
    type Error = Unsupported;
    type SerializeSeq = Impossible<Range<usize>, Unsupported>;
    type SerializeTuple = Impossible<Range<usize>, Unsupported>;
    type SerializeTupleStruct = Impossible<Range<usize>, Unsupported>;
    type SerializeTupleVariant = Impossible<Range<usize>, Unsupported>;
    type SerializeMap = Impossible<Range<usize>, Unsupported>;
    type SerializeStruct = Impossible<Range<usize>, Unsupported>;
    type SerializeStructVariant = Impossible<Range<usize>, Unsupported>;

    fn serialize_str(self, v: &str) -> Result<Range<usize>, Unsupported> {
        Ok(self.0.push_str(v))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Range<usize>, Unsupported> {
        value.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_i8(self, _: i8) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_i16(self, _: i16) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_i32(self, _: i32) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_i64(self, _: i64) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_u8(self, _: u8) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_u16(self, _: u16) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_u32(self, _: u32) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_u64(self, _: u64) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_f32(self, _: f32) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_f64(self, _: f64) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_char(self, _: char) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_none(self) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_unit(self) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Range<usize>, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_indexes_of_one_and_more_digits_are_written_in_paths() {
        let left = serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let mut right = left.clone();
        right[3] = 33.into();
        right[12] = 1212.into();
        let mut writer = PatchWriter::new();
        writer.at("spec", |w| w.diff(&left, &right)).unwrap();
        assert_eq!(
            String::from_utf8(writer.finish().unwrap()).unwrap(),
            serde_json::to_string(&serde_json::json!([
                {"op": "replace", "path": "/spec/3", "value": 33},
                {"op": "replace", "path": "/spec/12", "value": 1212},
            ]))
            .unwrap()
        );
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

    /// A map written key by key, repeats included.
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

    #[test]
    fn objects_are_sorted_and_deduplicated_as_a_value_map_does() {
        // Keys alike in their first 8 bytes (the sort's integer prefix), a
        // key that is a prefix of another, the empty key, and repeats whose
        // last value must win; with and without a key JSON must escape.
        let keys = vec![
            ("namespaceB", 1),
            ("namespace", 2),
            ("namespaceA", 3),
            ("a", 4),
            ("namespace", 5),
            ("", 6),
            ("namespac", 7),
            ("a", 8),
            ("namespaceA", 9),
        ];
        let mut escaped = keys.clone();
        escaped.push(("namespac\"", 10));
        for entries in [Entries(keys), Entries(escaped)] {
            let mut writer = PatchWriter::new();
            writer.at("spec", |w| w.add(&entries)).unwrap();
            let value = serde_json::to_value(&entries).unwrap();
            assert_eq!(
                String::from_utf8(writer.finish().unwrap()).unwrap(),
                serde_json::to_string(&serde_json::json!([
                    {"op": "add", "path": "/spec", "value": value},
                ]))
                .unwrap()
            );
        }
    }

    #[test]
    fn a_tree_grown_past_the_bound_is_not_kept_for_the_next_request() {
        let mut writer = PatchWriter::new();
        let big: Vec<String> = (0..20_000).map(|i| format!("item-{i:08}")).collect();
        writer.at("spec", |w| w.add(&big)).unwrap();
        assert!(writer.tree.capacity_bytes() > spare::KEEP_BYTES);
        drop(writer);
        let next = spare::take();
        assert!(
            next.capacity_bytes() <= spare::KEEP_BYTES,
            "{}",
            next.capacity_bytes()
        );
        assert!(next.nodes.is_empty() && next.text.is_empty());
    }

    #[test]
    fn a_tree_within_the_bound_is_kept_empty_with_its_buffers() {
        let mut writer = PatchWriter::new();
        writer.at("spec", |w| w.add(&vec!["x"; 2_000])).unwrap();
        let grown = writer.tree.nodes.capacity();
        drop(writer);
        let next = spare::take();
        assert_eq!(next.nodes.capacity(), grown);
        assert!(next.nodes.is_empty() && next.items.is_empty() && next.text.is_empty());
    }
}
