//! Human output of `sipedge ctl`: the API's JSON as a table or a line.
//! Missing or odd fields print as `-` rather than failing, so an older or
//! newer server still gives a readable answer.

use serde_json::Value;

const HEADER: [&str; 9] = [
    "EDGE",
    "#",
    "URI",
    "STATE",
    "MANUAL",
    "LATENCY",
    "LAST PROBE",
    "CALLS",
    "REASON",
];

/// `GET /api/destinations` as an aligned table, one destination a line.
pub fn destinations(body: &Value) -> String {
    let mut rows: Vec<[String; 9]> = vec![HEADER.map(str::to_owned)];
    for edge in array(body, "edges") {
        let name = text(edge, "name");
        for d in array(edge, "destinations") {
            rows.push([
                name.clone(),
                number(d.get("index")),
                text(d, "uri"),
                text(d, "state"),
                if d.get("manual").and_then(Value::as_bool) == Some(true) {
                    "yes".to_owned()
                } else {
                    String::new()
                },
                latency(d),
                last_probe(d),
                number(d.get("calls_sent")),
                text(d, "reason"),
            ]);
        }
    }
    aligned(&rows)
}

/// Rows as aligned columns (the last one ragged).
fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `GET /api/bans` as a table: the flood and operator bans one a line
/// (and the APIBAN feed's too with `all`), then the counts.
pub fn bans(body: &Value, all: bool) -> String {
    let mut rows = vec![["ADDRESS", "REASON", "EDGE", "EXPIRES IN"].map(str::to_owned)];
    for b in array(body, "bans") {
        let reason = text(b, "reason");
        if reason == "apiban" && !all {
            continue;
        }
        let left = b.get("expires_in").and_then(Value::as_u64).map_or_else(
            || "-".to_owned(),
            |s| format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60),
        );
        rows.push([text(b, "address"), reason, text(b, "edge"), left]);
    }
    let count = |k: &str| number(body.get("counts").and_then(|c| c.get(k)));
    let mut out = if rows.len() > 1 {
        aligned(&rows)
    } else {
        String::new()
    };
    out += &format!(
        "{} banned for flooding, {} by the operator, {} listed by APIBAN{}\n",
        count("flood"),
        count("admin"),
        count("apiban"),
        if all { "" } else { " (--all lists them)" }
    );
    out
}

/// The answer to `set`: `edge-1 #0 sip:…: inactive (manual): set inactive by the operator`.
pub fn set_result(edge: &str, d: &Value) -> String {
    let manual = if d.get("manual").and_then(Value::as_bool) == Some(true) {
        " (manual)"
    } else {
        ""
    };
    format!(
        "{edge} #{} {}: {}{manual}: {}",
        number(d.get("index")),
        text(d, "uri"),
        text(d, "state"),
        text(d, "reason")
    )
}

/// The answer to `reload`: a summary line, then what changed and what
/// waits for a restart, one per line.
pub fn reload_result(r: &Value) -> String {
    let changes = array(r, "changes");
    let restart = array(r, "needs_restart");
    let took = r.get("took_ms").and_then(Value::as_f64).unwrap_or(0.0);
    let mut out = format!(
        "reloaded in {took:.1} ms: {} change(s), {} needing a restart\n",
        changes.len(),
        restart.len()
    );
    for c in changes.iter().filter_map(Value::as_str) {
        out += &format!("  applied: {c}\n");
    }
    for c in restart.iter().filter_map(Value::as_str) {
        out += &format!("  restart: {c}\n");
    }
    out
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key).and_then(Value::as_str) {
        Some(s) => s.to_owned(),
        None => "-".to_owned(),
    }
}

fn number(v: Option<&Value>) -> String {
    match v {
        Some(n) if n.is_number() => n.to_string(),
        _ => "-".to_owned(),
    }
}

fn latency(d: &Value) -> String {
    match d
        .get("latency_ms")
        .and_then(|l| l.get("avg"))
        .and_then(Value::as_f64)
    {
        Some(ms) => format!("{ms:.2} ms"),
        None => "-".to_owned(),
    }
}

fn last_probe(d: &Value) -> String {
    let Some(p) = d.get("last_probe").filter(|p| !p.is_null()) else {
        return "-".to_owned();
    };
    let result = text(p, "result");
    match p.get("ago_s").and_then(Value::as_f64) {
        Some(ago) => format!("{result}, {ago:.1} s ago"),
        None => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_two_destinations() {
        let body = serde_json::json!({"node": "n", "zone": null, "edges": [{
        "name": "edge-1", "algorithm": "first", "routable": true, "destinations": [
            {"index": 0, "uri": "sip:127.0.0.1:5070", "state": "active", "manual": false,
             "reason": "probe: 200 OK in 0.3 ms", "latency_ms": {"last": 0.31, "avg": 0.35},
             "last_probe": {"ago_s": 0.8, "result": "200 OK", "ok": true}, "calls_sent": 100},
            {"index": 1, "uri": "sip:127.0.0.1:5071", "state": "inactive", "manual": true,
             "reason": "set inactive by the operator", "latency_ms": null,
             "last_probe": null, "calls_sent": 0}
        ]}]});
        let t = destinations(&body);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("EDGE    #  URI"), "{t}");
        assert!(lines[1].contains("sip:127.0.0.1:5070  active"), "{t}");
        assert!(lines[1].contains("0.35 ms"), "{t}");
        assert!(lines[1].contains("200 OK, 0.8 s ago"), "{t}");
        assert!(lines[1].contains("100"), "{t}");
        assert!(lines[2].contains("inactive  yes"), "{t}");
        assert!(lines[2].ends_with("set inactive by the operator"), "{t}");
        // Columns line up: STATE starts at the same place in every line.
        let col = lines[0].find("STATE");
        assert_eq!(lines[1].find("active"), col, "{t}");
        assert_eq!(lines[2].find("inactive"), col, "{t}");
    }

    #[test]
    fn odd_answers_print_dashes() {
        let t = destinations(&serde_json::json!({"edges": [{"destinations": [{}]}]}));
        assert!(
            t.lines().nth(1).is_some_and(|l| l.starts_with("-  ")),
            "{t}"
        );
        assert_eq!(destinations(&serde_json::json!([1, 2])).lines().count(), 1);
    }

    #[test]
    fn bans_table_leaves_the_feed_out_unless_asked() {
        let body = serde_json::json!({"counts": {"flood": 1, "admin": 0, "apiban": 1}, "bans": [
            {"address": "127.0.0.2", "reason": "flood", "edge": "e1", "until": 9, "expires_in": 3725},
            {"address": "198.51.100.7", "reason": "apiban", "until": 9, "expires_in": 60}
        ]});
        let t = bans(&body, false);
        assert!(t.contains("127.0.0.2  flood   e1    1h02m05s"), "{t}");
        assert!(!t.contains("198.51.100.7"), "{t}");
        assert!(
            t.ends_with(
                "1 banned for flooding, 0 by the operator, 1 listed by APIBAN (--all lists them)\n"
            ),
            "{t}"
        );
        assert!(bans(&body, true).contains("198.51.100.7"));
    }

    #[test]
    fn set_line() {
        let d = serde_json::json!({"index": 2, "uri": "sip:a", "state": "inactive", "manual": true,
                                   "reason": "set inactive by the operator"});
        assert_eq!(
            set_result("edge-1", &d),
            "edge-1 #2 sip:a: inactive (manual): set inactive by the operator"
        );
    }
}
