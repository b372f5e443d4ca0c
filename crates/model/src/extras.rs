//! Fields fzip does not know, kept verbatim.
//!
//! HouseF3's exporter adds keys such as `exportMetadata`, `computedFields` and `hierarchyInfo`,
//! and later HouseF3 versions may add real fields. fzip keeps every such key with its exact JSON
//! text (numbers keep every digit, strings keep their escapes) and writes it back unchanged.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Unknown keys of one JSON object, in the order they were read, with their raw JSON values.
#[derive(Clone, Default)]
pub struct Extras(Vec<(String, Box<RawValue>)>);

impl Extras {
    pub fn new() -> Self {
        Extras(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_ref()))
    }

    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Adds a key; returns false (and changes nothing) when the key is already present.
    pub fn insert(&mut self, key: String, value: Box<RawValue>) -> bool {
        if self.contains_key(&key) {
            return false;
        }
        self.0.push((key, value));
        true
    }

    /// Removes a key, returning its raw value.
    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        let pos = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(pos).1)
    }

    /// The extras as parsed JSON values, for comparisons.
    pub fn to_values(&self) -> Vec<(String, serde_json::Value)> {
        self.0
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::from_str(v.get()).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect()
    }

    /// The extras as one JSON object text (`{}` when empty), as stored in a database column.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Parses the text written by [`Extras::to_json`].
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        if text.is_empty() {
            return Ok(Extras::new());
        }
        serde_json::from_str(text)
    }
}

impl PartialEq for Extras {
    /// Equal when both hold the same keys with equal JSON values, in any order.
    fn eq(&self, other: &Self) -> bool {
        if self.0.len() != other.0.len() {
            return false;
        }
        self.0.iter().all(|(k, v)| match other.get(k) {
            Some(o) if o.get() == v.get() => true,
            Some(o) => {
                let a: Result<serde_json::Value, _> = serde_json::from_str(v.get());
                let b: Result<serde_json::Value, _> = serde_json::from_str(o.get());
                matches!((a, b), (Ok(a), Ok(b)) if a == b)
            }
            None => false,
        })
    }
}

impl fmt::Debug for Extras {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, v.get())))
            .finish()
    }
}

impl Serialize for Extras {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Extras {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExtrasVisitor;
        impl<'de> Visitor<'de> for ExtrasVisitor {
            type Value = Extras;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Extras, A::Error> {
                let mut extras = Extras::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: Box<RawValue> = map.next_value()?;
                    if extras.contains_key(&key) {
                        return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                    }
                    extras.0.push((key, value));
                }
                Ok(extras)
            }
        }
        deserializer.deserialize_map(ExtrasVisitor)
    }
}

/// A JSON value kept as its exact text, compared by value.
#[derive(Clone)]
pub struct RawJson(pub Box<RawValue>);

impl RawJson {
    /// Parses `text`, which must be one JSON value.
    pub fn from_text(text: &str) -> Result<Self, serde_json::Error> {
        Ok(RawJson(RawValue::from_string(text.to_string())?))
    }

    /// Serialises a value.
    pub fn from_value<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(RawJson(serde_json::value::to_raw_value(value)?))
    }

    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        if self.0.get() == other.0.get() {
            return true;
        }
        let a: Result<serde_json::Value, _> = serde_json::from_str(self.0.get());
        let b: Result<serde_json::Value, _> = serde_json::from_str(other.0.get());
        matches!((a, b), (Ok(a), Ok(b)) if a == b)
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get())
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(RawJson(Box::<RawValue>::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_raw_text_and_order() {
        let text = r#"{"b":5.983889528193326,"a":"\u00e9","c":{"x":[1,null]}}"#;
        let e = Extras::from_json(text).unwrap();
        assert_eq!(e.to_json(), text);
        assert_eq!(e.len(), 3);
    }

    #[test]
    fn equality_ignores_order_and_escapes() {
        let a = Extras::from_json(r#"{"a":"\u00e9","b":1}"#).unwrap();
        let b = Extras::from_json(r#"{"b":1,"a":"é"}"#).unwrap();
        assert_eq!(a, b);
        let c = Extras::from_json(r#"{"b":2,"a":"é"}"#).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn refuses_duplicates() {
        assert!(Extras::from_json(r#"{"a":1,"a":2}"#).is_err());
    }
}
