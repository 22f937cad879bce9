//! QuickXorHash, the content hash SharePoint and OneDrive for Business report: a
//! 160-bit register into which byte `i` is XORed at bit offset `(i * 11) mod 160`
//! (wrapping), with the length XORed into the last 8 bytes; base64.

use base64::Engine as _;

pub struct QuickXor {
    reg: [u8; 20],
    len: u64,
}

impl Default for QuickXor {
    fn default() -> Self {
        QuickXor::new()
    }
}

impl QuickXor {
    pub fn new() -> QuickXor {
        QuickXor {
            reg: [0; 20],
            len: 0,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        let mut shift = ((self.len % 160) * 11 % 160) as usize;
        for &b in data {
            let (i, off) = (shift / 8, shift % 8);
            self.reg[i] ^= b << off;
            if off > 0 {
                self.reg[(i + 1) % 20] ^= b >> (8 - off);
            }
            shift = (shift + 11) % 160;
        }
        self.len += data.len() as u64;
    }

    pub fn finish(&self) -> String {
        let mut out = self.reg;
        for (j, l) in self.len.to_le_bytes().iter().enumerate() {
            out[12 + j] ^= l;
        }
        base64::engine::general_purpose::STANDARD.encode(out)
    }
}

#[cfg(test)]
mod tests {
    use super::QuickXor;

    fn hash(parts: &[&[u8]]) -> String {
        let mut h = QuickXor::new();
        for p in parts {
            h.update(p);
        }
        h.finish()
    }

    #[test]
    fn matches_the_published_vectors_in_any_split() {
        assert_eq!(hash(&[b""]), "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert_eq!(hash(&[b"a"]), "YQAAAAAAAAAAAAAAAQAAAAAAAAA=");
        assert_eq!(hash(&[b"hello world"]), "aCgDG9jwBhDc4Q1yawMZAAAAAAA=");
        assert_eq!(
            hash(&[b"hel", b"lo w", b"orld"]),
            "aCgDG9jwBhDc4Q1yawMZAAAAAAA="
        );
        let v: Vec<u8> = (0..4).flat_map(|_| 0..=255u8).collect();
        assert_eq!(hash(&[&v]), "h7xr2dbCayZCQYR9KKhlwDuT4UI=");
        assert_eq!(
            hash(&[&v[..333], &v[333..]]),
            "h7xr2dbCayZCQYR9KKhlwDuT4UI="
        );
    }
}
