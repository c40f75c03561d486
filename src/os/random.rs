//! Random bytes from the kernel (`getrandom(2)`), for temp-file names and
//! the fingerprint key.

use std::io;

/// Fills `buf` from the kernel's random source (blocks only before the
/// pool is first initialised, at early boot).
pub fn fill(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: the pointer and length describe the live, writable `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

/// `n` random bytes as lower-case hex (for a name nobody can guess).
pub fn hex(n: usize) -> io::Result<String> {
    let mut bytes = vec![0u8; n];
    fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ_and_have_the_asked_length() {
        let (a, b) = (super::hex(16).unwrap(), super::hex(16).unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
