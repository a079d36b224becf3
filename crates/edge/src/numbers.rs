//! Number normalization (ANI/DNIS translation): a peer's ordered `number`
//! rules, applied to the user part of the Request-URI, From, To and
//! P-Asserted-Identity, each rule to what the one before it left — so a
//! carrier's `0044…` and another's `+44…` reach the platform as one E.164
//! number, and leave toward each carrier in the form it dials.
//!
//! Regular expressions are the `regex` crate's: finite automata, linear
//! in the input, so no rule a config writes can make a request take long
//! (no catastrophic backtracking).

use regex::bytes::Regex;

/// Which parts of a request a rule rewrites (`fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The Request-URI's user (DNIS) of a request outside a dialog.
    Ruri,
    /// The From user (ANI).
    From,
    /// The To user.
    To,
    /// Each P-Asserted-Identity's user.
    Pai,
}

impl Field {
    /// Every field, in the order the config names them.
    pub const ALL: [Field; 4] = [Field::Ruri, Field::From, Field::To, Field::Pai];

    /// The name in `fields`.
    pub fn name(self) -> &'static str {
        match self {
            Field::Ruri => "ruri",
            Field::From => "from",
            Field::To => "to",
            Field::Pai => "pai",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`Field`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields(u8);

impl Fields {
    /// All four.
    pub const ALL: Fields = Fields(0b1111);

    /// The set of `fields`.
    pub fn of(fields: &[Field]) -> Fields {
        Fields(fields.iter().fold(0, |a, f| a | f.bit()))
    }

    /// Whether `f` is in the set.
    pub fn has(self, f: Field) -> bool {
        self.0 & f.bit() != 0
    }
}

/// A regular expression compiled once, compared by its text (a config is
/// compared with the one a reload replaces).
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

/// What one rule does to a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// `match` + `replace`: the regex's first match replaced, `$1` and
    /// `${name}` naming its groups.
    Replace {
        /// `match`.
        pattern: Pattern,
        /// `replace`.
        with: String,
    },
    /// `e164 = "44"`: `00…` (the international prefix) becomes `+…`, and
    /// `0…` (the national prefix) `+44…`; a number already in `+` form,
    /// or with neither prefix, is left as it is.
    E164 {
        /// The country code, digits only.
        country: String,
        /// `national_prefix`, `0` by default.
        national: String,
        /// `international_prefix`, `00` by default.
        international: String,
    },
    /// `strip_prefix`: removed when the number starts with it.
    StripPrefix(String),
    /// `add_prefix`: put in front (of the numbers `match` matches, when
    /// the rule has one).
    AddPrefix(String),
}

/// One `number` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What it does.
    pub rewrite: Rewrite,
    /// A condition: only numbers it matches (`match` of a rule that is
    /// not a `replace`).
    pub only: Option<Pattern>,
    /// What it rewrites (`fields`, all four by default).
    pub fields: Fields,
}

impl Rule {
    /// `n` rewritten, or `None` when the rule leaves it as it is.
    pub fn apply(&self, n: &[u8]) -> Option<Vec<u8>> {
        if let Some(only) = &self.only {
            if !only.0.is_match(n) {
                return None;
            }
        }
        let out = match &self.rewrite {
            Rewrite::Replace { pattern, with } => {
                // Captures allocate: only for a number that matches.
                if !pattern.0.is_match(n) {
                    return None;
                }
                let caps = pattern.0.captures(n)?;
                let whole = caps.get(0)?;
                let mut out = Vec::with_capacity(n.len() + with.len());
                out.extend_from_slice(&n[..whole.start()]);
                caps.expand(with.as_bytes(), &mut out);
                out.extend_from_slice(&n[whole.end()..]);
                out
            }
            Rewrite::E164 {
                country,
                national,
                international,
            } => {
                if n.first() == Some(&b'+') {
                    return None;
                }
                if let Some(rest) = n.strip_prefix(international.as_bytes()) {
                    [b"+", rest].concat()
                } else if let Some(rest) = n.strip_prefix(national.as_bytes()) {
                    [b"+", country.as_bytes(), rest].concat()
                } else {
                    return None;
                }
            }
            Rewrite::StripPrefix(p) => n.strip_prefix(p.as_bytes())?.to_vec(),
            Rewrite::AddPrefix(p) => [p.as_bytes(), n].concat(),
        };
        (out != n).then_some(out)
    }
}

/// A peer's rules for one direction, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules(pub Vec<Rule>);

impl Rules {
    /// `n`, a `field`'s user, after every rule for that field, each
    /// applied to what the one before left; `None` when none rewrote it
    /// (nothing is allocated then).
    pub fn normalize(&self, field: Field, n: &[u8]) -> Option<Vec<u8>> {
        let mut now: Option<Vec<u8>> = None;
        for r in self.0.iter().filter(|r| r.fields.has(field)) {
            if let Some(next) = r.apply(now.as_deref().unwrap_or(n)) {
                now = Some(next);
            }
        }
        // A number rewritten to nothing would leave `sip:@host`.
        now.filter(|v| v != n && !v.is_empty())
    }

    /// No rule.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The form numbers leave in (`tel`): `tel:+44…`, or
/// `sip:+44…@host;user=phone` (RFC 3261 §19.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriForm {
    /// `tel:` (only global numbers, `+…`: RFC 3966 wants a
    /// phone-context for any other).
    Tel,
    /// `sip:…;user=phone`.
    Sip,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(rewrite: Rewrite) -> Rule {
        Rule {
            rewrite,
            only: None,
            fields: Fields::ALL,
        }
    }

    fn re(s: &str) -> Pattern {
        Pattern(Regex::new(s).expect("regex"))
    }

    fn e164(cc: &str) -> Rewrite {
        Rewrite::E164 {
            country: cc.into(),
            national: "0".into(),
            international: "00".into(),
        }
    }

    fn text(v: Option<Vec<u8>>) -> Option<String> {
        v.map(|v| String::from_utf8(v).expect("utf-8"))
    }

    #[test]
    fn e164_turns_national_and_international_numbers_into_plus_form() {
        let r = rule(e164("44"));
        assert_eq!(
            text(r.apply(b"00442079460000")).as_deref(),
            Some("+442079460000")
        );
        assert_eq!(
            text(r.apply(b"02079460000")).as_deref(),
            Some("+442079460000")
        );
        assert_eq!(r.apply(b"+442079460000"), None);
        assert_eq!(r.apply(b"2079460000"), None);
        assert_eq!(r.apply(b"alice"), None);
    }

    #[test]
    fn replace_expands_groups_and_keeps_what_the_match_did_not_cover() {
        let r = rule(Rewrite::Replace {
            pattern: re(r"^\+44(\d+)$"),
            with: "0$1".into(),
        });
        assert_eq!(
            text(r.apply(b"+442079460000")).as_deref(),
            Some("02079460000")
        );
        assert_eq!(r.apply(b"+12125550100"), None);
        let named = rule(Rewrite::Replace {
            pattern: re(r"^(?P<tech>\d{4})#"),
            with: "".into(),
        });
        assert_eq!(text(named.apply(b"1234#004420")).as_deref(), Some("004420"));
    }

    #[test]
    fn prefixes_are_stripped_and_added_where_the_condition_holds() {
        let strip = rule(Rewrite::StripPrefix("9".into()));
        assert_eq!(text(strip.apply(b"90044")).as_deref(), Some("0044"));
        assert_eq!(strip.apply(b"0044"), None);
        let add = Rule {
            only: Some(re(r"^\d{6}$")),
            ..rule(Rewrite::AddPrefix("+44207".into()))
        };
        assert_eq!(text(add.apply(b"946000")).as_deref(), Some("+44207946000"));
        assert_eq!(add.apply(b"02079460000"), None);
    }

    #[test]
    fn rules_apply_in_order_each_to_what_the_last_left_and_only_to_their_fields() {
        let rules = Rules(vec![
            rule(Rewrite::StripPrefix("1234#".into())),
            Rule {
                fields: Fields::of(&[Field::Ruri]),
                ..rule(e164("44"))
            },
        ]);
        assert_eq!(
            text(rules.normalize(Field::Ruri, b"1234#02079460000")).as_deref(),
            Some("+442079460000")
        );
        assert_eq!(
            text(rules.normalize(Field::From, b"1234#02079460000")).as_deref(),
            Some("02079460000")
        );
        assert_eq!(rules.normalize(Field::Pai, b"+442079460000"), None);
        // A rule that undoes another leaves nothing to write.
        let undo = Rules(vec![
            rule(Rewrite::AddPrefix("9".into())),
            rule(Rewrite::StripPrefix("9".into())),
        ]);
        assert_eq!(undo.normalize(Field::To, b"100"), None);
        // Nor is a number stripped to nothing.
        let all = Rules(vec![rule(Rewrite::StripPrefix("9".into()))]);
        assert_eq!(all.normalize(Field::Ruri, b"9"), None);
    }
}
