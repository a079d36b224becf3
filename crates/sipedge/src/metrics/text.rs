//! The classic Prometheus text format (0.0.4) from OpenMetrics text.
//!
//! prometheus-client writes OpenMetrics only. The two differ in a few
//! lines: OpenMetrics names a counter family without its `_total` and an
//! info family without its `_info`, has `# UNIT` lines and ends with
//! `# EOF`. A 0.0.4 parser (promtool, older scrapers) wants the family
//! named as its samples are, a known type, and no trailer.

/// `openmetrics` rewritten in the 0.0.4 format.
pub fn classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut lines = openmetrics.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(help) = line.strip_prefix("# HELP ") {
            // HELP comes right before its TYPE: rename both by the type.
            let (name, text) = help.split_once(' ').unwrap_or((help, ""));
            let kind = lines
                .peek()
                .and_then(|l| l.strip_prefix("# TYPE "))
                .and_then(|t| t.split_once(' '))
                .filter(|(n, _)| *n == name)
                .map(|(_, k)| k);
            let (suffix, kind) = match kind {
                Some("counter") => ("_total", Some("counter")),
                Some("info") => ("_info", Some("gauge")),
                Some(k) => ("", Some(k)),
                None => ("", None),
            };
            out.push_str(&format!("# HELP {name}{suffix} {text}\n"));
            if let Some(kind) = kind {
                lines.next();
                out.push_str(&format!("# TYPE {name}{suffix} {kind}\n"));
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_infos_are_named_as_their_samples() {
        let om = "# HELP a_calls New calls.\n# TYPE a_calls counter\na_calls_total{edge=\"x\"} 3\n\
                  # HELP a_build The build.\n# TYPE a_build info\na_build_info{version=\"1\"} 1\n\
                  # HELP a_rtt_seconds Round trips.\n# TYPE a_rtt_seconds histogram\n# UNIT a_rtt_seconds seconds\n\
                  a_rtt_seconds_count 0\n# EOF\n";
        assert_eq!(
            classic(om),
            "# HELP a_calls_total New calls.\n# TYPE a_calls_total counter\na_calls_total{edge=\"x\"} 3\n\
             # HELP a_build_info The build.\n# TYPE a_build_info gauge\na_build_info{version=\"1\"} 1\n\
             # HELP a_rtt_seconds Round trips.\n# TYPE a_rtt_seconds histogram\n\
             a_rtt_seconds_count 0\n"
        );
    }
}
