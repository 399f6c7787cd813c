//! A response on its way to the client: protocol text, with message bodies
//! sent from where they were read rather than copied into it.
//!
//! A full download is mostly message bodies; copying each into one response
//! buffer was a tenth of the server's CPU in a profile of it. The bodies stay
//! in their own buffers and go out with the text in vectored writes.

use std::io::IoSlice;
use std::ops::{Deref, DerefMut, Range};
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Bodies shorter than this are copied into the text: a slice of its own
/// costs more than the copy.
const SHARE_FROM: usize = 2048;

/// Most slices handed to one vectored write (Linux's IOV_MAX is 1024).
const MAX_SLICES: usize = 512;

/// Response bytes: text, with large bodies referenced in place.
///
/// The text is reached through `Deref` for appending; a body is placed with
/// [`Output::body`]. Only appending changes the text through `DerefMut`, so
/// each body's place in it stays where it was put.
#[derive(Debug, Default)]
pub struct Output {
    text: Vec<u8>,
    /// Each body goes out just before `text[at..]`; ordered by `at`.
    bodies: Vec<Body>,
}

#[derive(Debug)]
struct Body {
    at: usize,
    data: Arc<Vec<u8>>,
    range: Range<usize>,
}

impl Body {
    fn bytes(&self) -> &[u8] {
        &self.data[self.range.clone()]
    }
}

impl From<Vec<u8>> for Output {
    fn from(text: Vec<u8>) -> Self {
        Output {
            text,
            bodies: Vec::new(),
        }
    }
}

impl Deref for Output {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.text
    }
}

impl DerefMut for Output {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.text
    }
}

impl Output {
    /// Appends `data[range]` after the text so far, shared when it is large.
    pub fn body(&mut self, data: &Arc<Vec<u8>>, range: Range<usize>) {
        if range.len() < SHARE_FROM {
            self.text.extend_from_slice(&data[range]);
        } else {
            self.bodies.push(Body {
                at: self.text.len(),
                data: Arc::clone(data),
                range,
            });
        }
    }

    /// Appends `data[range]` as a literal (RFC 9051 §4.3).
    pub fn literal(&mut self, data: &Arc<Vec<u8>>, range: Range<usize>) {
        self.text
            .extend_from_slice(format!("{{{}}}\r\n", range.len()).as_bytes());
        self.body(data, range);
    }

    /// Puts `bytes` before everything.
    pub fn prepend(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let shift = bytes.len();
        self.text.splice(0..0, bytes);
        for body in &mut self.bodies {
            body.at += shift;
        }
    }

    /// Inserts `bytes` at `at` in the text, after any body placed there.
    pub fn insert(&mut self, at: usize, bytes: Vec<u8>) {
        let shift = bytes.len();
        self.text.splice(at..at, bytes);
        for body in self.bodies.iter_mut().filter(|b| b.at > at) {
            body.at += shift;
        }
    }

    /// Appends another response after this one.
    pub fn append(&mut self, other: Output) {
        let base = self.text.len();
        self.text.extend_from_slice(&other.text);
        self.bodies.extend(other.bodies.into_iter().map(|mut b| {
            b.at += base;
            b
        }));
    }

    /// Whether nothing is to be sent.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.bodies.is_empty()
    }

    /// The whole response as one buffer (for tests and logs).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(
            self.text.len() + self.bodies.iter().map(|b| b.range.len()).sum::<usize>(),
        );
        for piece in self.pieces() {
            all.extend_from_slice(piece);
        }
        all
    }

    /// The bytes in the order they go out.
    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        let mut from = 0;
        let mut bodies = self.bodies.iter().peekable();
        std::iter::from_fn(move || match bodies.peek() {
            Some(body) if body.at == from => bodies.next().map(Body::bytes),
            Some(body) => {
                let text = &self.text[from..body.at];
                from = body.at;
                Some(text)
            }
            None if from < self.text.len() => {
                let text = &self.text[from..];
                from = self.text.len();
                Some(text)
            }
            None => None,
        })
        .filter(|piece| !piece.is_empty())
    }

    /// Writes everything to `stream`, in as few system calls as it takes.
    pub async fn write_to<S: AsyncWrite + Unpin>(&self, stream: &mut S) -> std::io::Result<()> {
        if self.bodies.is_empty() {
            return stream.write_all(&self.text).await;
        }
        let pieces: Vec<&[u8]> = self.pieces().collect();
        let (mut next, mut offset) = (0, 0);
        while next < pieces.len() {
            let slices: Vec<IoSlice<'_>> = std::iter::once(&pieces[next][offset..])
                .chain(pieces[next + 1..].iter().copied())
                .take(MAX_SLICES)
                .map(IoSlice::new)
                .collect();
            let mut written = stream.write_vectored(&slices).await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            while next < pieces.len() && written >= pieces[next].len() - offset {
                written -= pieces[next].len() - offset;
                next += 1;
                offset = 0;
            }
            offset += written;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(n: usize, byte: u8) -> Arc<Vec<u8>> {
        Arc::new(vec![byte; n])
    }

    fn sample() -> (Output, Vec<u8>) {
        let mut out = Output::default();
        let mut expected = Vec::new();
        for (i, size) in [10, 5000, 3000, 100].into_iter().enumerate() {
            let head = format!("* {} FETCH (BODY[] {{{size}}}\r\n", i + 1);
            out.extend_from_slice(head.as_bytes());
            expected.extend_from_slice(head.as_bytes());
            let body = shared(size + 7, b'a' + i as u8);
            out.body(&body, 3..size + 3);
            expected.extend_from_slice(&body[3..size + 3]);
            out.extend_from_slice(b")\r\n");
            expected.extend_from_slice(b")\r\n");
        }
        (out, expected)
    }

    #[test]
    fn bodies_go_out_where_they_were_placed() {
        let (out, expected) = sample();
        assert_eq!(out.bodies.len(), 2, "the two large bodies are shared");
        assert_eq!(out.to_vec(), expected);
    }

    #[test]
    fn prepend_and_insert_keep_bodies_in_place() {
        let (mut out, mut expected) = sample();
        out.extend_from_slice(b"A1 OK done\r\n");
        expected.extend_from_slice(b"A1 OK done\r\n");
        let at = out.len() - b"A1 OK done\r\n".len();
        out.insert(at, b"* 9 EXISTS\r\n".to_vec());
        let at_expected = expected.len() - b"A1 OK done\r\n".len();
        expected.splice(at_expected..at_expected, b"* 9 EXISTS\r\n".to_vec());
        out.prepend(b"* 1 RECENT\r\n".to_vec());
        expected.splice(0..0, b"* 1 RECENT\r\n".to_vec());
        assert_eq!(out.to_vec(), expected);

        // A body placed exactly where text is inserted stays before it.
        let mut out = Output::from(b"x ".to_vec());
        out.body(&shared(4096, b'z'), 0..4096);
        let at = out.len();
        out.extend_from_slice(b"end");
        out.insert(at, b"mid ".to_vec());
        let mut want = b"x ".to_vec();
        want.extend(vec![b'z'; 4096]);
        want.extend_from_slice(b"mid end");
        assert_eq!(out.to_vec(), want);
    }

    #[test]
    fn append_moves_the_other_bodies_along() {
        let (first, mut expected) = sample();
        let (second, more) = sample();
        let mut out = Output::from(b"* OK start\r\n".to_vec());
        expected.splice(0..0, b"* OK start\r\n".to_vec());
        out.append(first);
        out.append(second);
        expected.extend(more);
        assert_eq!(out.to_vec(), expected);
    }

    /// A writer that takes at most `limit` bytes per call, as a full socket does.
    struct Trickle {
        got: Vec<u8>,
        limit: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.limit);
            self.got.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.limit - n);
                self.got.extend_from_slice(&buf[..take]);
                n += take;
                if n == self.limit {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn partial_writes_lose_and_repeat_nothing() {
        let (out, expected) = sample();
        for limit in [1, 7, 100, 4096, 1 << 20] {
            let mut sink = Trickle {
                got: Vec::new(),
                limit,
            };
            out.write_to(&mut sink).await.unwrap();
            assert_eq!(sink.got, expected, "limit {limit}");
        }
    }
}
