//! Buffer: muduo's byte buffer (prependable | readable | writable), filled by one `readv`.
//!
//! ```text
//! +-------------------+------------------+------------------+
//! | prependable bytes |  readable bytes  |  writable bytes  |
//! |   (already read)  |     (CONTENT)    |                  |
//! +-------------------+------------------+------------------+
//! 0      <=      read_index   <=   write_index    <=     storage.len()
//! ```
//!
//! Reading from a socket uses `readv` into the writable part plus a 64 KiB spill area owned by
//! the loop, so one syscall drains up to 64 KiB more than the buffer holds, and the buffer only
//! grows by what actually arrived. The spill area is one per loop rather than on the stack: a
//! stack array would have to be zeroed on every read to stay in safe Rust, 64 KiB of memset per
//! message, while the loop's area is zeroed once.
//!
//! What an idle connection costs: an empty `Buffer` is three words (24 bytes) and owns no heap
//! memory. The connection releases a buffer's storage as soon as it is emptied (`release`), so
//! an idle chat user pins no buffer memory at all, only the connection's slot in its loop's slab.
//! The price is one small allocation per read burst, cheaper than a kilobyte per idle user.

use std::io;
use std::os::fd::AsFd;

/// Size of the per-loop spill area that `read_fd` reads into past the buffer's own space.
pub const SPILL_SIZE: usize = 64 * 1024;

/// Growable byte buffer with muduo's reader/writer indices.
#[derive(Default, Debug)]
pub struct Buffer {
    storage: Vec<u8>,
    read_index: usize,
    write_index: usize,
}

impl Buffer {
    pub fn new() -> Buffer {
        Buffer::default()
    }

    pub fn with_capacity(capacity: usize) -> Buffer {
        Buffer {
            storage: vec![0; capacity],
            read_index: 0,
            write_index: 0,
        }
    }

    /// Bytes waiting to be consumed.
    pub fn readable_bytes(&self) -> usize {
        self.write_index - self.read_index
    }

    pub fn is_empty(&self) -> bool {
        self.read_index == self.write_index
    }

    pub fn writable_bytes(&self) -> usize {
        self.storage.len() - self.write_index
    }

    pub fn prependable_bytes(&self) -> usize {
        self.read_index
    }

    /// Heap bytes held.
    pub fn capacity(&self) -> usize {
        self.storage.len()
    }

    /// The readable bytes.
    pub fn peek(&self) -> &[u8] {
        &self.storage[self.read_index..self.write_index]
    }

    /// Consumes `n` readable bytes (all of them if `n` is larger).
    pub fn retrieve(&mut self, n: usize) {
        if n < self.readable_bytes() {
            self.read_index += n;
        } else {
            self.retrieve_all();
        }
    }

    pub fn retrieve_all(&mut self) {
        self.read_index = 0;
        self.write_index = 0;
    }

    /// Drops the storage if nothing is readable, so an idle owner holds no heap memory.
    pub fn release(&mut self) {
        if self.is_empty() {
            *self = Buffer::default();
        }
    }

    pub fn append(&mut self, data: &[u8]) {
        if self.storage.is_empty() {
            // The common case for a released buffer: one copy, no zero-fill, exact size.
            self.storage = data.to_vec();
            self.read_index = 0;
            self.write_index = data.len();
            return;
        }
        self.ensure_writable(data.len());
        self.storage[self.write_index..self.write_index + data.len()].copy_from_slice(data);
        self.write_index += data.len();
    }

    /// Makes room for `n` more bytes: first by moving the content to the front (reclaiming the
    /// prependable space), and only if that is not enough by growing.
    pub fn ensure_writable(&mut self, n: usize) {
        if self.writable_bytes() >= n {
            return;
        }
        let readable = self.readable_bytes();
        if self.prependable_bytes() + self.writable_bytes() >= n {
            self.storage
                .copy_within(self.read_index..self.write_index, 0);
        } else {
            let mut grown = vec![0; (readable + n).max(self.storage.len() * 2)];
            grown[..readable].copy_from_slice(self.peek());
            self.storage = grown;
        }
        self.read_index = 0;
        self.write_index = readable;
    }

    /// Reads once from `fd` with `readv` into the writable part and then `spill`, appending
    /// whatever landed in `spill`. Returns the bytes read (0: end of stream).
    pub fn read_fd(&mut self, fd: impl AsFd, spill: &mut [u8]) -> io::Result<usize> {
        let writable = self.writable_bytes();
        let n = {
            let (_, tail) = self.storage.split_at_mut(self.write_index);
            let mut iov = [io::IoSliceMut::new(tail), io::IoSliceMut::new(spill)];
            nix::sys::uio::readv(fd, &mut iov)?
        };
        if n <= writable {
            self.write_index += n;
        } else {
            self.write_index = self.storage.len();
            self.append(&spill[..n - writable]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn append_retrieve_and_compact() {
        let mut b = Buffer::with_capacity(8);
        b.append(b"hello");
        assert_eq!(b.peek(), b"hello");
        b.retrieve(3);
        assert_eq!(b.peek(), b"lo");
        assert_eq!(b.prependable_bytes(), 3);
        // 2 readable + 6 needed fits in 8 once the content moves to the front: no growth.
        b.append(b"123456");
        assert_eq!(b.capacity(), 8);
        assert_eq!(b.peek(), b"lo123456");
        b.append(b"more");
        assert_eq!(b.peek(), b"lo123456more");
        b.retrieve(100);
        assert!(b.is_empty());
    }

    #[test]
    fn release_frees_only_when_empty() {
        let mut b = Buffer::new();
        assert_eq!(b.capacity(), 0);
        b.append(b"abc");
        b.release();
        assert_eq!(b.peek(), b"abc");
        b.retrieve_all();
        b.release();
        assert_eq!(b.capacity(), 0);
    }

    #[test]
    fn read_fd_spills_past_capacity() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let writer = std::thread::spawn(move || a.write_all(&data).map(|_| data));
        let mut buf = Buffer::with_capacity(16);
        let mut spill = vec![0u8; SPILL_SIZE];
        let mut got = 0;
        while got < 100_000 {
            let n = buf.read_fd(&b, &mut spill).unwrap();
            assert!(n > 0);
            got += n;
        }
        let data = writer.join().unwrap().unwrap();
        assert_eq!(buf.peek(), &data[..]);
    }

    #[test]
    fn read_fd_end_of_stream_is_zero() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        let mut buf = Buffer::new();
        let mut spill = vec![0u8; 16];
        assert_eq!(buf.read_fd(&b, &mut spill).unwrap(), 0);
    }
}
