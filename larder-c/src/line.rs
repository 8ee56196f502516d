//! A line of text built in a fixed buffer on the stack, and written with one
//! `write(2)`: the only way to print from inside an allocator, where `format!`
//! and `eprintln!` would allocate or take locks that `malloc` may already hold.

/// A line of at most `N` bytes; what does not fit is dropped, never reallocated.
pub struct Line<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Line<N> {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    /// Appends bytes, keeping as many as fit.
    pub fn push(&mut self, text: &[u8]) -> &mut Self {
        let room = N - self.len;
        let taken = text.len().min(room);
        self.bytes[self.len..self.len + taken].copy_from_slice(&text[..taken]);
        self.len += taken;
        self
    }

    /// Appends a number in decimal.
    pub fn push_u64(&mut self, value: u64) -> &mut Self {
        let mut digits = itoa::Buffer::new();
        self.push(digits.format(value).as_bytes())
    }

    /// Appends an address as `0x` and lowercase hexadecimal digits.
    pub fn push_hex(&mut self, value: usize) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut count = 0;
        let mut rest = value;
        loop {
            digits[15 - count] = b"0123456789abcdef"[rest & 0xf];
            count += 1;
            rest >>= 4;
            if rest == 0 {
                break;
            }
        }
        self.push(b"0x");
        self.push(&digits[16 - count..])
    }

    /// The text so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Writes the line to `fd` with as few `write(2)` calls as the kernel
    /// allows, giving up on an error: there is nowhere to report it.
    pub fn write_to(&self, fd: libc::c_int) {
        let mut rest = self.as_bytes();
        while !rest.is_empty() {
            // SAFETY: `rest` is a live slice; write(2) reads at most its length.
            let written = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
            if written <= 0 {
                return;
            }
            rest = &rest[written as usize..];
        }
    }
}

impl<const N: usize> Default for Line<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Line;

    #[test]
    fn numbers_and_addresses_are_formatted() {
        let mut line = Line::<64>::new();
        line.push(b"n=")
            .push_u64(1234)
            .push(b" p=")
            .push_hex(0xdead_beef)
            .push(b" z=")
            .push_hex(0);
        assert_eq!(line.as_bytes(), b"n=1234 p=0xdeadbeef z=0x0");
    }

    #[test]
    fn text_beyond_the_capacity_is_dropped() {
        let mut line = Line::<8>::new();
        line.push(b"abcdef").push(b"ghijkl").push_u64(99);
        assert_eq!(line.as_bytes(), b"abcdefgh");
    }
}
