//! SHA-256 checksums in the manifest's `"sha256:<hex>"` form, and hashing readers/writers.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// `"sha256:<64 lowercase hex digits>"`.
pub fn format_checksum(digest: &Sha256Digest) -> String {
    format!("sha256:{}", hex::encode(digest))
}

/// Parses `"sha256:<hex>"`.
pub fn parse_checksum(text: &str) -> Result<Sha256Digest, String> {
    let Some(hex_part) = text.strip_prefix("sha256:") else {
        return Err(format!(
            "checksum {text:?} is not of the form \"sha256:<hex>\" (only SHA-256 is supported)"
        ));
    };
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out)
        .map_err(|_| format!("checksum {text:?} does not hold 64 hex digits"))?;
    Ok(out)
}

/// The SHA-256 of a byte slice.
pub fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256::digest(bytes).into()
}

/// Counts and hashes what passes through a reader.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Consumes the rest of the input and returns (byte count, digest).
    pub fn finish(mut self) -> io::Result<(u64, Sha256Digest)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.bytes, self.hasher.finalize().into()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Counts and hashes what passes through a writer.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub fn finish(self) -> (W, u64, Sha256Digest) {
        (self.inner, self.bytes, self.hasher.finalize().into())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse() {
        let d = sha256(b"abc");
        let s = format_checksum(&d);
        assert_eq!(
            s,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_checksum(&s).unwrap(), d);
        assert!(parse_checksum("md5:abc").is_err());
        assert!(parse_checksum("sha256:zz").is_err());
    }

    #[test]
    fn hashing_reader() {
        let r = HashingReader::new(&b"abc"[..]);
        let (n, d) = r.finish().unwrap();
        assert_eq!((n, d), (3, sha256(b"abc")));
    }
}
