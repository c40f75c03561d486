//! Counts as an operator reads them: `1 feed`, `2 feeds`, `0 feeds`. Every
//! count printed with its noun goes through [`count`], so none reads
//! `1 feeds` or `1 error(s)`.

/// `n` and the noun that agrees with it: `one` for 1, `many` otherwise.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", noun(n, one, many))
}

/// The noun alone, for a count printed elsewhere (`0/1 feed live`).
pub fn noun<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_noun_agrees_with_the_number() {
        assert_eq!(count(0, "feed", "feeds"), "0 feeds");
        assert_eq!(count(1, "feed", "feeds"), "1 feed");
        assert_eq!(count(2, "feed", "feeds"), "2 feeds");
        assert_eq!(count(1, "fresh nonce", "fresh nonces"), "1 fresh nonce");
        assert_eq!(noun(1, "error", "errors"), "error");
    }
}
