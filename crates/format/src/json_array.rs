//! Streaming reader for the entity arrays of a data file.
//!
//! A data file is a JSON array of objects (`[{…},{…}]`, fzip and HouseF3) or an object wrapping
//! that array under the collection name (`{"accounts": [{…}]}`, the design documents). It can be
//! larger than memory, so it is read in chunks and each element is handed out as one contiguous
//! byte slice, which is then parsed with `serde_json::from_slice`. Only one element (at most
//! `max_element` bytes) is held at a time.
//!
//! This is a scanner for the structure around the elements only (strings, nesting, commas); the
//! elements themselves are parsed by serde_json, which checks them fully.

use std::io::{self, Read};

/// Why a data file is not a readable entity array.
#[derive(Debug, thiserror::Error)]
pub enum ArrayError {
    #[error("invalid JSON at byte {offset}: {message}")]
    Syntax { offset: u64, message: String },
    #[error(
        "element {index} (at byte {offset}) is larger than the {limit}-byte limit for one entity"
    )]
    ElementTooLarge {
        index: u64,
        offset: u64,
        limit: usize,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What the callback decided about one element.
pub type Flow<E> = Result<(), E>;

/// Reads `reader` as an entity array (or a `{"<wrapper_key>": [...]}` wrapper) and calls
/// `on_element(index, bytes)` for each element. The callback's error stops reading and is
/// returned as `Err(Err(e))`; a structural problem is `Err(Ok(ArrayError))`.
pub fn for_each_element<R: Read, E>(
    reader: R,
    wrapper_keys: &[&str],
    max_element: usize,
    mut on_element: impl FnMut(u64, &[u8]) -> Flow<E>,
) -> Result<u64, Result<ArrayError, E>> {
    let mut scanner = Scanner::new(reader, max_element);
    scanner.run(wrapper_keys, &mut on_element)
}

const CHUNK: usize = 256 * 1024;

struct Scanner<R> {
    reader: R,
    buf: Vec<u8>,
    /// Next unread byte in `buf`.
    pos: usize,
    /// Valid bytes in `buf`.
    end: usize,
    /// Offset in the stream of `buf[0]`.
    base: u64,
    eof: bool,
    max_element: usize,
}

impl<R: Read> Scanner<R> {
    fn new(reader: R, max_element: usize) -> Self {
        Scanner {
            reader,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            max_element,
        }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn syntax<E>(&self, message: impl Into<String>) -> Result<ArrayError, E> {
        Ok(ArrayError::Syntax {
            offset: self.offset(),
            message: message.into(),
        })
    }

    /// Reads more bytes, keeping everything from `keep_from` on. Returns false at end of input.
    fn fill(&mut self, keep_from: usize) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if keep_from > 0 {
            self.buf.copy_within(keep_from..self.end, 0);
            self.end -= keep_from;
            self.pos -= keep_from;
            self.base += keep_from as u64;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).max(CHUNK);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next byte that is not white space, without consuming it.
    fn peek_token(&mut self) -> io::Result<Option<u8>> {
        loop {
            while self.pos < self.end {
                match self.buf[self.pos] {
                    b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                    c => return Ok(Some(c)),
                }
            }
            let keep = self.pos;
            if !self.fill(keep)? {
                return Ok(None);
            }
        }
    }

    fn skip_bom(&mut self) -> io::Result<()> {
        while self.end - self.pos < 3 {
            let keep = self.pos;
            if !self.fill(keep)? {
                break;
            }
        }
        if self.buf[self.pos..self.end].starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.pos += 3;
        }
        Ok(())
    }

    fn run<E>(
        &mut self,
        wrapper_keys: &[&str],
        on_element: &mut impl FnMut(u64, &[u8]) -> Flow<E>,
    ) -> Result<u64, Result<ArrayError, E>> {
        self.skip_bom().map_err(|e| Ok(e.into()))?;
        let count = match self.peek_token().map_err(|e| Ok(e.into()))? {
            Some(b'[') => self.array(on_element)?,
            Some(b'{') => self.wrapper(wrapper_keys, on_element)?,
            Some(_) => return Err(self.syntax("expected a JSON array of objects")),
            None => return Err(self.syntax("the data file is empty")),
        };
        match self.peek_token().map_err(|e| Ok(e.into()))? {
            None => Ok(count),
            Some(_) => Err(self.syntax("unexpected data after the end of the JSON value")),
        }
    }

    /// `{"key": [...], ...}`: reads the array under the first matching key, skips other values.
    fn wrapper<E>(
        &mut self,
        wrapper_keys: &[&str],
        on_element: &mut impl FnMut(u64, &[u8]) -> Flow<E>,
    ) -> Result<u64, Result<ArrayError, E>> {
        self.pos += 1; // '{'
        let mut found: Option<u64> = None;
        let io = |e: io::Error| Ok(e.into());
        if self.peek_token().map_err(io)? == Some(b'}') {
            self.pos += 1;
            return Err(self.syntax(format!(
                "the wrapper object has no {:?} array",
                wrapper_keys.first().copied().unwrap_or("")
            )));
        }
        loop {
            if self.peek_token().map_err(io)? != Some(b'"') {
                return Err(self.syntax("expected a key in the wrapper object"));
            }
            let start = self.pos;
            let key_end = self.scan_string(start).map_err(io)?;
            let Some(key_end) = key_end else {
                return Err(self.syntax("unterminated string"));
            };
            let key: String = serde_json::from_slice(&self.buf[self.pos..key_end])
                .map_err(|e| self.syntax::<E>(format!("bad key: {e}")))?;
            self.pos = key_end;
            if self.peek_token().map_err(io)? != Some(b':') {
                return Err(self.syntax("expected ':' after a key"));
            }
            self.pos += 1;
            if wrapper_keys.contains(&key.as_str()) && found.is_none() {
                if self.peek_token().map_err(io)? != Some(b'[') {
                    return Err(self.syntax(format!("{key:?} must hold an array")));
                }
                found = Some(self.array(on_element)?);
            } else {
                self.skip_value()?;
            }
            match self.peek_token().map_err(io)? {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.syntax("expected ',' or '}' in the wrapper object")),
            }
        }
        found.ok_or_else(|| {
            self.syntax(format!(
                "the wrapper object has no {:?} array",
                wrapper_keys.first().copied().unwrap_or("")
            ))
        })
    }

    fn array<E>(
        &mut self,
        on_element: &mut impl FnMut(u64, &[u8]) -> Flow<E>,
    ) -> Result<u64, Result<ArrayError, E>> {
        let io = |e: io::Error| Ok(e.into());
        self.pos += 1; // '['
        let mut index: u64 = 0;
        if self.peek_token().map_err(io)? == Some(b']') {
            self.pos += 1;
            return Ok(0);
        }
        loop {
            match self.peek_token().map_err(io)? {
                Some(b'{') => {}
                Some(_) => {
                    return Err(self.syntax(format!("element {index} is not a JSON object")));
                }
                None => return Err(self.syntax("the array is not closed")),
            }
            let end = self.scan_object(index)?;
            // `scan_object` may have moved the buffer; the element starts at `self.pos`.
            let start = self.pos;
            on_element(index, &self.buf[start..end]).map_err(Err)?;
            self.pos = end;
            index += 1;
            match self.peek_token().map_err(io)? {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(index);
                }
                Some(_) => {
                    return Err(
                        self.syntax(format!("expected ',' or ']' after element {}", index - 1))
                    );
                }
                None => return Err(self.syntax("the array is not closed")),
            }
        }
    }

    /// Finds the end of the object starting at `self.pos`, reading more input as needed. The
    /// element stays contiguous in `buf`, starting at the returned position's element start.
    fn scan_object<E>(&mut self, index: u64) -> Result<usize, Result<ArrayError, E>> {
        let start_offset = self.offset();
        let mut i = self.pos;
        let mut depth: usize = 0;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            while i < self.end {
                if in_string {
                    if escaped {
                        escaped = false;
                        i += 1;
                        continue;
                    }
                    // Most of an element's bytes are inside strings: jump to the next quote or
                    // backslash (SIMD in memchr) rather than looking at every byte.
                    match memchr::memchr2(b'"', b'\\', &self.buf[i..self.end]) {
                        None => i = self.end,
                        Some(k) => {
                            i += k;
                            if self.buf[i] == b'\\' {
                                escaped = true;
                            } else {
                                in_string = false;
                            }
                            i += 1;
                        }
                    }
                    continue;
                }
                let c = self.buf[i];
                i += 1;
                match c {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            if i - self.pos > self.max_element {
                                return Err(Ok(ArrayError::ElementTooLarge {
                                    index,
                                    offset: start_offset,
                                    limit: self.max_element,
                                }));
                            }
                            return Ok(i);
                        }
                    }
                    _ => {}
                }
            }
            if i - self.pos > self.max_element {
                return Err(Ok(ArrayError::ElementTooLarge {
                    index,
                    offset: start_offset,
                    limit: self.max_element,
                }));
            }
            let keep = self.pos;
            let consumed = i - keep;
            if !self.fill(keep).map_err(|e| Ok(e.into()))? {
                return Err(
                    self.syntax(format!("element {index} is cut off by the end of the data"))
                );
            }
            i = self.pos + consumed;
        }
    }

    /// Returns the position just after the string starting at `start` (a '"'), or None at EOF.
    fn scan_string(&mut self, start: usize) -> io::Result<Option<usize>> {
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            while i < self.end {
                let c = self.buf[i];
                i += 1;
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    return Ok(Some(i));
                }
            }
            let consumed = i - self.pos;
            let keep = self.pos;
            if !self.fill(keep)? {
                return Ok(None);
            }
            i = self.pos + consumed;
        }
    }

    /// Skips one JSON value of the wrapper object.
    fn skip_value<E>(&mut self) -> Result<(), Result<ArrayError, E>> {
        let io = |e: io::Error| Ok(e.into());
        match self.peek_token().map_err(io)? {
            Some(b'{') | Some(b'[') => {
                // Arrays and objects: scan balanced; the size limit applies.
                let end = self.scan_object(u64::MAX)?;
                self.pos = end;
                Ok(())
            }
            Some(b'"') => {
                let start = self.pos;
                match self.scan_string(start).map_err(io)? {
                    Some(end) => {
                        self.pos = end;
                        Ok(())
                    }
                    None => Err(self.syntax("unterminated string")),
                }
            }
            Some(_) => {
                // A number or a literal: up to the next delimiter.
                loop {
                    while self.pos < self.end {
                        match self.buf[self.pos] {
                            b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' => return Ok(()),
                            _ => self.pos += 1,
                        }
                    }
                    let keep = self.pos;
                    if !self.fill(keep).map_err(io)? {
                        return Ok(());
                    }
                }
            }
            None => Err(self.syntax("expected a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], keys: &[&str], max: usize) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for_each_element::<_, ()>(input, keys, max, |_, b| {
            out.push(String::from_utf8_lossy(b).into_owned());
            Ok(())
        })
        .map_err(|e| match e {
            Ok(e) => e.to_string(),
            Err(()) => "callback".into(),
        })?;
        Ok(out)
    }

    /// A reader that hands out one byte at a time, to exercise every refill path.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn bare_array() {
        let got = collect(br#" [ {"a":"x}]\"y"} , {"b":[1,{"c":2}]} ]  "#, &[], 1000).unwrap();
        assert_eq!(got, [r#"{"a":"x}]\"y"}"#, r#"{"b":[1,{"c":2}]}"#]);
        assert_eq!(collect(b"[]", &[], 10).unwrap().len(), 0);
    }

    #[test]
    fn wrapper_object() {
        let got = collect(
            br#"{"note": {"x": [1, "]"]}, "n": -1.5e3, "t": true, "accounts": [{"id":1}], "z": "}"}"#,
            &["accounts"],
            1000,
        )
        .unwrap();
        assert_eq!(got, [r#"{"id":1}"#]);
        assert!(collect(br#"{"other": []}"#, &["accounts"], 1000).is_err());
    }

    #[test]
    fn byte_at_a_time() {
        let input = br#"[{"k":"\u00e9\\"},{"k":"v"}]"#;
        let mut out = Vec::new();
        for_each_element::<_, ()>(Trickle(input), &[], 100, |_, b| {
            out.push(b.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            out,
            [br#"{"k":"\u00e9\\"}"#.to_vec(), br#"{"k":"v"}"#.to_vec()]
        );
    }

    #[test]
    fn refuses_bad_structure() {
        for bad in [
            &b""[..],
            b"[",
            b"[{}",
            b"[{},]",
            b"[1]",
            b"[{}] x",
            b"[{\"a\":1}{\"b\":2}]",
            b"{\"accounts\": 5}",
            b"\"text\"",
        ] {
            assert!(
                collect(bad, &["accounts"], 100).is_err(),
                "{:?} should be refused",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn element_size_limit() {
        let big = format!("[{{\"a\":\"{}\"}}]", "x".repeat(5000));
        let err = collect(big.as_bytes(), &[], 1000).unwrap_err();
        assert!(err.contains("larger than"), "{err}");
    }

    /// Reads at most `.1` bytes per call.
    struct Chunks<'a>(&'a [u8], usize);
    impl Read for Chunks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    proptest::proptest! {
        #[test]
        fn splits_exactly_what_serde_wrote(
            texts in proptest::collection::vec("[a-z\"\\\\{}\\[\\],: é\u{1F600}]{0,40}", 0..12),
            chunk in 1usize..300,
        ) {
            let elements: Vec<String> = texts
                .iter()
                .map(|t| serde_json::json!({"k": t, "n": [t, {"x": t}], "v": 1}).to_string())
                .collect();
            let input = format!("[{}]", elements.join(",\n"));
            let mut out = Vec::new();
            for_each_element::<_, ()>(Chunks(input.as_bytes(), chunk), &[], 1 << 20, |_, b| {
                out.push(String::from_utf8(b.to_vec()).unwrap());
                Ok(())
            })
            .unwrap();
            proptest::prop_assert_eq!(out, elements);
        }
    }

    #[test]
    fn callback_error_stops() {
        let r = for_each_element(&b"[{},{},{}]"[..], &[], 10, |i, _| {
            if i == 1 { Err("stop") } else { Ok(()) }
        });
        assert!(matches!(r, Err(Err("stop"))));
    }
}
