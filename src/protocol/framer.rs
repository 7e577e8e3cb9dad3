//! `Framer`: cuts JSON values out of a byte stream by depth counting, resuming where it left off.
//!
//! [`Framer::drain`] is how every reader of the crate takes frames out of its input (the
//! server's connections, bin/client, chat-bench, the tests); [`Framer::next_frame`] is the
//! step underneath it.

use std::fmt;
use std::ops::ControlFlow;

/// Largest frame accepted unless the caller asks for another limit.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Incremental frame cutter for one connection.
///
/// The framer never parses JSON; it only tracks bracket depth and whether it is inside a string
/// (and just after a backslash there), which is enough to find where a value ends. Everything
/// else is left to the JSON parser above, so `{"a":}` is cut as a frame and rejected there.
///
/// ```
/// use chatserver::protocol::{Framer, Scan};
///
/// let mut framer = Framer::default();
/// let mut buf: Vec<u8> = b"\n{\"msgid\":24".to_vec();
/// // Half a frame: the leading newline may be dropped, the rest must be kept.
/// let Ok(Scan::Incomplete { discard }) = framer.next_frame(&buf) else { panic!() };
/// buf.drain(..discard);
/// buf.extend_from_slice(b"}\0");
/// let Ok(Scan::Frame { start, end }) = framer.next_frame(&buf) else { panic!() };
/// assert_eq!(&buf[start..end], b"{\"msgid\":24}");
/// buf.drain(..end);
/// ```
#[derive(Debug, Clone)]
pub struct Framer {
    max_frame: usize,
    /// True once the opening bracket of the current frame has been seen; the frame then starts
    /// at offset 0 of the caller's input, because the caller dropped what came before it.
    in_frame: bool,
    /// Bytes of the current frame already scanned; the next call resumes right after them.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Every byte looked at, so tests can prove that scanning stays linear.
    #[cfg(test)]
    pub(crate) bytes_examined: usize,
}

/// What one call to [`Framer::next_frame`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// `input[start..end]` is one complete frame; drop `end` bytes before calling again.
    Frame { start: usize, end: usize },
    /// No complete frame yet; drop `discard` leading bytes, keep the rest, read more.
    Incomplete { discard: usize },
}

/// Why the stream cannot be framed; the connection should be answered and closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A frame grew past the limit (reported as soon as it does, not when it completes).
    TooLarge { limit: usize },
    /// A byte that cannot start a frame appeared between frames.
    Garbage { byte: u8 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { limit } => write!(f, "frame larger than {limit} bytes"),
            FrameError::Garbage { byte } => {
                write!(f, "unexpected byte 0x{byte:02x} between frames")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Bytes a framer can drain: the unread part of some input queue, and a way to drop a prefix.
pub trait FrameInput {
    fn unread(&self) -> &[u8];
    fn consume(&mut self, n: usize);
}

impl FrameInput for Vec<u8> {
    fn unread(&self) -> &[u8] {
        self
    }
    fn consume(&mut self, n: usize) {
        self.drain(..n.min(self.len()));
    }
}

impl FrameInput for crate::net::Buffer {
    fn unread(&self) -> &[u8] {
        self.peek()
    }
    fn consume(&mut self, n: usize) {
        self.retrieve(n);
    }
}

/// One frame handed out by [`Framer::drain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// One JSON value, as the peer wrote it.
    pub bytes: &'a [u8],
    /// The byte right after the frame, if it has arrived: it tells how the peer ends its
    /// frames (the seeds' client with a NUL, ours with a newline).
    pub next: Option<u8>,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(DEFAULT_MAX_FRAME)
    }
}

impl Framer {
    /// A framer that rejects frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Framer {
            max_frame,
            in_frame: false,
            scanned: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            #[cfg(test)]
            bytes_examined: 0,
        }
    }

    /// The configured frame size limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Hands every complete frame of `input` to `on_frame`, in order, and consumes them (and
    /// the whitespace or NULs around them); a partial frame stays for the next call. Stops
    /// early, after the frame it was given, when `on_frame` breaks. After an error the stream
    /// has lost sync (the frames before it were handed out and consumed): close it.
    ///
    /// ```
    /// use chatserver::protocol::Framer;
    /// use std::ops::ControlFlow;
    ///
    /// let mut framer = Framer::default();
    /// let mut input: Vec<u8> = b"{\"msgid\":24}\0{\"msgid\":24,\"seq\":".to_vec();
    /// let mut frames = Vec::new();
    /// framer.drain(&mut input, |frame| {
    ///     frames.push((frame.bytes.to_vec(), frame.next));
    ///     ControlFlow::Continue(())
    /// }).unwrap();
    /// assert_eq!(frames, vec![(b"{\"msgid\":24}".to_vec(), Some(0))]);
    /// assert_eq!(input, b"{\"msgid\":24,\"seq\":"); // waits for the rest
    /// ```
    pub fn drain<I: FrameInput + ?Sized>(
        &mut self,
        input: &mut I,
        mut on_frame: impl FnMut(Frame<'_>) -> ControlFlow<()>,
    ) -> Result<(), FrameError> {
        // Consumed once at the end, so a Vec is not shifted once per frame.
        let mut at = 0;
        let result = loop {
            let bytes = &input.unread()[at..];
            match self.next_frame(bytes) {
                Ok(Scan::Frame { start, end }) => {
                    let frame = Frame {
                        bytes: &bytes[start..end],
                        next: bytes.get(end).copied(),
                    };
                    at += end;
                    if on_frame(frame).is_break() {
                        break Ok(());
                    }
                }
                Ok(Scan::Incomplete { discard }) => {
                    at += discard;
                    break Ok(());
                }
                Err(e) => break Err(e),
            }
        };
        input.consume(at);
        result
    }

    /// Looks for the next frame in `input`, the caller's unconsumed bytes.
    ///
    /// `Frame { start, end }`: `input[start..end]` is one complete frame; the caller must then
    /// drop `end` bytes from the front of its input before calling again.
    /// `Incomplete { discard }`: no complete frame yet; the caller drops `discard` leading bytes
    /// (skipped whitespace/NUL) and keeps the rest, appends more input, and calls again.
    ///
    /// After an error the framer is reset, but the stream has lost sync: close the connection.
    pub fn next_frame(&mut self, input: &[u8]) -> Result<Scan, FrameError> {
        let start = if self.in_frame {
            0
        } else {
            match self.skip_to_frame(input)? {
                Some(start) => start,
                None => {
                    return Ok(Scan::Incomplete {
                        discard: input.len(),
                    })
                }
            }
        };
        let frame = input.get(start..).unwrap_or_default();
        // Never look further than the limit allows: a frame that has not closed by then is
        // rejected without waiting (or scanning) any more.
        let window = frame.len().min(self.max_frame);
        let from = self.scanned.min(window);
        if let Some(len) = self.scan(frame.get(from..window).unwrap_or_default(), from) {
            self.reset();
            return Ok(Scan::Frame {
                start,
                end: start + len,
            });
        }
        self.scanned = window;
        if frame.len() > self.max_frame {
            self.reset();
            return Err(FrameError::TooLarge {
                limit: self.max_frame,
            });
        }
        Ok(Scan::Incomplete { discard: start })
    }

    /// Skips whitespace and NULs; returns where the next frame's opening bracket is.
    fn skip_to_frame(&mut self, input: &[u8]) -> Result<Option<usize>, FrameError> {
        for (i, &byte) in input.iter().enumerate() {
            #[cfg(test)]
            {
                self.bytes_examined += 1;
            }
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' | 0 => continue,
                b'{' | b'[' => {
                    self.in_frame = true;
                    return Ok(Some(i));
                }
                _ => {
                    self.reset();
                    return Err(FrameError::Garbage { byte });
                }
            }
        }
        Ok(None)
    }

    /// Scans `bytes`, which sit at offset `base` of the current frame; returns the frame's
    /// length if its closing bracket is among them.
    fn scan(&mut self, bytes: &[u8], base: usize) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    self.count_examined(1);
                    i += 1;
                    continue;
                }
                // Most of a chat frame is string content: jump to the next quote or backslash
                // (memchr scans a word or a vector at a time) instead of stepping byte by byte.
                let Some(k) = memchr::memchr2(b'"', b'\\', &bytes[i..]) else {
                    self.count_examined(bytes.len() - i);
                    return None;
                };
                self.count_examined(k + 1);
                i += k;
                if bytes[i] == b'\\' {
                    self.escaped = true;
                } else {
                    self.in_string = false;
                }
                i += 1;
                continue;
            }
            self.count_examined(1);
            match bytes[i] {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                // Mismatched kinds (`{]`) are the JSON parser's business; depth is enough here.
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Some(base + i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        None
    }

    #[inline(always)]
    fn count_examined(&mut self, _n: usize) {
        #[cfg(test)]
        {
            self.bytes_examined += _n;
        }
    }

    fn reset(&mut self) {
        self.in_frame = false;
        self.scanned = 0;
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
    }
}
