//! The text of every JSON document (`/stats.json`, `--log-format json`,
//! the client's `--json`): serde_json, writing numbers and escapes as these
//! documents always have.
//!
//! serde_json on its own writes a float holding a whole number as `2.0` and
//! a small one as `1e-7`; the documents write `2` and `0.0000001` (Rust's
//! `Display`, which never uses an exponent), so a script that reads
//! `"loss_pct":0` as an integer keeps working. Backspace and form feed stay
//! `\u0008` and `\u000c`. NaN and infinities, which JSON cannot hold, are
//! `null` (serde_json's own rule).

use std::{fmt, io};

use serde::{Serialize, Serializer};
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

/// `doc` as one line of JSON.
///
/// (Example: the test `numbers_keep_their_shape`.)
pub fn to_string<T: Serialize + ?Sized>(doc: &T) -> String {
    let mut out = Vec::with_capacity(256);
    doc.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, Numbers,
    ))
    .expect("the documents have string keys and infallible values; a Vec takes any write");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// For `#[serde(serialize_with = "json::display")]`: the field as its
/// `Display` text (an address as the user typed it, an error's message).
pub fn display<T: fmt::Display, S: Serializer>(value: &T, out: S) -> Result<S::Ok, S::Error> {
    out.collect_str(value)
}

/// serde_json's compact output with the documents' numbers and escapes.
struct Numbers;

impl Formatter for Numbers {
    fn write_f64<W: ?Sized + io::Write>(&mut self, out: &mut W, value: f64) -> io::Result<()> {
        // Only finite values get here: serde_json writes the others as null.
        write!(out, "{value}")
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        out: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        match escape {
            CharEscape::Backspace => out.write_all(b"\\u0008"),
            CharEscape::FormFeed => out.write_all(b"\\u000c"),
            other => CompactFormatter.write_char_escape(out, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[test]
    fn strings_are_escaped() {
        let doc = serde_json::json!({ "k\"": "a\"b\\c\nd\u{1}\u{8}\u{c}\té\u{7f}" });
        assert_eq!(
            to_string(&doc),
            r#"{"k\"":"a\"b\\c\nd\u0001\u0008\u000c\té"#.to_string() + "\u{7f}\"}"
        );
    }

    #[test]
    fn numbers_as_display_writes_them() {
        #[derive(Serialize)]
        struct Doc {
            a: f64,
            b: f64,
            c: f64,
            d: f64,
            e: f64,
            f: u64,
            g: Option<f64>,
        }
        let doc = Doc {
            a: f64::NAN,
            b: f64::INFINITY,
            c: 1e-7,
            d: 2.0,
            e: 0.006_450_999_999_999_999,
            f: u64::MAX,
            g: None,
        };
        assert_eq!(
            to_string(&doc),
            r#"{"a":null,"b":null,"c":0.0000001,"d":2,"e":0.006450999999999999,"f":18446744073709551615,"g":null}"#
        );
    }
}

#[cfg(test)]
mod example {
    // The example the docs above point to.
    #[test]
    fn numbers_keep_their_shape() {
        #[derive(serde::Serialize)]
        struct Doc {
            mode: &'static str,
            loss_pct: f64,
            rtt_ms: Option<f64>,
        }
        let doc = Doc {
            mode: "ping",
            loss_pct: 0.0,
            rtt_ms: None,
        };
        assert_eq!(
            crate::logic::json::to_string(&doc),
            r#"{"mode":"ping","loss_pct":0,"rtt_ms":null}"#
        );
    }
}
