//! Tests of `Framer`: delimiters, strings, nesting, errors, incremental feeding, linearity.

use crate::protocol::{FrameError, Framer, Scan, DEFAULT_MAX_FRAME};

/// Plays the caller: keeps a buffer, appends input, drops what the framer says to drop.
struct Feeder {
    framer: Framer,
    buf: Vec<u8>,
}

impl Feeder {
    fn new(max_frame: usize) -> Self {
        Feeder {
            framer: Framer::new(max_frame),
            buf: Vec::new(),
        }
    }

    /// Appends `bytes` and returns every frame that is now complete.
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        loop {
            match self.framer.next_frame(&self.buf)? {
                Scan::Frame { start, end } => {
                    frames.push(self.buf[start..end].to_vec());
                    self.buf.drain(..end);
                }
                Scan::Incomplete { discard } => {
                    self.buf.drain(..discard);
                    return Ok(frames);
                }
            }
        }
    }
}

fn frames(input: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
    Feeder::new(DEFAULT_MAX_FRAME).push(input)
}

fn strs(frames: &[Vec<u8>]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| std::str::from_utf8(f).unwrap())
        .collect()
}

#[test]
fn nul_terminated_frame() {
    let mut f = Framer::default();
    let input = b"{\"msgid\":1,\"id\":13}\0";
    assert_eq!(
        f.next_frame(input),
        Ok(Scan::Frame {
            start: 0,
            end: input.len() - 1
        })
    );
    assert_eq!(f.next_frame(b"\0"), Ok(Scan::Incomplete { discard: 1 }));
}

#[test]
fn newline_terminated_frames() {
    let got = frames(b"{\"a\":1}\n{\"b\":2}\r\n").unwrap();
    assert_eq!(strs(&got), ["{\"a\":1}", "{\"b\":2}"]);
}

#[test]
fn unterminated_frame_needs_no_delimiter() {
    let mut f = Framer::default();
    assert_eq!(
        f.next_frame(b"{\"a\":1}"),
        Ok(Scan::Frame { start: 0, end: 7 })
    );
}

#[test]
fn unfinished_frame_is_incomplete_and_keeps_its_bytes() {
    let mut f = Framer::default();
    assert_eq!(
        f.next_frame(b"\n\0 {\"a\":"),
        Ok(Scan::Incomplete { discard: 3 })
    );
    // The caller dropped 3 bytes: the frame now starts at 0.
    assert_eq!(
        f.next_frame(b"{\"a\":1}"),
        Ok(Scan::Frame { start: 0, end: 7 })
    );
}

#[test]
fn two_frames_without_delimiter() {
    let got = frames(b"{\"a\":1}{\"b\":2}").unwrap();
    assert_eq!(strs(&got), ["{\"a\":1}", "{\"b\":2}"]);
}

#[test]
fn frame_fed_byte_by_byte() {
    let input = b"\0{\"msgid\":6,\"msg\":\"a}b\\\"{\"}\0{\"x\":[1]}";
    let mut feeder = Feeder::new(DEFAULT_MAX_FRAME);
    let mut got = Vec::new();
    for &b in input {
        got.extend(feeder.push(&[b]).unwrap());
    }
    assert_eq!(
        strs(&got),
        ["{\"msgid\":6,\"msg\":\"a}b\\\"{\"}", "{\"x\":[1]}"]
    );
    assert!(feeder.buf.is_empty());
}

#[test]
fn scan_is_linear_when_fed_one_byte_at_a_time() {
    let mut frame = b"{\"k\":\"".to_vec();
    frame.resize(1 << 20, b'x');
    frame.extend_from_slice(b"\"}");
    let mut feeder = Feeder::new(2 << 20);
    let mut got = Vec::new();
    for &b in &frame {
        got.extend(feeder.push(&[b]).unwrap());
    }
    assert_eq!(got, [frame.clone()]);
    // Each byte examined a bounded number of times (the opening bracket twice), not O(n²).
    assert!(
        feeder.framer.bytes_examined <= frame.len() + 1,
        "{}",
        feeder.framer.bytes_examined
    );
}

#[test]
fn strings_hide_brackets_quotes_and_backslashes() {
    let input = "{\"a\":\"}{][\",\"b\":\"say \\\"hi}\\\"\",\"c\":\"back\\\\\",\"d\":\"中文 ✓ {\"}"
        .as_bytes();
    let got = frames(input).unwrap();
    assert_eq!(got, [input.to_vec()]);
    serde_json::from_slice::<serde_json::Value>(&got[0]).unwrap();
}

#[test]
fn escaped_backslash_before_closing_quote_ends_the_string() {
    // "\\" is a complete string: the brace after it closes the object.
    let got = frames(b"{\"a\":\"\\\\\"}{}").unwrap();
    assert_eq!(strs(&got), ["{\"a\":\"\\\\\"}", "{}"]);
}

#[test]
fn nested_objects_and_arrays() {
    let got = frames(b"{\"a\":{\"b\":[1,{\"c\":[]},[[]]]}} [1,[2,{\"x\":3}]]").unwrap();
    assert_eq!(
        strs(&got),
        ["{\"a\":{\"b\":[1,{\"c\":[]},[[]]]}}", "[1,[2,{\"x\":3}]]"]
    );
}

#[test]
fn garbage_between_frames() {
    let mut f = Framer::default();
    assert_eq!(
        f.next_frame(b"hello"),
        Err(FrameError::Garbage { byte: b'h' })
    );
    assert_eq!(frames(b"{}\n\xff"), Err(FrameError::Garbage { byte: 0xff }));
    assert_eq!(frames(b"\"str\""), Err(FrameError::Garbage { byte: b'"' }));
    assert_eq!(frames(b"42"), Err(FrameError::Garbage { byte: b'4' }));
}

#[test]
fn stray_closing_bracket_is_garbage() {
    assert_eq!(
        frames(b"{\"a\":1}}"),
        Err(FrameError::Garbage { byte: b'}' })
    );
    assert_eq!(frames(b"]"), Err(FrameError::Garbage { byte: b']' }));
}

#[test]
fn frame_at_the_limit_is_accepted() {
    let mut f = Framer::new(7);
    assert_eq!(
        f.next_frame(b"{\"a\":1}"),
        Ok(Scan::Frame { start: 0, end: 7 })
    );
}

#[test]
fn complete_oversize_frame_is_rejected() {
    let mut f = Framer::new(8);
    assert_eq!(
        f.next_frame(b"{\"a\":12345}"),
        Err(FrameError::TooLarge { limit: 8 })
    );
}

#[test]
fn unfinished_oversize_frame_is_rejected_without_waiting() {
    let mut feeder = Feeder::new(16);
    assert_eq!(feeder.push(b"  {\"a\":\"0123456"), Ok(vec![]));
    assert_eq!(feeder.push(b"789"), Ok(vec![]));
    assert_eq!(feeder.push(b"abc"), Err(FrameError::TooLarge { limit: 16 }));
}

#[test]
fn whitespace_only_input_is_discarded() {
    let mut f = Framer::default();
    assert_eq!(
        f.next_frame(b" \t\r\n\0\0"),
        Ok(Scan::Incomplete { discard: 6 })
    );
    assert_eq!(f.next_frame(b""), Ok(Scan::Incomplete { discard: 0 }));
}

#[test]
fn framer_is_reset_after_an_error() {
    let mut f = Framer::new(4);
    assert!(f.next_frame(b"{\"abc\"").is_err());
    assert_eq!(f.next_frame(b"{}"), Ok(Scan::Frame { start: 0, end: 2 }));
}

/// xorshift64: a tiny deterministic RNG so the property test needs no extra crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

fn gen_string(rng: &mut XorShift, out: &mut String) {
    const PIECES: [&str; 10] = ["a", "{", "}", "[", "]", "\\\"", "\\\\", "中", "\\n", " "];
    out.push('"');
    for _ in 0..rng.below(6) {
        out.push_str(PIECES[rng.below(PIECES.len() as u64)]);
    }
    out.push('"');
}

fn gen_value(rng: &mut XorShift, depth: u32, out: &mut String) {
    let kind = if depth >= 4 {
        rng.below(3)
    } else {
        rng.below(5)
    };
    match kind {
        0 => out.push_str(&rng.below(100_000).to_string()),
        1 | 2 => gen_string(rng, out),
        3 => {
            out.push('{');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                gen_string(rng, out);
                out.push(':');
                gen_value(rng, depth + 1, out);
            }
            out.push('}');
        }
        _ => {
            out.push('[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                gen_value(rng, depth + 1, out);
            }
            out.push(']');
        }
    }
}

/// A random stream of valid frames with random separators, and the frames themselves.
fn gen_stream(rng: &mut XorShift) -> (Vec<u8>, Vec<Vec<u8>>) {
    const SEPARATORS: [&[u8]; 6] = [b"", b"\0", b"\n", b"\r\n", b" \t", b"\0\0"];
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..1 + rng.below(8) {
        let mut frame = String::new();
        // Top level must be a container; force one by wrapping in an object or array.
        if rng.below(4) == 0 {
            frame.push('[');
            gen_value(rng, 1, &mut frame);
            frame.push(']');
        } else {
            frame.push_str("{\"k\":");
            gen_value(rng, 1, &mut frame);
            frame.push('}');
        }
        serde_json::from_str::<serde_json::Value>(&frame).expect("generator makes valid JSON");
        stream.extend_from_slice(SEPARATORS[rng.below(SEPARATORS.len() as u64)]);
        stream.extend_from_slice(frame.as_bytes());
        expected.push(frame.into_bytes());
    }
    stream.extend_from_slice(SEPARATORS[rng.below(SEPARATORS.len() as u64)]);
    (stream, expected)
}

#[test]
fn random_splits_yield_the_same_frames_as_one_shot() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..500 {
        let (stream, expected) = gen_stream(&mut rng);
        assert_eq!(frames(&stream).unwrap(), expected);

        let mut feeder = Feeder::new(DEFAULT_MAX_FRAME);
        let mut got = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(12) as u64);
            let (chunk, tail) = rest.split_at(n);
            got.extend(feeder.push(chunk).unwrap());
            rest = tail;
        }
        assert_eq!(got, expected);
        assert!(
            feeder.buf.is_empty(),
            "only separators may remain, and they are discarded"
        );
    }
}
