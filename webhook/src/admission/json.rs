//! The objects of an AdmissionReview (`request.object`, `request.oldObject`)
//! as read from the body: a JSON tree that borrows its strings from the body
//! (those without escapes, nearly all) and keeps each object's entries in one
//! sorted vector. It is what `serde_json::Value` would hold, for less: no
//! string is copied and no map is built, and dropping it frees a few vectors.
//!
//! Objects keep their keys sorted and unique (of repeated keys the last one
//! wins), exactly as a `Value`'s map keeps them, so everything that walks a
//! `Value` (equality, the JSONPatch diff) walks this the same way. Typed
//! values (the Environment, `ObjectMeta`) are read from it as from a `Value`,
//! with the same errors.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    Visitor,
};
use serde_json::{Number, Value};

/// A JSON value that borrows from the text it was read from.
#[derive(Clone, Debug, PartialEq)]
pub enum Json<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as `serde_json` reads it.
    Number(Number),
    /// A string.
    Str(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object, its entries sorted by key, keys unique.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// The value of `key`, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        let Json::Object(entries) = self else {
            return None;
        };
        entries
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &entries[i].1)
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// Sorts entries read in document order and keeps the last of equal keys,
    /// as inserting them one by one into a `Value`'s map does.
    fn object(mut entries: Vec<(Cow<'a, str>, Json<'a>)>) -> Json<'a> {
        if entries.is_sorted_by(|(a, _), (b, _)| a < b) {
            return Json::Object(entries);
        }
        // Stable, so that of equal keys the last one read stays last; in
        // place: the first entry of a run of equal keys takes the value of
        // each later one, which then goes.
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
        Json::Object(entries)
    }

    /// The same value, owning its strings.
    pub fn into_owned(self) -> Json<'static> {
        match self {
            Json::Null => Json::Null,
            Json::Bool(b) => Json::Bool(b),
            Json::Number(n) => Json::Number(n),
            Json::Str(s) => Json::Str(Cow::Owned(s.into_owned())),
            Json::Array(items) => Json::Array(items.into_iter().map(Json::into_owned).collect()),
            Json::Object(entries) => Json::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
        }
    }

    /// The `Value` this stands for.
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::Str(s) => Value::String(s.to_string()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// What `serde_json` would write for the `Value` this stands for.
    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Json::Null => Unexpected::Unit,
            Json::Bool(b) => Unexpected::Bool(*b),
            Json::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Unexpected::Unsigned(u)
                } else if let Some(i) = n.as_i64() {
                    Unexpected::Signed(i)
                } else {
                    Unexpected::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Json::Str(s) => Unexpected::Str(s),
            Json::Array(_) => Unexpected::Seq,
            Json::Object(_) => Unexpected::Map,
        }
    }
}

impl From<&Value> for Json<'static> {
    fn from(value: &Value) -> Json<'static> {
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::Str(Cow::Owned(s.clone())),
            Value::Array(items) => Json::Array(items.iter().map(Json::from).collect()),
            // A `Value`'s map is sorted and unique already.
            Value::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), Json::from(v)))
                    .collect(),
            ),
        }
    }
}

impl<'de: 'a, 'a> de::Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json<'a>, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(key) = map.next_key::<Text<'de>>()? {
            entries.push((key.0, map.next_value()?));
        }
        Ok(Json::object(entries))
    }
}

/// A string (an object key, a field of the request), borrowed from the body
/// when it has no escapes.
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> de::Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text<'a>, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

// Reading typed values from a tree: `serde_json`'s rules for `&Value`.

impl<'de, 'a> Deserializer<'de> for &'de Json<'a> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(*b),
            Json::Number(n) => n.deserialize_any(visitor),
            Json::Str(s) => visitor.visit_borrowed_str(s),
            Json::Array(items) => {
                let mut seq = Items(items.iter());
                let value = visitor.visit_seq(&mut seq)?;
                if seq.0.len() == 0 {
                    Ok(value)
                } else {
                    Err(de::Error::invalid_length(
                        items.len(),
                        &"fewer elements in array",
                    ))
                }
            }
            Json::Object(entries) => {
                let mut map = Entries {
                    entries: entries.iter(),
                    value: None,
                };
                let value = visitor.visit_map(&mut map)?;
                if map.entries.len() == 0 {
                    Ok(value)
                } else {
                    Err(de::Error::invalid_length(
                        entries.len(),
                        &"fewer elements in map",
                    ))
                }
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Json::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self {
            Json::Str(s) => visitor.visit_enum(s.as_ref().into_deserializer()),
            other => Err(de::Error::invalid_type(
                other.unexpected(),
                &"string or map",
            )),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Json::Str(s) => visitor.visit_borrowed_str(s),
            other => Err(de::Error::invalid_type(other.unexpected(), &visitor)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct
    }
}

struct Items<'de, 'a>(std::slice::Iter<'de, Json<'a>>);

impl<'de> SeqAccess<'de> for Items<'de, '_> {
    type Error = serde_json::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0.next().map(|item| seed.deserialize(item)).transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'de, 'a> {
    entries: std::slice::Iter<'de, (Cow<'a, str>, Json<'a>)>,
    value: Option<&'de Json<'a>>,
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = serde_json::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("value is missing"))?;
        seed.deserialize(value)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects out of order, repeated keys, escapes, numbers of every kind,
    /// nesting, and an Environment as the API server sends one.
    const DOCS: &[&str] = &[
        r#"{"b":1,"a":2,"b":3}"#,
        r#"{"":null,"é":true,"e\u0301":false,"a\"b":"x\ny","z":[1,-2,3.5,1e2,18446744073709551615,-9223372036854775808,0.1,1e300]}"#,
        r#"[{"k":{"k":{"k":[]}}},{},[],"",0,-0,-0.0,"\ud83d\ude80"]"#,
        r#"{"apiVersion":"ephemeral.io/v1alpha1","kind":"Environment","metadata":{"name":"a","namespace":"n","uid":"u","resourceVersion":"7","generation":2,"creationTimestamp":"2026-12-01T10:00:00Z","deletionTimestamp":null,"labels":{"x":"1"},"annotations":{"x":"1","x":"2"},"finalizers":["ephemeral.io/cleanup"],"ownerReferences":[{"apiVersion":"v1","kind":"X","name":"x","uid":"u","controller":true}],"managedFields":[{"manager":"kubectl","operation":"Update","apiVersion":"v1","time":"2026-12-01T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{".":{}}}}]},"spec":{"apps":[{"name":"checkout","branch":"feature/x","helm":{"chart":"c","sourceRef":{"kind":"HelmRepository","name":"r"},"values":{"a":[1,{"b":null}]}}}],"lease":{"until":"2026-12-01T19:00:00Z"}},"status":{"readyApps":"0/1","conditions":[{"type":"Ready","status":"False","reason":"R","message":"m","lastTransitionTime":"2026-12-01T10:00:00Z"}]}}"#,
        r#"{"c":1,"a":1,"c":2,"b":0,"c":3,"a":2,"d":{"y":1,"x":2,"y":3}}"#,
    ];

    #[test]
    fn documents_are_read_as_serde_json_reads_a_value() {
        for doc in DOCS {
            let json: Json = serde_json::from_str(doc).unwrap();
            let value: Value = serde_json::from_str(doc).unwrap();
            assert_eq!(json.to_value(), value, "{doc}");
            assert_eq!(Json::from(&value), json, "{doc}");
            assert_eq!(json.clone().into_owned(), json, "{doc}");
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_text() {
        let doc = r#"{"plain":"text","esc\"aped":"a\nb"}"#;
        let json: Json = serde_json::from_str(doc).unwrap();
        let Json::Object(entries) = &json else {
            panic!("an object: {json:?}");
        };
        assert!(
            matches!(&entries[0], (Cow::Owned(k), Json::Str(Cow::Owned(v))) if k == "esc\"aped" && v == "a\nb")
        );
        assert!(matches!(
            &entries[1],
            (Cow::Borrowed("plain"), Json::Str(Cow::Borrowed("text")))
        ));
        let Json::Object(entries) = json.into_owned() else {
            panic!("still an object");
        };
        assert!(matches!(
            &entries[1],
            (Cow::Owned(_), Json::Str(Cow::Owned(_)))
        ));
    }

    /// What reading `T` from the tree gives, comparably: the value, or the
    /// path and message of the error.
    fn typed<'de, T, D>(from: D) -> Result<Value, (String, String)>
    where
        T: serde::Deserialize<'de> + serde::Serialize,
        D: Deserializer<'de, Error = serde_json::Error>,
    {
        serde_path_to_error::deserialize::<_, T>(from)
            .map(|t| serde_json::to_value(t).unwrap())
            .map_err(|e| (e.path().to_string(), e.inner().to_string()))
    }

    #[test]
    fn typed_values_are_read_as_from_a_value_errors_included() {
        use ephemeral_core::Environment;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let environment = DOCS[3];
        let mut docs: Vec<String> = vec![environment.to_owned()];
        // Each a wrong type, a missing field or too long a list somewhere.
        for (from, to) in [
            (r#""apps":["#, r#""apps":"checkout","x":["#),
            (r#""name":"checkout""#, r#""name":7"#),
            (r#""name":"checkout""#, r#""nom":"checkout""#),
            (r#""generation":2"#, r#""generation":-2.5"#),
            (r#""generation":2"#, r#""generation":"2""#),
            (r#""controller":true"#, r#""controller":"yes""#),
            (r#""x":"2""#, r#""x":2"#),
            (r#""until":"2026-12-01T19:00:00Z""#, r#""until":null"#),
            (r#""until":"2026-12-01T19:00:00Z""#, r#""until":[1]"#),
            (r#""spec":{"#, r#""spec":null,"s":{"#),
            (
                r#""lastTransitionTime":"2026-12-01T10:00:00Z""#,
                r#""lastTransitionTime":"yesterday""#,
            ),
            (r#""finalizers":["#, r#""finalizers":{"a":1},"f":["#),
            (r#""values":{"a""#, r#""values":[{"a""#),
        ] {
            assert!(environment.contains(from), "{from}");
            let doc = environment.replacen(from, to, 1);
            let doc = if to.ends_with("[{\"a\"") {
                doc.replacen("null}]}}}]", "null}]}]}}]", 1)
            } else {
                doc
            };
            docs.push(doc);
        }
        let mut refused = 0;
        for doc in &docs {
            let value: Value = serde_json::from_str(doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
            let json: Json = serde_json::from_str(doc).unwrap();
            let from_json = typed::<Environment, _>(&json);
            assert_eq!(from_json, typed::<Environment, _>(&value), "{doc}");
            refused += usize::from(from_json.is_err());
            let metadata = (json.get("metadata").unwrap(), &value["metadata"]);
            assert_eq!(
                typed::<ObjectMeta, _>(metadata.0),
                typed::<ObjectMeta, _>(metadata.1),
                "{doc}"
            );
        }
        assert!(refused >= 10, "{refused} of {} refused", docs.len());
    }

    #[test]
    fn enums_and_ignored_values_are_read_as_from_a_value() {
        #[derive(serde::Deserialize, serde::Serialize)]
        enum Phase {
            Ready,
        }
        #[derive(serde::Deserialize, serde::Serialize)]
        struct Known {
            phase: Phase,
        }
        for doc in [
            r#"{"phase":"Ready"}"#,
            r#"{"phase":"Gone"}"#,
            r#"{"phase":5}"#,
            r#"{"phase":"Ready","unknown":{"deep":[1,{"x":null}]}}"#,
        ] {
            let value: Value = serde_json::from_str(doc).unwrap();
            let json: Json = serde_json::from_str(doc).unwrap();
            assert_eq!(typed::<Known, _>(&json), typed::<Known, _>(&value), "{doc}");
        }
    }
}
