//! The weighted length of a post, counted the way X counts it.
//!
//! X does not count characters: it sums per-code-point weights from
//! twitter-text's configuration v3 (`config/v3.json`):
//!
//! ```json
//! {"version": 3, "maxWeightedTweetLength": 280, "scale": 100,
//!  "defaultWeight": 200, "emojiParsingEnabled": true, "transformedURLLength": 23,
//!  "ranges": [{"start": 0, "end": 4351, "weight": 100},
//!             {"start": 8192, "end": 8205, "weight": 100},
//!             {"start": 8208, "end": 8223, "weight": 100},
//!             {"start": 8242, "end": 8247, "weight": 100}]}
//! ```
//!
//! So Latin, Greek, Cyrillic, Hebrew, Arabic, Indic scripts and most
//! punctuation weigh 1, everything else (CJK, Hangul, emoji, ...) weighs 2, a
//! URL weighs 23 whatever its length (it is replaced by a t.co link), and an
//! emoji sequence (skin tones, ZWJ families, flags, keycaps) weighs 2 as a whole.
//!
//! Simplifications: URLs are recognised by scheme (`http://`, `https://`) or as
//! bare domains ending in a common top-level domain, not by twitter-text's full
//! extractor; text is not NFC-normalised first.

/// `maxWeightedTweetLength`.
pub const MAX_WEIGHTED_LENGTH: usize = 280;
/// `transformedURLLength`.
pub const URL_WEIGHT: usize = 23;

const SCALE: usize = 100;
const DEFAULT_WEIGHT: usize = 200;
const RANGES: [(u32, u32, usize); 4] = [
    (0, 4351, 100),
    (8192, 8205, 100),
    (8208, 8223, 100),
    (8242, 8247, 100),
];

/// Top-level domains that make a bare `example.com` count as a URL.
const COMMON_TLDS: &[&str] = &[
    "com", "net", "org", "io", "co", "dev", "app", "ai", "me", "ly", "gg", "tv", "info", "biz",
    "edu", "gov", "xyz", "us", "uk", "de", "fr", "jp", "cn", "ru", "br", "in", "eu", "ca", "au",
    "nl", "it", "es", "ch", "se", "no", "fi", "pl", "be", "at", "dk", "nz", "kr", "tw", "hk", "sg",
    "site", "online", "tech", "blog", "news", "page", "link", "club", "shop", "store", "cloud",
    "live", "social",
];

/// The weighted length of `text` (what X compares with 280).
pub fn weighted_length(text: &str) -> usize {
    let urls = find_urls(text);
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut units = 0;
    let mut i = 0;
    let mut next_url = urls.iter().peekable();
    while i < chars.len() {
        let (at, c) = chars[i];
        if let Some(&&(start, end)) = next_url.peek()
            && at == start
        {
            units += URL_WEIGHT * SCALE;
            next_url.next();
            while i < chars.len() && chars[i].0 < end {
                i += 1;
            }
            continue;
        }
        if let Some(len) = emoji_sequence_len(&chars[i..]) {
            units += DEFAULT_WEIGHT;
            i += len;
            continue;
        }
        units += weight(c);
        i += 1;
    }
    units / SCALE
}

fn weight(c: char) -> usize {
    let cp = u32::from(c);
    RANGES
        .iter()
        .find(|(start, end, _)| (*start..=*end).contains(&cp))
        .map_or(DEFAULT_WEIGHT, |(_, _, w)| *w)
}

/// Byte ranges of the URLs in `text`, in order and non-overlapping.
fn find_urls(text: &str) -> Vec<(usize, usize)> {
    let mut urls = Vec::new();
    let lower = text.to_ascii_lowercase();
    let mut i = 0;
    while i < text.len() {
        let rest = &lower[i..];
        let scheme = if rest.starts_with("https://") {
            8
        } else if rest.starts_with("http://") {
            7
        } else {
            0
        };
        if scheme > 0 {
            let end = i + url_run(&text[i..]);
            let end = trim_trailing_punctuation(text, i, end);
            if host_looks_valid(&text[i + scheme..end]) {
                urls.push((i, end));
                i = end;
                continue;
            }
        } else if starts_token(text, i)
            && let Some(end) = bare_domain_end(text, i)
        {
            urls.push((i, end));
            i = end;
            continue;
        }
        i += text[i..].chars().next().map_or(1, char::len_utf8);
    }
    urls
}

/// Length in bytes of the run of URL characters at the start of `s`.
fn url_run(s: &str) -> usize {
    s.char_indices()
        .find(|(_, c)| !is_url_char(*c))
        .map_or(s.len(), |(at, _)| at)
}

fn is_url_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c)
}

fn trim_trailing_punctuation(text: &str, start: usize, mut end: usize) -> usize {
    while end > start {
        let last = text[..end].chars().next_back().unwrap_or(' ');
        if ".,;:!?'\")]".contains(last) {
            end -= last.len_utf8();
        } else {
            break;
        }
    }
    end
}

fn host_looks_valid(after_scheme: &str) -> bool {
    let host = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    host.contains('.') || host.eq_ignore_ascii_case("localhost")
}

/// A bare domain may start a URL only at the start of a word.
fn starts_token(text: &str, at: usize) -> bool {
    let Some(first) = text[at..].chars().next() else {
        return false;
    };
    if !first.is_ascii_alphanumeric() {
        return false;
    }
    match text[..at].chars().next_back() {
        None => true,
        Some(prev) => !(prev.is_alphanumeric() || "@.#$_-/".contains(prev)),
    }
}

/// `example.com` or `www.example.co/path` starting at `at`: its end, if it is one.
fn bare_domain_end(text: &str, at: usize) -> Option<usize> {
    let run = url_run(&text[at..]);
    let candidate = &text[at..at + run];
    let host_len = candidate.find(['/', '?', '#']).unwrap_or(candidate.len());
    let host = &candidate[..host_len];
    let host = host.trim_end_matches(|c: char| ".,;:!?'\")]".contains(c));
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return None;
    }
    let tld = labels.last()?.to_ascii_lowercase();
    if !COMMON_TLDS.contains(&tld.as_str()) {
        return None;
    }
    let end = if host.len() == host_len {
        trim_trailing_punctuation(text, at, at + run)
    } else {
        at + host.len()
    };
    Some(end)
}

/// If an emoji sequence starts at `chars[0]`, how many code points it spans.
fn emoji_sequence_len(chars: &[(usize, char)]) -> Option<usize> {
    let first = u32::from(chars.first()?.1);
    let at = |i: usize| chars.get(i).map(|(_, c)| u32::from(*c));
    // Keycap: [0-9#*] FE0F? 20E3.
    if (first < 0x80) && (chars[0].1.is_ascii_digit() || first == 0x23 || first == 0x2A) {
        return match (at(1), at(2)) {
            (Some(0xFE0F), Some(0x20E3)) => Some(3),
            (Some(0x20E3), _) => Some(2),
            _ => None,
        };
    }
    // Flag: two regional indicators.
    if is_regional_indicator(first) {
        return Some(if at(1).is_some_and(is_regional_indicator) {
            2
        } else {
            1
        });
    }
    // Weight-1 symbols such as © become emoji only with VS16.
    if !is_emoji_base(first) {
        return (weight(chars[0].1) == 100 && at(1) == Some(0xFE0F) && is_text_emoji(first))
            .then_some(2);
    }
    let mut len = 1;
    loop {
        match at(len) {
            Some(0xFE0F | 0xFE0E | 0x20E3) => len += 1,
            Some(cp) if (0x1F3FB..=0x1F3FF).contains(&cp) => len += 1,
            Some(cp) if (0xE0020..=0xE007F).contains(&cp) => len += 1,
            Some(0x200D) if at(len + 1).is_some_and(is_emoji_base) => len += 2,
            _ => break,
        }
    }
    Some(len)
}

fn is_regional_indicator(cp: u32) -> bool {
    (0x1F1E6..=0x1F1FF).contains(&cp)
}

fn is_emoji_base(cp: u32) -> bool {
    (0x1F000..=0x1FAFF).contains(&cp)
        || (0x2600..=0x27BF).contains(&cp)
        || (0x2300..=0x23FF).contains(&cp)
        || (0x2B00..=0x2BFF).contains(&cp)
        || matches!(cp, 0x3030 | 0x303D | 0x3297 | 0x3299)
}

fn is_text_emoji(cp: u32) -> bool {
    matches!(cp, 0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139)
        || (0x2194..=0x21AA).contains(&cp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_counts_one_per_character() {
        assert_eq!(weighted_length(""), 0);
        assert_eq!(weighted_length("hello"), 5);
        assert_eq!(weighted_length(&"a".repeat(280)), 280);
        assert_eq!(weighted_length("café naïve"), 10);
    }

    #[test]
    fn wide_characters_count_two() {
        assert_eq!(weighted_length("日本語"), 6);
        assert_eq!(weighted_length(&"字".repeat(140)), 280);
        assert_eq!(weighted_length(&"字".repeat(141)), 282);
        assert_eq!(weighted_length("한국어"), 6);
        // General punctuation inside the weight-1 ranges.
        assert_eq!(weighted_length("\u{2014}\u{2019}"), 2);
        assert_eq!(weighted_length("\u{2026}"), 2);
    }

    #[test]
    fn urls_count_twenty_three() {
        assert_eq!(weighted_length("https://example.com"), 23);
        let long = format!("https://example.com/{}", "p".repeat(200));
        assert_eq!(weighted_length(&long), 23);
        assert_eq!(weighted_length("see http://a.co/x, ok"), 4 + 23 + 4);
        assert_eq!(weighted_length("(https://example.com)."), 1 + 23 + 2);
        assert_eq!(weighted_length("visit example.com now"), 6 + 23 + 4);
        assert_eq!(weighted_length("見てhttps://example.com"), 4 + 23);
        // Not URLs: no dot, unknown TLD, e-mail-ish, hashtags.
        assert_eq!(weighted_length("http://nodot"), 12);
        assert_eq!(weighted_length("file.rs"), 7);
        assert_eq!(weighted_length("me@example.com"), 14);
    }

    #[test]
    fn emoji_sequences_count_two() {
        assert_eq!(weighted_length("👍"), 2);
        assert_eq!(weighted_length("👍🏽"), 2);
        assert_eq!(weighted_length("👨‍👩‍👧‍👦"), 2);
        assert_eq!(weighted_length("🇯🇵"), 2);
        assert_eq!(weighted_length("❤️"), 2);
        assert_eq!(weighted_length("1️⃣"), 2);
        assert_eq!(weighted_length("©️"), 2);
        assert_eq!(weighted_length("©"), 1);
        assert_eq!(weighted_length("hi 👋 there"), 11);
    }

    #[test]
    fn a_280_character_post_with_a_url() {
        let text = format!("{} https://example.com/a/very/long/path", "a".repeat(256));
        assert_eq!(weighted_length(&text), 280);
    }
}
