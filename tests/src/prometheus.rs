//! A reader of the Prometheus text exposition format (0.0.4) and of
//! OpenMetrics text, enough to check `/metrics` sample by sample: every
//! sample line is parsed strictly (name, quoted and escaped label values,
//! value), so a malformed line fails the test rather than being skipped.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name (`sipedge_calls_total`, `…_bucket`).
    pub name: String,
    /// Its labels, unescaped.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// Every sample of `text`, or the first line that does not parse.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| sample(l).ok_or_else(|| format!("not a sample line: {l:?}")))
        .collect()
}

fn sample(line: &str) -> Option<Sample> {
    let end = line.find(['{', ' '])?;
    let name = &line[..end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return None;
    }
    let mut rest = &line[end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim_start_matches(',').to_owned();
            rest = rest[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let close = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        _ => return None,
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key, value);
            rest = &rest[close + 1..];
        }
    }
    let mut fields = rest.split_whitespace();
    let value = match fields.next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The samples of one scrape, looked up by name and labels.
#[derive(Clone, Debug)]
pub struct Scrape {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses `text`; panics with the offending line.
    #[track_caller]
    pub fn of(text: &str) -> Scrape {
        match parse(text) {
            Ok(samples) => Scrape { samples },
            Err(e) => panic!("{e}\nin:\n{text}"),
        }
    }

    /// The sum of the samples named `name` whose labels include every
    /// pair of `labels`; `None` when there is no such sample.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for s in self.samples.iter().filter(|s| s.name == name) {
            if labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            {
                *found.get_or_insert(0.0) += s.value;
            }
        }
        found
    }

    /// [`get`](Self::get) as a count; panics when there is no such sample.
    #[track_caller]
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            Some(v) => v as u64,
            None => panic!("no sample {name} {labels:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_and_without_labels() {
        let s = Scrape::of(
            "# HELP a_total x\n# TYPE a_total counter\n\
             a_total{edge=\"e\",method=\"INVITE\"} 3\na_total{edge=\"e\",method=\"BYE\"} 2\n\
             b 1.5\nc{v=\"q\\\"uote\\\\d\\n\"} +Inf\n",
        );
        assert_eq!(s.count("a_total", &[("edge", "e")]), 5);
        assert_eq!(s.count("a_total", &[("method", "BYE")]), 2);
        assert_eq!(s.get("b", &[]), Some(1.5));
        assert_eq!(s.get("c", &[("v", "q\"uote\\d\n")]), Some(f64::INFINITY));
        assert_eq!(s.get("a_total", &[("edge", "x")]), None);
    }

    #[test]
    fn broken_lines_are_refused() {
        for bad in ["a{x=\"1} 2", "a{x=1} 2", "a", "a{x=\"1\"}", "a 1x", "é 1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
