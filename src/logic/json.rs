//! A small JSON writer for the machine-readable outputs (`echo-client
//! --json`).
//!
//! The documents are flat records of numbers and short strings, so a writer
//! that gets escaping and non-finite numbers right is all that is needed;
//! tests parse every document with a real JSON parser.

use std::fmt::Write;

/// A JSON object being written, key by key, in insertion order.
///
/// ```
/// use echo_server::logic::json::JsonObject;
/// let mut inner = JsonObject::new();
/// inner.uint("p50", 40);
/// let mut doc = JsonObject::new();
/// doc.str("mode", "ping").float("rtt_ms", 0.25).object("latency", inner);
/// assert_eq!(doc.finish(), r#"{"mode":"ping","rtt_ms":0.25,"latency":{"p50":40}}"#);
/// ```
#[derive(Debug, Clone)]
pub struct JsonObject {
    out: String,
}

impl Default for JsonObject {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonObject {
    /// An empty object.
    pub fn new() -> Self {
        Self {
            out: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_string(&mut self.out, key);
        self.out.push(':');
        &mut self.out
    }

    /// Adds a string member.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let out = self.key(key);
        push_string(out, value);
        self
    }

    /// Adds an integer member.
    pub fn uint(&mut self, key: &str, value: u64) -> &mut Self {
        let out = self.key(key);
        let _ = write!(out, "{value}");
        self
    }

    /// Adds a number member; NaN and infinities, which JSON cannot hold,
    /// become `null`.
    pub fn float(&mut self, key: &str, value: f64) -> &mut Self {
        let out = self.key(key);
        if value.is_finite() {
            // Display never uses exponent notation, so this is valid JSON.
            let _ = write!(out, "{value}");
        } else {
            out.push_str("null");
        }
        self
    }

    /// Adds a boolean member.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        let out = self.key(key);
        out.push_str(if value { "true" } else { "false" });
        self
    }

    /// Adds a `null` member.
    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key).push_str("null");
        self
    }

    /// Adds a nested object.
    pub fn object(&mut self, key: &str, value: JsonObject) -> &mut Self {
        let inner = value.finish();
        self.key(key).push_str(&inner);
        self
    }

    /// Adds an array of already-finished objects.
    pub fn array(&mut self, key: &str, values: Vec<JsonObject>) -> &mut Self {
        let out = self.key(key);
        out.push('[');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&value.finish());
        }
        out.push(']');
        self
    }

    /// Closes the object and returns its text.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Appends `value` as a JSON string literal.
fn push_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut doc = JsonObject::new();
        doc.str("k\"", "a\"b\\c\nd\u{1}é");
        assert_eq!(doc.finish(), r#"{"k\"":"a\"b\\c\nd\u0001é"}"#);
    }

    #[test]
    fn non_finite_numbers_become_null() {
        let mut doc = JsonObject::new();
        doc.float("a", f64::NAN)
            .float("b", f64::INFINITY)
            .float("c", 1e-7);
        assert_eq!(doc.finish(), r#"{"a":null,"b":null,"c":0.0000001}"#);
    }

    #[test]
    fn arrays_and_empty_objects() {
        let mut one = JsonObject::new();
        one.uint("seq", 1).bool("ok", true).null("err");
        let mut doc = JsonObject::new();
        doc.array("probes", vec![one, JsonObject::new()]);
        assert_eq!(
            doc.finish(),
            r#"{"probes":[{"seq":1,"ok":true,"err":null},{}]}"#
        );
    }
}
