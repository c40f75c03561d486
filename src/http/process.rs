//! The standard `process_*` series (the ones Prometheus' client libraries
//! export), read from `/proc/self` at each scrape into a stack buffer.

use std::io::Read;

/// What `/proc/self` says of this process now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
}

/// Reads the figures; a file that cannot be read leaves its figure at 0.
pub fn read() -> ProcessStats {
    let mut buf = [0u8; 2048];
    let mut out = ProcessStats::default();
    if let Some(text) = read_into("/proc/self/stat", &mut buf) {
        if let Some((utime, stime, rss_pages)) = parse_stat(text) {
            let ticks = crate::os::process::clock_ticks();
            out.cpu_seconds = (utime + stime) as f64 / ticks as f64;
            out.resident_bytes = rss_pages * crate::os::process::page_size();
        }
    }
    out.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    out
}

fn read_into<'b>(path: &str, buf: &'b mut [u8]) -> Option<&'b str> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    std::str::from_utf8(&buf[..n]).ok()
}

/// utime and stime (clock ticks) and rss (pages) of a `/proc/PID/stat`
/// line. The fields are counted after the last `)`, since the command
/// name may hold spaces and parentheses.
pub fn parse_stat(text: &str) -> Option<(u64, u64, u64)> {
    let after = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after ')'; utime is 14, stime 15, rss 24.
    let mut fields = after.split_ascii_whitespace();
    let utime = fields.nth(11)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    let rss = fields.nth(8)?.parse().ok()?;
    Some((utime, stime, rss))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let line = "4242 (bg (odd) name) S 1 4242 4242 0 -1 4194560 300 0 0 0 \
                    17 5 0 0 20 0 7 0 123456 10000000 250 18446744073709551615";
        assert_eq!(parse_stat(line), Some((17, 5, 250)));
        assert_eq!(parse_stat("garbage"), None);
        let me = read();
        assert!(me.resident_bytes > 0 && me.open_fds > 0, "{me:?}");
    }
}
