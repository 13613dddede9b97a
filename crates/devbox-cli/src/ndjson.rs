//! Newline-delimited JSON: splitting a byte stream whose chunks end anywhere
//! into whole lines.

/// Longest line accepted; a progress event is a few hundred bytes, so a line
/// this long means the answer is not the stream it should be.
pub const MAX_LINE: usize = 4 << 20;

/// Collects chunks and hands out complete lines.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

/// A line grew past [`MAX_LINE`] without a newline.
#[derive(Debug, thiserror::Error)]
#[error("the server sent a progress line longer than {MAX_LINE} bytes")]
pub struct LineTooLong;

impl LineSplitter {
    /// Adds a chunk and returns the lines it completed, without their `\n`
    /// (or `\r\n`). Blank lines are dropped.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, LineTooLong> {
        self.buf.extend_from_slice(chunk);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(i) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + i;
            push_line(&mut lines, &self.buf[start..end]);
            start = end + 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        Ok(lines)
    }

    /// The last line, when the stream ended without a final newline.
    pub fn finish(self) -> Option<Vec<u8>> {
        let mut lines = Vec::new();
        push_line(&mut lines, &self.buf);
        lines.pop()
    }
}

fn push_line(lines: &mut Vec<Vec<u8>>, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.iter().all(u8::is_ascii_whitespace) {
        lines.push(line.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::default();
        let mut out: Vec<String> = Vec::new();
        for c in chunks {
            for l in s.push(c).unwrap() {
                out.push(String::from_utf8(l).unwrap());
            }
        }
        out.extend(s.finish().map(|l| String::from_utf8(l).unwrap()));
        out
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let lines = split_all(&[b"{\"a\":", b"1}\n{\"b\"", b":2}\n", b"{\"c\":3}\n"]);
        assert_eq!(lines, [r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#]);
    }

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let text = b"{\"type\":\"progress\"}\r\n\n{\"type\":\"done\"}\n{\"x\":1}";
        let whole = split_all(&[text]);
        assert_eq!(
            whole,
            [r#"{"type":"progress"}"#, r#"{"type":"done"}"#, r#"{"x":1}"#]
        );
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let parts = split_all(&[&text[..i], &text[i..j], &text[j..]]);
                assert_eq!(parts, whole, "split at {i} and {j}");
            }
        }
    }

    #[test]
    fn a_line_per_byte_works() {
        let text = b"ab\ncd\n";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(split_all(&chunks), ["ab", "cd"]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut s = LineSplitter::default();
        let big = vec![b'x'; MAX_LINE / 2 + 1];
        assert!(s.push(&big).is_ok());
        assert!(s.push(&big).is_err());
    }
}
