//! The JSON array splitter (`fzip_format::json_array`): the same elements (or the same refusal)
//! whatever sizes the reads come in, and, on any JSON array of objects serde_json accepts,
//! exactly the elements serde_json sees.
#![no_main]

use std::io::{self, Read};

use fzip_format::json_array::for_each_element;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

/// Hands out the input in reads of 1 to 7 bytes.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.step = self.step % 7 + 1;
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The elements, or None when the input is refused.
fn split(reader: impl Read, max: usize) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for_each_element::<_, ()>(reader, &["accounts", "fileMaps"], max, |index, bytes| {
        assert_eq!(index, out.len() as u64);
        out.push(bytes.to_vec());
        Ok(())
    })
    .ok()
    .map(|count| {
        assert_eq!(count, out.len() as u64);
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let whole = split(data, 1 << 20);
    assert_eq!(
        whole,
        split(Trickle { data, step: 0 }, 1 << 20),
        "read sizes change the result"
    );
    let small = split(data, 64);
    assert_eq!(
        small,
        split(Trickle { data, step: 3 }, 64),
        "read sizes change the result"
    );
    if let (Some(small), Some(whole)) = (&small, &whole) {
        assert_eq!(small, whole, "a smaller element limit changed the elements");
    }
    if small.is_some() {
        assert!(whole.is_some(), "refused under the larger limit only");
    }

    // serde_json's view of the same bytes (without a UTF-8 BOM, which fzip skips).
    let body = data.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(data);
    if let Ok(elements) = serde_json::from_slice::<Vec<&RawValue>>(body) {
        if elements.iter().all(|e| e.get().starts_with('{')) {
            let want: Vec<Vec<u8>> = elements
                .iter()
                .map(|e| e.get().as_bytes().to_vec())
                .collect();
            assert_eq!(whole.as_ref(), Some(&want), "differs from serde_json");
        }
    } else if body.trim_ascii_start().starts_with(b"[") {
        // An array the splitter accepts with elements serde_json accepts is valid JSON.
        if let Some(whole) = &whole {
            if whole
                .iter()
                .all(|e| serde_json::from_slice::<&RawValue>(e).is_ok())
            {
                panic!("the splitter accepts an array serde_json refuses");
            }
        }
    }
});
