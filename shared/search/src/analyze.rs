//! Text analysis as the original index mapping configured it: every string is a `keyword`
//! (lower-cased by the `keyword_lowercase` normaliser, not indexed above 256 characters) with an
//! analysed `text` sub-field (the standard analyser: Unicode word boundaries, lower-cased).

use std::borrow::Cow;

use unicode_segmentation::UnicodeSegmentation;

/// Strings longer than this (in characters) are not indexed as keywords (`ignore_above`).
pub const IGNORE_ABOVE: usize = 256;

/// Longest token the standard tokenizer emits; longer words are split.
const MAX_TOKEN_CHARS: usize = 255;

/// Name of the analysed sub-field of every string field.
pub const TEXT_SUFFIX: &str = ".text";

/// `s` lower-cased, borrowed when it already is (most identifiers and ontology terms).
fn lower(s: &str) -> Cow<'_, str> {
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// The keyword form of a string: lower-cased, or `None` when it is too long to be indexed.
pub fn keyword(s: &str) -> Option<Cow<'_, str>> {
    (s.chars().count() <= IGNORE_ABOVE).then(|| lower(s))
}

/// The standard analyser: words by Unicode (UAX #29) boundaries, lower-cased.
pub fn tokens(s: &str) -> Vec<Cow<'_, str>> {
    let mut out = Vec::new();
    for w in s.unicode_words() {
        let w = lower(w);
        if w.len() <= MAX_TOKEN_CHARS || w.chars().count() <= MAX_TOKEN_CHARS {
            out.push(w);
        } else {
            let chars: Vec<char> = w.chars().collect();
            out.extend(
                chars
                    .chunks(MAX_TOKEN_CHARS)
                    .map(|c| Cow::Owned(c.iter().collect())),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_analyser_splits_like_uax29() {
        assert_eq!(tokens("Hello, World!"), ["hello", "world"]);
        assert_eq!(
            tokens("cell_suspension 10x v2"),
            ["cell_suspension", "10x", "v2"]
        );
        assert_eq!(tokens("3b41f062-621c-46ca"), ["3b41f062", "621c", "46ca"]);
        assert_eq!(tokens("Homo sapiens"), ["homo", "sapiens"]);
        assert!(tokens("  ,; ").is_empty());
    }

    #[test]
    fn keywords_are_lower_cased_and_bounded() {
        assert_eq!(keyword("Homo Sapiens").as_deref(), Some("homo sapiens"));
        assert!(keyword(&"x".repeat(257)).is_none());
        assert!(keyword(&"x".repeat(256)).is_some());
    }
}
