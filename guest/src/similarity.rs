//! How alike two organization names are, in 0..=1, for ranking the platform organizations a
//! tenant might belong to. Scores compare [`organization_name_key`] forms, so legal forms,
//! case and punctuation never count.
//!
//! The score is the best of three views, so that no single difference sinks a plausible
//! candidate:
//! - Jaro-Winkler over the whole keys: typos, and an extra word at the end
//!   ("Contoso" / "Contoso Pharmaceuticals"), thanks to its common-prefix bonus;
//! - Jaro over the keys' words in sorted order: word order ("Northwind Traders" /
//!   "Traders Northwind") and an extra word elsewhere. Plain Jaro, because Winkler's
//!   common-prefix bonus would here reward words that merely sort first ("Bank ...");
//! - a weighted token-set overlap (Sørensen-Dice over distinct words, each weighted by
//!   its length): shared words whatever their order and spelling around them.
//!
//! Only equal keys score 1.0; anything else is capped at [`BELOW_EQUAL`], so a reviewer
//! can tell "the same name" from "very close".

use crate::normalize::organization_name_key;

/// The highest score of two names whose keys differ.
pub const BELOW_EQUAL: f32 = 0.99;

/// Similarity of two organization names in 0..=1: 1.0 for equal keys, 0.0 when either
/// name has an empty key. Symmetric.
pub fn name_similarity(a: &str, b: &str) -> f32 {
    key_similarity(&organization_name_key(a), &organization_name_key(b))
}

/// [`name_similarity`] over keys already made by [`organization_name_key`] (saves
/// re-keying one side when scoring it against many).
pub fn key_similarity(a: &str, b: &str) -> f32 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    if a == b {
        return 1.0;
    }
    // One fixed order, so the score is symmetric however the measures treat their
    // arguments.
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    let whole = strsim::jaro_winkler(a, b);
    let (words_a, words_b) = (sorted_words(a), sorted_words(b));
    let sorted = strsim::jaro(&words_a.join(" "), &words_b.join(" "));
    let overlap = token_set_overlap(&words_a, &words_b);
    (whole.max(sorted).max(overlap) as f32).clamp(0.0, BELOW_EQUAL)
}

/// Distinct words, sorted.
fn sorted_words(key: &str) -> Vec<&str> {
    let mut words: Vec<&str> = key.split(' ').filter(|w| !w.is_empty()).collect();
    words.sort_unstable();
    words.dedup();
    words
}

/// 2·|A∩B| / (|A|+|B|) over distinct words, each counted by its length in characters, so a
/// shared long word weighs more than a shared short one.
fn token_set_overlap(a: &[&str], b: &[&str]) -> f64 {
    let weight = |w: &&str| w.chars().count();
    let total: usize = a.iter().map(weight).sum::<usize>() + b.iter().map(weight).sum::<usize>();
    if total == 0 {
        return 0.0;
    }
    // Both lists are sorted and distinct: binary search is enough.
    let shared: usize = a
        .iter()
        .filter(|w| b.binary_search(w).is_ok())
        .map(weight)
        .sum();
    (2 * shared) as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_score_one() {
        assert_eq!(name_similarity("Contoso, Inc.", "CONTOSO INC"), 1.0);
        assert_eq!(name_similarity("Contoso", "contoso ltd"), 1.0);
        assert_eq!(name_similarity("Fabrikam GmbH & Co. KG", "Fabrikam"), 1.0);
        assert_eq!(name_similarity("Müller AG", "MÜLLER"), 1.0);
    }

    #[test]
    fn different_keys_stay_below_one() {
        let swapped = name_similarity("Northwind Traders", "Traders Northwind");
        assert_eq!(swapped, BELOW_EQUAL, "same words, other order");
        assert!(name_similarity("Contoso", "Contosso") < 1.0);
    }

    #[test]
    fn empty_names_score_zero() {
        assert_eq!(name_similarity("", ""), 0.0);
        assert_eq!(name_similarity("", "Contoso"), 0.0);
        assert_eq!(name_similarity("Contoso", "   "), 0.0);
        assert_eq!(name_similarity("!!!", "..."), 0.0);
        assert_eq!(key_similarity("", "x"), 0.0);
    }

    #[test]
    fn closer_names_score_higher() {
        let typo = name_similarity("Contoso", "Contosso");
        let extra_word = name_similarity("Contoso", "Contoso Pharmaceuticals");
        let unrelated = name_similarity("Contoso", "Fabrikam");
        assert!(typo > extra_word, "{typo} > {extra_word}");
        assert!(extra_word > unrelated, "{extra_word} > {unrelated}");

        let near = name_similarity("Tailspin Toys", "Tailspin Toy");
        let far = name_similarity("Tailspin Toys", "Wingtip Toys");
        assert!(near > far, "{near} > {far}");

        let one_extra = name_similarity("Contoso Bank", "Contoso Bank Europe");
        let two_extra = name_similarity("Contoso Bank", "Contoso Bank Europe Holdings");
        assert!(one_extra > two_extra, "{one_extra} > {two_extra}");
    }

    #[test]
    fn word_order_and_an_extra_word_keep_a_high_score() {
        for (a, b) in [
            ("Northwind Traders", "Traders Northwind"),
            ("Contoso", "Contoso Pharmaceuticals"),
            ("Contoso", "Global Contoso"),
            ("Alpine Ski House", "Ski House Alpine Ltd"),
            ("Alpha Contoso Beta", "Contoso Beta"),
        ] {
            let s = name_similarity(a, b);
            assert!(s >= 0.75, "{a:?} / {b:?}: {s}");
        }
    }

    #[test]
    fn unrelated_names_score_low() {
        for (a, b) in [
            ("Contoso", "Fabrikam"),
            ("Northwind Traders", "Woodgrove Bank"),
            ("Tailspin Toys", "Adventure Works"),
            ("Contoso Bank", "Fabrikam Bank"),
        ] {
            let s = name_similarity(a, b);
            assert!(s < 0.75, "{a:?} / {b:?}: {s}");
        }
    }

    #[test]
    fn symmetric() {
        let names = [
            "Contoso",
            "Contoso Pharmaceuticals",
            "Global Contoso",
            "Fabrikam GmbH",
            "Müller",
            "Muller",
            "株式会社テスト",
            "",
            "A.B.C.",
            "Northwind Traders",
        ];
        for a in names {
            for b in names {
                assert_eq!(
                    name_similarity(a, b),
                    name_similarity(b, a),
                    "{a:?} / {b:?}"
                );
            }
        }
    }

    #[test]
    fn scores_are_in_range() {
        let names = [
            "",
            "a",
            "ab",
            "Contoso",
            "x y z",
            "Ω",
            "株式会社",
            "Contoso Contoso",
        ];
        for a in names {
            for b in names {
                let s = name_similarity(a, b);
                assert!((0.0..=1.0).contains(&s), "{a:?} / {b:?}: {s}");
            }
        }
    }

    #[test]
    fn unicode_names() {
        let accent = name_similarity("Müller AG", "Muller");
        assert!((0.75..1.0).contains(&accent), "{accent}");
        assert_eq!(name_similarity("Ωmega", "ωMEGA"), 1.0);
        let cjk = name_similarity("東京電力", "東京電力ホールディングス");
        assert!(cjk > 0.75, "{cjk}");
        assert!(name_similarity("東京電力", "大阪ガス") < 0.75);
    }

    #[test]
    fn repeated_words_count_once() {
        assert_eq!(
            name_similarity("Contoso Contoso", "Contoso"),
            name_similarity("Contoso", "Contoso Contoso")
        );
        assert!(name_similarity("Contoso Contoso", "Contoso") >= 0.75);
    }
}
